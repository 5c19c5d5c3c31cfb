"""Turning what callers pass (DataFrame, dict, array, one row) into the float64 workspace.

Numbers become float64, booleans 1.0/0.0, missing values NaN, strings category codes (the
index in the field's vocabulary; -1 for an unseen category). Validation against the input
schema happens here, once, outside the kernels, with errors in the caller's terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit

from .errors import (
    FieldTypeError,
    InputError,
    MissingFieldError,
    MissingValueError,
    ShapeError,
    UnknownCategoryError,
)
from .ir import Field
from .ops import compile_later
from .xsd import xs_double

_MISSING_STRINGS = frozenset({"", "NA", "N/A", "NaN", "nan"})


def _category_text(v: Any, vocab: Mapping[str, int]) -> str:
    """The category a non-string value names in a string field: its text, or for a number
    that is exactly an integer, the integer's text when the vocabulary has it (pandas turns an
    integer column holding a missing value into floats: 8.0 is category "8", as PMML's type
    conversion reads it)."""
    s = str(v)
    if s in vocab or isinstance(v, bool | np.bool_):
        return s
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer():
        i = str(int(v))
        if i in vocab:
            return i
    return s


def _rows_list(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def native(X: np.ndarray) -> np.ndarray:
    """``X`` in a dtype the compiled copy takes: big-endian numbers in the machine's byte
    order, a long double (or any number wider than 64 bits) as float64; else ``X`` itself."""
    dt = X.dtype
    if dt.isnative and dt.itemsize <= 8:
        return X
    if dt.itemsize > 8:
        return X.astype(np.float64)
    return X.astype(dt.newbyteorder("="))


def _is_pandas_na(v: Any) -> bool:
    """``v`` is pandas' missing-value marker ``pd.NA`` (without importing pandas)."""
    t = type(v)
    return t.__name__ == "NAType" and t.__module__.startswith("pandas")


def _refusing(kind: type[InputError], bad: np.ndarray, text: str) -> InputError:
    """``kind`` of error for the rows ``bad`` (bool mask), worded by ``text`` with
    ``{rows}`` where the rows go; its ``rows`` / ``row_reason`` let a caller isolating
    refused rows set them all aside at once (:func:`scorer.batch.score_isolating`)."""
    exc = kind(text.format(rows=f" ({_rows_list(bad)})"))
    exc.rows = np.flatnonzero(bad)
    exc.row_reason = text.format(rows="")
    return exc


@njit(cache=True, nogil=True)
def copy_checked(ws, X, refuse_nan, refuse_inf):
    """Copy X into the first columns of ws; return the flat index of the first refused cell
    (NaN where refuse_nan, +/-inf where refuse_inf) or -1. One pass, no temporaries."""
    n, f = X.shape
    for i in range(n):
        # a row's copy has no branch, so it vectorises (x - x is 0 unless x is NaN or inf);
        # only a row holding a non-finite value is looked at again (30 features: 31 -> 16 ns
        # per row)
        odd = False
        for j in range(f):
            v = np.float64(X[i, j])
            ws[i, j] = v
            odd |= v - v != 0.0
        if odd:
            for j in range(f):
                v = ws[i, j]
                if v - v != 0.0:  # NaN or inf
                    if (v != v and refuse_nan[j]) or (v == v and refuse_inf[j]):
                        return i * f + j
    return -1


def copy_checked_reference(ws: np.ndarray, X: np.ndarray, refuse_nan: np.ndarray,
                           refuse_inf: np.ndarray) -> int:
    """NumPy version of :func:`copy_checked`: the same copy (NumPy's casts to float64 round
    as Numba's do) and the same status; rows after a refused one are copied too."""
    n, f = X.shape
    block = ws[:n, :f]
    block[...] = X
    with np.errstate(invalid="ignore"):
        odd = block - block != 0.0
    if not odd.any():
        return -1
    refused = odd & ((np.isnan(block) & refuse_nan) | (np.isinf(block) & refuse_inf))
    hit = np.flatnonzero(refused)
    return int(hit[0]) if hit.size else -1


#: the input copy by the types of its arguments (see :func:`copy_into`): ``copy_checked``
#: once compiled for them, absent until then
_COPIES: dict[tuple[Any, ...], Any] = {}


def copy_into(ws: np.ndarray, X: np.ndarray, refuse_nan: np.ndarray,
              refuse_inf: np.ndarray) -> int:
    """:func:`copy_checked` where it is compiled for these argument types (or in Numba's
    on-disk cache), else :func:`copy_checked_reference`, with the compile queued on the
    background compile thread (:func:`scorer.ops.compile_later`): a server starting with an
    empty cache does not compile a copy per input dtype before it is ready (about 0.3 s
    each), and its first requests of a dtype take the NumPy copy meanwhile, with the same
    results."""
    fx, fw = X.flags, ws.flags
    key = (X.dtype, X.ndim, fx.c_contiguous, fx.f_contiguous, fx.writeable, fx.aligned,
           ws.ndim, fw.c_contiguous, refuse_nan.dtype, refuse_inf.dtype)
    copy = _COPIES.get(key)
    if copy is None:
        compile_later(copy_checked, (ws, X, refuse_nan, refuse_inf),
                      lambda: _COPIES.__setitem__(key, copy_checked))
        copy = _COPIES.get(key, copy_checked_reference)
    return copy(ws, X, refuse_nan, refuse_inf)


class InputEncoder:
    """Encodes caller input for one input schema.

    Parameters
    ----------
    fields : list of Field
        The model's input schema, in order.
    width : int
        Total workspace width (inputs plus every step's outputs).
    """

    def __init__(self, fields: list[Field], width: int) -> None:
        self.fields = fields
        self.width = width
        self.n_inputs = len(fields)
        self.names = [f.name for f in fields]
        self.all_numeric = all(f.type in ("double", "integer", "boolean") for f in fields)
        self.vocab = {
            f.name: {c: i for i, c in enumerate(f.categories or [])}
            for f in fields if f.type == "string"
        }
        self.nan_checked = np.array([f.missing == "error" for f in fields])
        self.inf_checked = np.array([f.infinite == "error" for f in fields])

    # --- public -------------------------------------------------------------------------------
    def encode(self, X: Any) -> tuple[np.ndarray, bool]:
        """Return ``(ws, single_row)``: ``ws`` is float64[n_rows, width] with inputs filled."""
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiub" and self.all_numeric:
            return self._from_numeric_array(X)
        # pandas without importing it at module import time
        if hasattr(X, "columns") and hasattr(X, "iloc"):
            # (a label that is not a string names field str(label), as the export named it:
            # a frame of columns 0, 1, 2 fits inputs "0", "1", "2")
            return self._from_columns({c if isinstance(c, str) else str(c): X[c]
                                       for c in X.columns}, len(X)), False
        if isinstance(X, Mapping):
            values = list(X.values())
            if values and all(np.ndim(v) == 0 for v in values):
                return self._from_columns({k: [v] for k, v in X.items()}, 1), True
            n = len(values[0]) if values else 0
            return self._from_columns(X, n), False
        if isinstance(X, Sequence) and X and isinstance(X[0], Mapping):
            for name in self.names:  # (a key missing from a row is an error, not a NaN)
                for i, row in enumerate(X):
                    if name not in row:
                        raise MissingFieldError(f"missing input field '{name}' in row {i} "
                                                f"(model expects {self.n_inputs}: "
                                                f"{', '.join(self.names)})")
            cols = {name: [row[name] for row in X] for name in self.names}
            return self._from_columns(cols, len(X)), False
        arr = np.asarray(X, dtype=object if not self.all_numeric else None)
        if arr.dtype.kind in "fiub" and self.all_numeric:
            return self._from_numeric_array(arr)
        return self._from_object_array(arr)

    def encode_numeric(self, X: np.ndarray, ws: np.ndarray) -> None:
        """Encode the numeric 2-D array ``X`` (n_rows, n_inputs) into the first columns of
        the caller's workspace ``ws`` (float64[n_rows, width], C order); the rest of ``ws``
        is left as it is. Raises as :meth:`encode` does."""
        self._check_width(X)
        X = native(X)
        if copy_into(ws, X, self.nan_checked, self.inf_checked) >= 0:
            self._refuse_numeric(X)

    # --- numeric fast path --------------------------------------------------------------------
    def _from_numeric_array(self, X: np.ndarray) -> tuple[np.ndarray, bool]:
        single = X.ndim == 1
        if single:
            X = X.reshape(1, -1)
        X = native(X)
        self._check_width(X)
        ws = np.empty((X.shape[0], self.width), dtype=np.float64)
        if copy_into(ws, X, self.nan_checked, self.inf_checked) >= 0:
            self._refuse_numeric(X)
        return ws, single

    def _refuse_numeric(self, X: np.ndarray) -> None:
        """Raise the error for a numeric array the copy refused, naming every refused row
        (from ``X`` itself: the compiled copy stops at the first refused cell, and the
        workspace rows after it hold nothing)."""
        self._check_numeric(X.astype(np.float64))
        raise RuntimeError("the input copy refused a cell that the checks accept")

    def _check_width(self, X: np.ndarray) -> None:
        if X.ndim != 2:
            raise ShapeError(f"expected a 2-D array of shape (rows, {self.n_inputs}), got "
                             f"{X.ndim}-D")
        if X.shape[1] != self.n_inputs:
            raise ShapeError(f"expected {self.n_inputs} features, got {X.shape[1]}")

    def _check_numeric(self, block: np.ndarray) -> None:
        if block.size == 0 or np.isfinite(block).all():
            return
        for j, f in enumerate(self.fields):
            col = block[:, j]
            if self.nan_checked[j]:
                bad = np.isnan(col)
                if bad.any():
                    raise _refusing(MissingValueError, bad, f"field '{f.name}' has missing "
                                    "values{rows}; this model does not accept missing values "
                                    "for it")
            if self.inf_checked[j]:
                bad = np.isinf(col)
                if bad.any():
                    raise _refusing(FieldTypeError, bad, f"field '{f.name}' has infinite "
                                    "values{rows}; this model accepts only finite numbers for "
                                    "it")

    # --- general path -------------------------------------------------------------------------
    def _from_object_array(self, arr: np.ndarray) -> tuple[np.ndarray, bool]:
        single = arr.ndim == 1
        if single:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ShapeError(f"expected a 2-D array of shape (rows, {self.n_inputs})")
        if arr.shape[1] != self.n_inputs:
            raise ShapeError(f"expected {self.n_inputs} features, got {arr.shape[1]}")
        cols = {name: arr[:, j] for j, name in enumerate(self.names)}
        return self._from_columns(cols, arr.shape[0]), single

    def _from_columns(self, cols: Mapping[str, Any], n: int) -> np.ndarray:
        missing = [name for name in self.names if name not in cols]
        if missing:
            raise MissingFieldError(
                f"missing input field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)} (model expects "
                f"{self.n_inputs}: {', '.join(self.names)})"
            )
        ws = np.empty((n, self.width), dtype=np.float64)
        for j, f in enumerate(self.fields):
            values = cols[f.name]
            if hasattr(values, "to_numpy"):
                values = values.to_numpy(dtype=object) if f.type == "string" else values
            if len(values) != n:
                raise ShapeError(f"field '{f.name}' has {len(values)} values, expected {n}")
            ws[:, j] = self._encode_column(f, values)
        self._check_numeric(ws[:, : self.n_inputs])
        return ws

    def _encode_column(self, f: Field, values: Any) -> np.ndarray:
        if f.type == "string":
            return self._encode_strings(f, values)
        if hasattr(values, "dtype") and getattr(values.dtype, "kind", "O") in "fiub":
            return np.asarray(values, dtype=np.float64)
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            out[i] = self._number(f, v)
        return out

    @staticmethod
    def _number(f: Field, v: Any) -> float:
        if v is None:
            return np.nan
        if isinstance(v, bool | np.bool_):
            return 1.0 if v else 0.0
        if isinstance(v, int | float | np.integer | np.floating):
            return float(v)
        if isinstance(v, str):
            s = v.strip(" \t\n\r")  # XML whitespace only (str.strip also drops NBSP)
            if s in _MISSING_STRINGS:
                return np.nan
            if s in ("TRUE", "true", "True"):
                return 1.0
            if s in ("FALSE", "false", "False"):
                return 0.0
            try:  # the PMML reader's number syntax: not Python's ('1_000', '\u0661', 'inf')
                return xs_double(s)
            except ValueError:
                pass
        try:  # pandas NaT and similar
            if v != v:
                return np.nan
        except (TypeError, ValueError):
            if _is_pandas_na(v):  # pd.NA: its comparisons raise
                return np.nan
        raise FieldTypeError(f"field '{f.name}' expects numbers ({f.type}), got {v!r} (numbers "
                             "as text are read as XML Schema's xs:double)")

    def _encode_strings(self, f: Field, values: Any) -> np.ndarray:
        vocab = self.vocab[f.name]
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and v != v):
                out[i] = np.nan
                continue
            if not isinstance(v, str):
                try:
                    if v != v:  # NaN-like
                        out[i] = np.nan
                        continue
                except (TypeError, ValueError):
                    if _is_pandas_na(v):  # pd.NA: its comparisons raise
                        out[i] = np.nan
                        continue
                v = _category_text(v, vocab)
            code = vocab.get(v)
            if code is None:
                if f.unknown == "error":
                    allowed = ", ".join(repr(c) for c in (f.categories or [])[:10])
                    more = "..." if len(f.categories or []) > 10 else ""
                    raise UnknownCategoryError(
                        f"unknown category {v!r} for field '{f.name}' in row {i} "
                        f"(known: {allowed}{more})"
                    )
                out[i] = -1.0
            else:
                out[i] = code
        return out
