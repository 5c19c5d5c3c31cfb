"""Backend URLs in messages: no password, whatever it holds."""

from __future__ import annotations

import pytest

from scorer.urls import redact


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://user:secret@db:5432/models", "postgresql://user:***@db:5432/models"),
    ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("postgresql://user:p@ss:w0rd@db/models", "postgresql://user:***@db/models"),
    ("postgresql://user@db/models", "postgresql://user@db/models"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("sqlite:///var/lib/registry.db", "sqlite:///var/lib/registry.db"),
    ("redis://:secret@[::1:6379/0", "redis://:***@[::1:6379/0"),  # not parseable: the pattern
])
def test_redact_hides_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
