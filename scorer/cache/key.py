"""The output cache's key: everything the outputs depend on, as bytes.

The key covers the target's fingerprint (a new version, or new parameters under the same
version, never meets an old entry), the requested outputs, the row count and every input
column's name, dtype and values; a value of an object column with its type (``nan`` and
``"nan"``, ``1`` and ``"1"`` are different keys). A request that cannot be keyed exactly (a
model without a fingerprint, a value of another type) is not cached: :class:`Uncacheable`.
For an entity request the features stage has already put
the looked-up feature values into the inputs, so new feature values make a new key. The
whole key is stored with the value and compared on a hit; its hash only finds the slot.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from ..pipeline import Request, Target


class Uncacheable(Exception):
    """A request the cache cannot key exactly: it is scored, not cached."""


def _value_bytes(v: object) -> bytes:
    """One value of an object column, tagged with its type (bool before int: a subclass)."""
    if v is None:
        return b"N"
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogatepass")
        return b"s" + struct.pack("<I", len(b)) + b
    if isinstance(v, bytes):
        return b"b" + struct.pack("<I", len(v)) + v
    if isinstance(v, (bool, np.bool_)):
        return b"?1" if v else b"?0"
    if isinstance(v, (int, np.integer)):
        b = str(int(v)).encode()
        return b"i" + struct.pack("<I", len(b)) + b
    if isinstance(v, (float, np.floating)):
        return b"d" + struct.pack("<d", float(v))  # (the bits: -0.0 and NaN payloads kept)
    raise Uncacheable(f"a value of type {type(v).__name__} in an object column")


def _column_bytes(a: np.ndarray) -> bytes:
    if a.dtype == object:
        return b"".join(map(_value_bytes, a.reshape(-1).tolist()))
    return np.ascontiguousarray(a).tobytes()


def request_key(target: Target, request: Request) -> bytes:
    """The full cache key of ``request`` answered by ``target``.

    Raises
    ------
    Uncacheable
        The target has no fingerprint (a model built in memory: two of them could not be
        told apart), or the request has no inputs or a value the key cannot hold exactly.
    """
    if not target.fingerprint:
        raise Uncacheable("the model has no fingerprint")
    parts = [b"v2", target.fingerprint.encode(), b"\0".join(o.encode() for o in request.outputs),
             struct.pack("<q", request.rows)]
    inputs = request.inputs
    if isinstance(inputs, np.ndarray):
        items = [("", inputs)]
    elif isinstance(inputs, dict):
        items = sorted(inputs.items())
    else:
        raise Uncacheable("a request without model inputs")
    for name, a in items:
        a = np.asarray(a)
        data = _column_bytes(a)
        head = f"{name}\0{a.dtype.str}\0{a.shape}".encode()
        parts.append(struct.pack("<I", len(head)) + head + struct.pack("<Q", len(data)) + data)
    return b"\x1e".join(parts)


def key_or_none(target: Target, request: Request) -> bytes | None:
    """:func:`request_key`, or None for a request that is not cached (:class:`Uncacheable`):
    the cache stages then score it without a lookup."""
    try:
        return request_key(target, request)
    except Uncacheable:
        return None


def digest(key: bytes) -> bytes:
    """The lookup hash of a key (16 bytes)."""
    return hashlib.blake2b(key, digest_size=16).digest()
