"""A feature store of each backend for one test: SQLite in a temporary file, Redis in this
process's own database number, with a view name of the test's own (deleted after)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorer.features import FeatureStore, open_store
from tests.services import redis_db


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/features.db" if request.param == "sqlite" else redis_db()


@pytest.fixture
def view_name() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(store_url: str, view_name: str) -> Iterator[FeatureStore]:
    s = open_store(store_url)
    try:
        yield s
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()
