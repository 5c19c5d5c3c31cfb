"""A feature store of each backend for one test: SQLite in a temporary file, Redis in this
process's own database number, with a view name of the test's own (deleted after)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from scorer.features import FeatureStore, open_store, redis_store, resp
from tests.services import redis_db


@pytest.fixture(params=["sqlite", "redis", "redis-hiredis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """Each backend; Redis read by the compiled reader (scorer.features.resp), and through
    hiredis (what reads take until it is compiled, and for views with strings)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/features.db"
    if request.param == "redis":
        resp.warm()
    else:
        monkeypatch.setattr(redis_store, "resp_ready", lambda: False)
    return redis_db()


@pytest.fixture
def view_name() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


def _store_of(url: str, view_name: str) -> Iterator[Any]:
    """The store at ``url``; ``view_name`` deleted and the store closed after."""
    s = open_store(url)
    try:
        yield s
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


@pytest.fixture
def store(store_url: str, view_name: str) -> Iterator[FeatureStore]:
    yield from _store_of(store_url, view_name)


@pytest.fixture
def rstore(view_name: str) -> Iterator[Any]:
    """A Redis store in this process's own database; its view deleted after."""
    yield from _store_of(redis_db(), view_name)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """A plain client of the same database (what another client may write there)."""
    r = redis.Redis.from_url(redis_db())
    try:
        yield r
    finally:
        r.close()
