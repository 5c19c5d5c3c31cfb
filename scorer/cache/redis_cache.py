"""An output cache in Redis, shared by a fleet: ``redis://host:port/db``.

Each entry is one string ``ts:c:<hex of the key's 16-byte BLAKE2b>`` holding the full key
and the arrays (see :func:`encode`), with a TTL (``?ttl=SECONDS``, default 3600); bound its
memory with Redis's own ``maxmemory`` and an ``allkeys-lru`` policy.
"""

from __future__ import annotations

import json
import struct
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..pipeline import Request, Target
from ..urls import without_options
from .key import digest, key_or_none
from .metrics import CacheMetrics

Arrays = dict[str, np.ndarray]

DEFAULT_TTL = 3600
#: largest entry stored, in MB (?max_entry_mb=)
DEFAULT_MAX_ENTRY_MB = 8.0
DEFAULT_TIMEOUT = 0.3


def encode(key: bytes, arrays: Arrays) -> bytes:
    """``u32 len(key) | key | u32 len(header) | header JSON | array bytes...``; object
    (string) arrays are JSON lists in the header, numeric ones raw little-endian bytes."""
    head: list[dict[str, Any]] = []
    blobs = []
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype == object:
            head.append({"name": name, "values": [None if v is None else str(v)
                                                  for v in a.tolist()]})
        else:
            data = np.ascontiguousarray(a).tobytes()
            head.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape),
                         "bytes": len(data)})
            blobs.append(data)
    h = json.dumps(head, separators=(",", ":")).encode()
    return b"".join([struct.pack("<I", len(key)), key, struct.pack("<I", len(h)), h, *blobs])


def decode(blob: bytes) -> tuple[bytes, Arrays]:
    """The key and arrays of an :func:`encode` blob."""
    (n,) = struct.unpack_from("<I", blob, 0)
    key = blob[4:4 + n]
    p = 4 + n
    (m,) = struct.unpack_from("<I", blob, p)
    head = json.loads(blob[p + 4:p + 4 + m])
    p += 4 + m
    out: Arrays = {}
    for h in head:
        if "values" in h:
            a = np.empty(len(h["values"]), dtype=object)
            a[:] = h["values"]
        else:
            a = np.frombuffer(blob, dtype=np.dtype(h["dtype"]), count=int(np.prod(h["shape"])),
                              offset=p).reshape(h["shape"]).copy()
            p += h["bytes"]
        out[h["name"]] = a
    return key, out


class RedisCache:
    """The pipeline's ``cache`` stage in Redis.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (``?ttl=SECONDS``, ``?timeout=SECONDS``, ``?max_entry_mb=MB``:
        an entry larger than this is not stored, default :data:`DEFAULT_MAX_ENTRY_MB`).
    timeout : float, optional
        Socket timeout: a cache slower than this is skipped (the request is scored).
    """

    def __init__(self, url: str, *, timeout: float | None = None,
                 metrics: CacheMetrics | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        q = parse_qs(urlsplit(url).query)
        try:
            self.ttl = int(q["ttl"][0]) if "ttl" in q else DEFAULT_TTL
        except ValueError:
            raise ValueError(f"--cache {url.split('?')[0]}: ttl must be a whole number of "
                             "seconds") from None
        if self.ttl < 1:  # (Redis refuses SET ... EX 0: every store would fail)
            raise ValueError(f"--cache {url.split('?')[0]}: ttl must be at least 1 second")
        try:
            mb = float(q["max_entry_mb"][0]) if "max_entry_mb" in q else DEFAULT_MAX_ENTRY_MB
        except ValueError:
            raise ValueError(f"--cache {url.split('?')[0]}: max_entry_mb must be a number of "
                             "megabytes") from None
        if not mb > 0:
            raise ValueError("--cache: max_entry_mb must be positive")
        #: bytes an entry may take (a 400k-row request's outputs stored ~68 MB for the TTL)
        self.max_entry = int(mb * 1024 * 1024)
        if timeout is None:
            timeout = float(q["timeout"][0]) if "timeout" in q else DEFAULT_TIMEOUT
        self.metrics = metrics if metrics is not None else CacheMetrics("redis")
        # (the cache's own options off the URL; redis-py's own, e.g. ?db=, kept)
        self._r = redis.Redis.from_url(without_options(url, ("ttl", "max_entry_mb", "timeout")),
                                       socket_timeout=timeout,
                                       socket_connect_timeout=timeout,
                                       retry=Retry(NoBackoff(), 0))

    @staticmethod
    def _name(key: bytes) -> str:
        return "ts:c:" + digest(key).hex()

    def get(self, target: Target, request: Request) -> Arrays | None:
        key = key_or_none(target, request)
        if key is None:
            return None  # scored, not counted as a lookup
        try:
            blob = self._r.get(self._name(key))
            # (an entry that does not decode, written by something else, is an error too)
            got = decode(blob) if blob is not None else None
        except Exception:
            self.metrics.error()
            raise  # the pipeline logs it, counts it and scores the request
        if got is not None:
            stored, arrays = got
            if stored == key:
                self.metrics.hit()
                return arrays
        self.metrics.miss()
        return None

    def put(self, target: Target, request: Request, arrays: Arrays) -> None:
        key = key_or_none(target, request)
        if key is None:
            return
        if len(key) + sum(np.asarray(a).nbytes for a in arrays.values()) > self.max_entry:
            return  # (estimated before encoding: large batches are not what a cache is for)
        blob = encode(key, arrays)
        if len(blob) > self.max_entry:
            return
        # (a failed store is counted by the pipeline's stage errors, not as a lookup: hits,
        # misses and errors add up to the lookups)
        self._r.set(self._name(key), blob, ex=self.ttl)

    def close(self) -> None:
        self._r.close()
