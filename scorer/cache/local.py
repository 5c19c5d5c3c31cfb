"""An in-process output cache: least recently used entries go first, bounded by bytes."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import numpy as np

from ..pipeline import Request, Target
from .key import digest, key_or_none
from .metrics import CacheMetrics

Arrays = dict[str, np.ndarray]

#: what an entry costs besides its objects: the entry tuple and its slot and link in the
#: ordered dict (measured with tracemalloc: ~170 bytes on CPython 3.11)
_ENTRY = 170


def _size(key: bytes, h: bytes, arrays: Arrays) -> int:
    """Memory an entry holds: its key and hash, its dict of arrays (each array's header and
    data; an object array's values too), the entry itself."""
    n = sys.getsizeof(key) + sys.getsizeof(h) + sys.getsizeof(arrays) + _ENTRY
    for a in arrays.values():
        n += sys.getsizeof(a)  # (a copy: it owns its data, which getsizeof includes)
        if a.dtype == object:
            n += sum(map(sys.getsizeof, a.tolist()))
    return n


class LocalCache:
    """The pipeline's ``cache`` stage in this process's memory.

    Parameters
    ----------
    max_bytes : int
        Memory the entries may hold (keys and arrays); the least recently used go first.
    metrics : CacheMetrics, optional
        Where hits and misses are counted.
    """

    def __init__(self, max_bytes: int, *, metrics: CacheMetrics | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("the cache's size must be positive")
        self.max_bytes = max_bytes
        self.metrics = metrics if metrics is not None else CacheMetrics("local")
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[bytes, Arrays, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, target: Target, request: Request) -> Arrays | None:
        key = key_or_none(target, request)
        if key is None:
            return None  # scored, not counted as a lookup
        h = digest(key)
        with self._lock:
            e = self._entries.get(h)
            if e is not None and e[0] == key:  # the whole key: a collision never answers
                self._entries.move_to_end(h)
                self.metrics.hit()
                return {k: v.copy() for k, v in e[1].items()}
        self.metrics.miss()
        return None

    def put(self, target: Target, request: Request, arrays: Arrays) -> None:
        key = key_or_none(target, request)
        if key is None:
            return
        # a copy: the caller's arrays may be views of buffers it reuses
        value = {k: np.array(v, copy=True) for k, v in arrays.items()}
        h = digest(key)
        size = _size(key, h, value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(h, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[h] = (key, value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, _, s) = self._entries.popitem(last=False)
                self.bytes -= s
