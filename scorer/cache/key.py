"""The output cache's key: everything the outputs depend on, as bytes.

The key covers the target's fingerprint (a new version, or new parameters under the same
version, never meets an old entry), the requested outputs, the row count and every input
column's name, dtype and values. For an entity request the features stage has already put
the looked-up feature values into the inputs, so new feature values make a new key. The
whole key is stored with the value and compared on a hit; its hash only finds the slot.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from ..pipeline import Request, Target


def _column_bytes(a: np.ndarray) -> bytes:
    if a.dtype == object:
        # strings and None, each length-prefixed (None: length 0xFFFFFFFF)
        parts = []
        for v in a.reshape(-1).tolist():
            if v is None:
                parts.append(b"\xff\xff\xff\xff")
            else:
                b = str(v).encode("utf-8")
                parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(a).tobytes()


def request_key(target: Target, request: Request) -> bytes:
    """The full cache key of ``request`` answered by ``target``."""
    parts = [b"v1", target.fingerprint.encode(), b"\0".join(o.encode() for o in request.outputs),
             struct.pack("<q", request.rows)]
    inputs = request.inputs
    if isinstance(inputs, np.ndarray):
        items = [("", inputs)]
    elif isinstance(inputs, dict):
        items = sorted(inputs.items())
    else:
        raise TypeError("a request without model inputs cannot be cached")
    for name, a in items:
        a = np.asarray(a)
        data = _column_bytes(a)
        head = f"{name}\0{a.dtype.str}\0{a.shape}".encode()
        parts.append(struct.pack("<I", len(head)) + head + struct.pack("<Q", len(data)) + data)
    return b"\x1e".join(parts)


def digest(key: bytes) -> bytes:
    """The lookup hash of a key (16 bytes)."""
    return hashlib.blake2b(key, digest_size=16).digest()
