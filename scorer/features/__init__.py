"""The feature store: views of entity features, their backends, and the pipeline's features
stage (docs/features.md).

>>> store = open_store("redis://127.0.0.1:6379/0")            # doctest: +SKIP
>>> stage = FeatureStage(store, {"churn": {"view": "customers"}})   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .metrics import FeatureMetrics
from .stage import Binding, FeatureStage
from .store import FeatureStore, Rows, ViewMeta


def open_store(url: str, **options: Any) -> FeatureStore:
    """The feature store at ``url``: ``redis://host:port/db`` (``timeout=`` seconds), or
    ``sqlite:///path`` / a plain path (embedded); ValueError for another scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis_store import RedisStore

        return RedisStore(url, **options)
    if scheme in ("sqlite", ""):
        from .sqlite_store import SQLiteStore

        options.pop("timeout", None)  # a socket timeout means nothing to a local file
        return SQLiteStore(url, **options)
    raise InputError(f"unknown feature store '{url.split('@')[-1]}': use redis://HOST:PORT/DB "
                     "or sqlite:///PATH")


__all__ = ["Binding", "FeatureMetrics", "FeatureStage", "FeatureStore", "Rows", "ViewMeta",
           "open_store"]
