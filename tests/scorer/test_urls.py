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


def test_without_options_keeps_the_rest() -> None:
    from scorer.urls import without_options

    url = "rediss://u:p%40ss@h:6380/2?timeout=1&db=3&ssl_cert_reqs=none&ttl=5"
    assert without_options(url, ("timeout", "ttl")) == \
        "rediss://u:p%40ss@h:6380/2?db=3&ssl_cert_reqs=none"
    assert without_options("redis://h:6379/0?timeout=1", ("timeout",)) == "redis://h:6379/0"
    assert without_options("unix:///tmp/r.sock?db=5", ("timeout",)) == \
        "unix:///tmp/r.sock?db=5"


@pytest.mark.parametrize(("url", "want"), [
    ("sqlite:///data/f.db", "data/f.db"),            # relative, as SQLAlchemy reads it
    ("sqlite:////srv/data/f.db", "/srv/data/f.db"),  # absolute
    ("data/f.db", "data/f.db"),                      # a plain path
])
def test_sqlite_urls_mean_the_same_file_to_every_store(url, want, tmp_path, monkeypatch):
    from scorer.features import open_store as open_features
    from scorer.registry import open_store as open_registry
    from scorer.urls import sqlite_path

    assert sqlite_path(url) == want
    monkeypatch.chdir(tmp_path)
    if want.startswith("/"):
        return  # (no writing outside the test's directory)
    for n, opener in enumerate((open_registry, open_features)):
        u = url.replace("f.db", f"f{n}.db")
        if not u.startswith("sqlite:///") and opener is open_registry:
            continue  # the registry takes sqlite:/// URLs only
        opener(u).close()
        assert (tmp_path / want.replace("f.db", f"f{n}.db")).exists()
