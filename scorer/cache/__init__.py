"""The output cache: the pipeline's ``cache`` stage (docs/features.md, Output cache).

``open_cache("local:MB")`` keeps entries in this process (an LRU bounded by bytes);
``open_cache("redis://host:port/db")`` shares them through Redis.
"""

from __future__ import annotations

from typing import Any

from .key import digest, request_key
from .local import LocalCache
from .metrics import CacheMetrics
from .redis_cache import RedisCache


def open_cache(spec: str, **options: Any) -> LocalCache | RedisCache:
    """The cache ``spec`` describes: ``local:MB`` or ``redis://HOST:PORT/DB``; ValueError
    otherwise."""
    if spec.startswith("local:"):
        try:
            mb = float(spec[len("local:"):])
        except ValueError:
            raise ValueError(f"--cache {spec}: expected local:MB (e.g. local:256)") from None
        if mb <= 0:
            raise ValueError(f"--cache {spec}: the size must be positive")
        options.pop("timeout", None)
        return LocalCache(int(mb * 1024 * 1024), **options)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(spec, **options)
    raise ValueError(f"--cache {spec.split('@')[-1]}: expected local:MB or redis://HOST:PORT/DB")


__all__ = ["CacheMetrics", "LocalCache", "RedisCache", "digest", "open_cache", "request_key"]
