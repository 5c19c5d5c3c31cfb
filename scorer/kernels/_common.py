"""Helpers shared by kernel modules."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..ir import Step, Table


def table(step: Step, role: str) -> Table:
    try:
        return step.tables[role]
    except KeyError:
        raise KeyError(f"step '{step.name}' has no '{role}' table") from None


def f64(col) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(col, dtype=np.float64))


def i64(col) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(col, dtype=np.int64))


def param_float(step: Step, key: str, default: float | None = None) -> float:
    """Numeric params may be written as "NaN" / "Infinity" / "-Infinity" (JSON has no such)."""
    v = step.params.get(key, default)
    if v is None:
        raise KeyError(f"step '{step.name}' lacks parameter '{key}'")
    return float(v)


def param_choice(step: Step, key: str, options: dict[str, int], default: str | None = None) -> int:
    """The code of a param that names one of ``options`` (``default`` when absent)."""
    v = step.params.get(key, default)
    if v not in options:
        raise ValueError(f"{step.op} step '{step.name}': {key}={v!r} unknown "
                         f"(known: {', '.join(options)})")
    return options[v]


def pack_cols(first: int, in_cols: np.ndarray, out_cols: np.ndarray) -> np.ndarray:
    """A one-row kernel's small arguments in one int64 array ``[first, n_in, in_cols...,
    out_cols...]`` (:func:`unpack_cols` reads it back): each array argument costs a call
    ~40 ns of unboxing, as much as a small step's work."""
    return np.concatenate([np.array([first, len(in_cols)], dtype=np.int64),
                           in_cols, out_cols]).astype(np.int64)


@njit(cache=True, nogil=True)
def unpack_cols(packed):
    """``(first, in_cols, out_cols)`` of a :func:`pack_cols` array (views, no copy)."""
    n_in = packed[1]
    return packed[0], packed[2 : 2 + n_in], packed[2 + n_in :]
