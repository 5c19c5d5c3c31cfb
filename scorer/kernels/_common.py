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


def index_col(col, what: str, dtype: type = np.int32) -> np.ndarray:
    """An integer table column as a C-contiguous ``dtype`` array.

    Parameters
    ----------
    col : array-like
        The column as read (any integer, bool or float dtype).
    what : str
        Names the column in the error, e.g. ``"predicate_tree: trees.output"``.
    dtype : numpy integer type
        The kernel's index type.

    Raises
    ------
    ValueError
        A value is not an integer, or does not fit ``dtype``.

    Notes
    -----
    The range is checked on the column as stored, before the cast: ``astype`` wraps, so
    2**32 would otherwise become 0, an index that passes every later bound check.
    """
    a = np.asarray(col)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.trunc(a)):
            raise ValueError(f"{what} must hold integers")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{what} must hold integers")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{what} holds {a.max() if a.max() > info.max else a.min()}, "
                         f"outside the {np.dtype(dtype).name} range")
    return np.ascontiguousarray(a.astype(dtype))


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
