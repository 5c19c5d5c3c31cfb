"""Deterministic assignment of units to experiment arms and to the permanent control group.

The algorithm (docs/experiments.md gives it with test vectors for other languages):

1. ``key = UTF-8(salt) + b"\\x00" + UTF-8(unit)``, where ``unit`` is the unit id as text (an
   integer id in decimal, without sign padding or exponent);
2. ``bucket = int.from_bytes(sha256(key)[:8], "big") % 10000``;
3. arms take consecutive bucket ranges in their listed order: arm ``i`` has
   ``[round(10000 * w_0..i-1), round(10000 * w_0..i))`` where ``w_0..i`` is the sum of the
   first ``i + 1`` weights;
4. the permanent control group is ``bucket(control_salt, unit) < round(10000 * fraction)``:
   its own salt, so no experiment's salt or weights can move a unit into or out of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

BUCKETS = 10_000

try:  # CPython's own SHA-256: for a few bytes it runs much less code than OpenSSL's EVP layer
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]  # 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]  # 3.11
    except ImportError:  # another interpreter
        _sha256 = hashlib.sha256


def unit_text(unit: object) -> str:
    """The unit id as the hash reads it: integers in decimal, text as it is.

    Raises ValueError for a float that is not an integer, and for bytes that are not UTF-8.
    """
    t = type(unit)
    if t is str:  # (the common cases first: this runs on every routed request)
        return unit  # type: ignore[return-value]
    if t is int:
        return str(unit)
    if isinstance(unit, bytes):
        return unit.decode("utf-8")
    if isinstance(unit, str):
        return unit
    if isinstance(unit, bool | np.bool_):
        raise ValueError("a unit id cannot be a boolean")
    if isinstance(unit, int | np.integer):
        return str(int(unit))
    if isinstance(unit, float | np.floating):
        if float(unit).is_integer():
            return str(int(unit))
        raise ValueError(f"unit id {unit!r} is not an integer")
    raise ValueError(f"unit id of type {type(unit).__name__} is not supported")


def bucket(salt: str, unit: object) -> int:
    """The unit's bucket in ``[0, 10000)`` under ``salt``."""
    key = salt.encode("utf-8") + b"\x00" + unit_text(unit).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


def salt_state(salt: str) -> Any:
    """The hash state after ``UTF-8(salt) + b"\\x00"``: :func:`text_bucket` copies it
    instead of hashing the salt again on every request."""
    return _sha256(salt.encode("utf-8") + b"\x00")


def text_bucket(state: Any, unit: str) -> int:
    """:func:`bucket` of a unit id already in text form (:func:`unit_text`), from the salt's
    :func:`salt_state` (the request path: same result, less work)."""
    h = state.copy()
    h.update(unit.encode("utf-8"))
    return int.from_bytes(h.digest()[:8], "big") % BUCKETS


def bounds(weights: Sequence[float]) -> np.ndarray:
    """Upper bucket bound of each arm (consecutive ranges in listed order).

    Returns
    -------
    ndarray of int64, shape (n_arms,)
        Arm ``i`` holds buckets ``[bounds[i-1], bounds[i])`` (``bounds[-1] == 10000``).
    """
    w = np.asarray(weights, dtype=np.float64)
    cum = np.cumsum(w) / w.sum()
    out = np.rint(cum * BUCKETS).astype(np.int64)
    out[-1] = BUCKETS
    return out


def arm_index(b: int | np.ndarray, upper: np.ndarray) -> int | np.ndarray:
    """Index of the arm holding bucket(s) ``b``, given :func:`bounds`."""
    idx = np.searchsorted(upper, b, side="right")
    return int(idx) if np.ndim(idx) == 0 else idx


def in_control_group(salt: str, unit: object, fraction: float) -> bool:
    """Whether ``unit`` is in the permanent control group of size ``fraction``."""
    return fraction > 0 and bucket(salt, unit) < round(fraction * BUCKETS)
