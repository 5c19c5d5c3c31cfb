"""The model registry: publish a version once, every replica serves it.

A store URL picks the backend: ``sqlite:///path`` (embedded, no server) or
``postgresql://...`` (a fleet). :func:`open_store` returns a :class:`~.store.SQLStore`;
:mod:`.replica` keeps a server in step with it (see docs/operations.md, "Model registry").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..urls import redact
from .store import ModelState, RegistryError, Snapshot, SQLStore


def _sqlite(url: str, **kw: Any) -> SQLStore:
    from .sqlite import SQLiteStore

    return SQLiteStore(url, **kw)


def _postgres(url: str, **kw: Any) -> SQLStore:
    from .postgres import PostgresStore

    return PostgresStore(url, **kw)


#: URL scheme -> backend constructor
BACKENDS: dict[str, Callable[..., SQLStore]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_store(url: str, **options: Any) -> SQLStore:
    """The registry at ``url``; ``InputError`` for an unknown scheme, ``UnavailableError`` when
    it cannot be reached."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise InputError(f"unknown registry store '{redact(url)}': use sqlite:///PATH or "
                         "postgresql://USER@HOST:PORT/DB")
    return backend(url, **options)


__all__ = ["BACKENDS", "ModelState", "RegistryError", "SQLStore", "Snapshot", "open_store"]
