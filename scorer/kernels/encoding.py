"""Family ``encoding``: category encoders (one-hot, ordinal) and binning.

Category lookup (shared by ``one_hot`` and ``ordinal``)
-------------------------------------------------------
Each step input is either a *code input* -- its workspace column holds string category codes:
a string input field, or a column derived from one that keeps its vocabulary (e.g. imputed) --
or a *numeric input* (any other column). Table ``categories`` lists the categories each input
knows, one row per category, rows of one input in any order:

- ``input`` (int32): position of the input in the step's inputs;
- ``category`` (string, nullable): the category of a code input, as in the vocabulary; null for
  numeric inputs and for the missing row;
- ``number`` (float64): the category of a numeric input; NaN for code inputs and for the missing
  row;
- ``missing`` (bool): the row is the *missing-value category* (the encoder saw None / NaN in
  training and treats it as a category);
- one op-specific column (below).

A value ``x`` of input ``j`` *matches* a row of ``j`` as follows: NaN matches the missing row; a
code input's ``x = c`` (a non-negative integer) matches the row whose ``category`` equals
``vocabulary[c]`` (code -1, an unseen string, matches nothing; nor does a vocabulary entry that
has no row); a numeric input's ``x`` matches the row whose ``number == x`` (float64 equality,
so -0.0 matches 0.0). A value that matches no row is *unknown*. An input has at most one
missing row and never repeats a category; every ``category`` of a code input is in its
vocabulary (a reader refuses the bundle otherwise).

Table ``inputs`` has one row per step input, with ``handle_unknown`` (string, below) and an
optional ``field`` (string): the input field named in error messages.

Ops
---
``one_hot`` v1
    Column ``categories.output`` (int32): position in the step's outputs set to 1.0 for the
    category, or -1 for none (a dropped category encodes as all zeros). Several categories may
    share one output (infrequent categories grouped together). Column ``inputs.handle_unknown``
    is ``"error"`` (the row cannot be scored: an unknown-category error names the field, the
    value and the row), ``"ignore"`` (the input sets no output) or ``"infrequent"`` (the input
    sets output ``inputs.infrequent_output``, int32, when it is >= 0). Every output is first set
    to 0.0, then each input sets the output of its matched row, if >= 0, to 1.0. Outputs are
    never NaN.
``ordinal`` v1
    One output per input. Column ``categories.code`` (float64, NaN allowed): the value output
    ``j`` takes for the category (typically the category's index, equal for grouped infrequent
    categories, and ``encoded_missing_value`` on the missing row). ``inputs.handle_unknown``
    is ``"error"`` (as for ``one_hot``) or ``"value"``: an unknown value outputs
    ``inputs.unknown_value`` (float64, NaN allowed).
``kbins`` v1
    Binning (scikit-learn's KBinsDiscretizer). Table ``edges``: columns ``input`` (int32) and
    ``edge`` (float64); the rows of input ``j``, in table order, are its ascending bin edges
    ``e_0 <= ... <= e_m`` (``m >= 1`` bins; ``e_0`` and ``e_m`` are recorded but unused). The
    bin of ``x`` is the number of interior edges ``e_1 .. e_{m-1}`` that are ``<= x``, i.e.
    ``np.searchsorted(e[1:-1], x, side="right")``, in ``0 .. m-1``; NaN falls in the last bin
    (NumPy orders NaN last). Param ``float32_input`` (bool, default false): round ``x`` to
    float32 first (scikit-learn's ``dtype=np.float32``). Param ``encode``: ``"ordinal"`` --
    output ``j`` is the bin number; ``"onehot"`` -- input ``j`` owns the next ``m_j`` outputs
    (in input order) and sets the one of its bin to 1.0, the others to 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from ..errors import MissingValueError, UnknownCategoryError
from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, table

_ONE_HOT_UNKNOWN = ("error", "ignore", "infrequent")
_ORDINAL_UNKNOWN = ("error", "value")


# --- category lookup -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _slot(x, is_code, off, cnt, keys, known):
    """Slot of ``x`` in one input's region ``[off, off + cnt]`` (``off + cnt``: missing), or -1
    for an unknown value. Code inputs index their region directly (``cnt`` = vocabulary
    size); numeric inputs binary-search their sorted ``keys``."""
    if math.isnan(x):
        s = off + cnt
    elif is_code:
        if x >= 0.0 and x < cnt:
            c = int(x)
            s = off + c if c == x else -1
        else:
            s = -1
    else:
        lo = off
        hi = off + cnt
        while lo < hi:  # first key >= x
            mid = (lo + hi) >> 1
            if keys[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        s = lo if lo < off + cnt and keys[lo] == x else -1
    if s >= 0 and not known[s]:
        s = -1
    return s


def _slots_reference(x: np.ndarray, is_code: bool, off: int, cnt: int, keys: np.ndarray,
                     known: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_slot` for one input: ``x`` of shape (n_rows,) -> int64 (n_rows,)."""
    s = np.full(x.shape[0], -1, dtype=np.int64)
    nan = np.isnan(x)
    s[nan] = off + cnt
    if is_code:
        with np.errstate(invalid="ignore"):
            ok = ~nan & (x >= 0) & (x < cnt) & (x == np.floor(x))
        s[ok] = off + x[ok].astype(np.int64)
    elif cnt > 0:
        region = keys[off: off + cnt]
        pos = np.searchsorted(region, x, side="left")
        hit = ~nan & (pos < cnt)
        hit[hit] = region[pos[hit]] == x[hit]
        s[hit] = off + pos[hit]
    valid = s >= 0
    valid[valid] = known[s[valid]]
    return np.where(valid, s, -1)


class _Lookup:
    """Bound form of a ``categories`` table: ``n_in`` inputs, ``n_slots`` slots in total (each
    input's categories plus its missing slot); every array is C-contiguous.

    Attributes
    ----------
    is_code : bool (n_in,)
    off, cnt : int64 (n_in,)
        Input ``j`` owns slots ``off[j] .. off[j] + cnt[j]``; the last is its missing slot.
    keys : float64 (n_slots,)
        Sorted numeric categories (NaN for code inputs and missing slots).
    known : bool (n_slots,)
        Whether the slot is a category of the input.
    rows : int64 (n_slots,)
        Table row behind each known slot (-1 otherwise), to gather the op's value column.
    """

    def __init__(self, step: Step, ctx: BindContext) -> None:
        t = table(step, "categories")
        n_in = len(step.inputs)
        inp = i64(t["input"])
        missing = np.asarray(t["missing"], dtype=np.bool_)
        n_rows = len(inp)
        category = t.get("category")
        category = np.full(n_rows, None, dtype=object) if category is None else np.asarray(
            category, dtype=object)
        number = f64(t["number"]) if "number" in t else np.full(n_rows, np.nan)
        if not (len(missing) == len(category) == len(number) == n_rows):
            raise ValueError("categories: columns differ in length")
        if n_rows and (inp.min() < 0 or inp.max() >= n_in):
            raise ValueError(f"categories: input position out of range 0..{n_in - 1}")
        self.vocab: list[list[str] | None] = [ctx.vocab.get(c) for c in step.inputs]
        self.is_code = np.array([v is not None for v in self.vocab], dtype=np.bool_)
        self.off = np.zeros(n_in, dtype=np.int64)
        self.cnt = np.zeros(n_in, dtype=np.int64)
        key_parts, row_parts = [], []
        start = 0
        for j in range(n_in):
            r = np.flatnonzero(inp == j)
            miss = r[missing[r]]
            cat = r[~missing[r]]
            if len(miss) > 1:
                raise ValueError(f"categories: input {j} has {len(miss)} missing rows")
            vocab = self.vocab[j]
            if vocab is not None:
                index = {c: k for k, c in enumerate(vocab)}
                n = len(vocab)
                keys = np.full(n, np.nan)
                rows = np.full(n, -1, dtype=np.int64)
                for row in cat:
                    c = category[row]
                    if c is None or c not in index:
                        raise ValueError(f"categories: {c!r} is not in the vocabulary of "
                                         f"'{step.inputs[j]}'")
                    if rows[index[c]] >= 0:
                        raise ValueError(f"categories: {c!r} repeated for input {j}")
                    rows[index[c]] = row
            else:
                if any(category[row] is not None for row in cat):
                    raise ValueError(f"categories: string categories for input "
                                     f"'{step.inputs[j]}', which holds numbers, not codes")
                vals = number[cat]
                if np.isnan(vals).any():
                    raise ValueError(f"categories: NaN number for input {j} (use the missing "
                                     "row)")
                order = np.argsort(vals, kind="stable")
                keys = vals[order]
                if len(keys) > 1 and (np.diff(keys) == 0).any():
                    raise ValueError(f"categories: repeated number for input {j}")
                rows = cat[order].astype(np.int64)
                n = len(keys)
            self.off[j], self.cnt[j] = start, n
            key_parts += [keys, [np.nan]]
            row_parts += [rows, [miss[0] if len(miss) else -1]]
            start += n + 1
        self.keys = f64(np.concatenate(key_parts) if key_parts else np.zeros(0))
        self.rows = i64(np.concatenate(row_parts) if row_parts else np.zeros(0))
        self.known = np.ascontiguousarray(self.rows >= 0)

    def gather(self, column: np.ndarray, dtype: Any, fill: Any) -> np.ndarray:
        """Per-slot values of a table column (``fill`` on unknown slots)."""
        out = np.full(len(self.rows), fill, dtype=dtype)
        out[self.known] = np.asarray(column, dtype=dtype)[self.rows[self.known]]
        return np.ascontiguousarray(out)

    def args(self) -> tuple[np.ndarray, ...]:
        return self.is_code, self.off, self.cnt, self.keys, self.known

    def describe(self, j: int, x: float) -> Any:
        """The caller's value behind workspace value ``x`` of input ``j``."""
        vocab = self.vocab[j]
        if vocab is None:
            return x
        if x >= 0 and x < len(vocab) and x == int(x):
            return vocab[int(x)]
        return "<a category not in the model's vocabulary>"

    def known_list(self, j: int, limit: int = 10) -> str:
        rows = self.rows[self.off[j]: self.off[j] + self.cnt[j]]
        if self.vocab[j] is not None:
            names = [repr(self.vocab[j][k]) for k in np.flatnonzero(rows >= 0)]
        else:
            names = [repr(float(k)) for k in self.keys[self.off[j]: self.off[j] + self.cnt[j]]]
        more = "..." if len(names) > limit else ""
        return ", ".join(names[:limit]) + more


def _inputs_table(step: Step, modes: tuple[str, ...]) -> tuple[Any, np.ndarray, list[str]]:
    t = table(step, "inputs")
    handle = [str(h) for h in np.asarray(t["handle_unknown"], dtype=object)]
    if len(handle) != len(step.inputs):
        raise ValueError(f"inputs: {len(handle)} rows for {len(step.inputs)} step inputs")
    for h in handle:
        if h not in modes:
            raise ValueError(f"handle_unknown {h!r} unknown (known: {', '.join(modes)})")
    fields = t.get("field")
    names = [str(f) if f is not None else c for f, c in zip(
        fields if fields is not None else [None] * len(handle), step.inputs, strict=True)]
    return t, np.array([h == "error" for h in handle], dtype=np.bool_), names


def _error_builder(step: Step, lookup: _Lookup, in_cols: np.ndarray, unk_error: np.ndarray,
                   fields: list[str]) -> Callable[[np.ndarray, int], Exception]:
    """The Bound's ``error(ws, row)``: names the first refusing input of ``row``."""

    def error(ws: np.ndarray, row: int) -> Exception:
        for j in np.flatnonzero(unk_error):
            x = float(ws[row, in_cols[j]])
            s = _slots_reference(np.array([x]), bool(lookup.is_code[j]), int(lookup.off[j]),
                                 int(lookup.cnt[j]), lookup.keys, lookup.known)[0]
            if s >= 0:
                continue
            if math.isnan(x):
                return MissingValueError(
                    f"field '{fields[j]}' has a missing value in row {row}; step "
                    f"'{step.name}' did not see missing values in training and refuses them")
            return UnknownCategoryError(
                f"unknown category {lookup.describe(j, x)!r} for field '{fields[j]}' in row "
                f"{row} (step '{step.name}' refuses categories not seen in training; known: "
                f"{lookup.known_list(j)})")
        return UnknownCategoryError(f"step '{step.name}' refused row {row}")

    return error


# --- one_hot ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def one_hot_kernel(ws, in_cols, out_cols, is_code, off, cnt, keys, known, target, unk_error,
                   unk_target):
    n = ws.shape[0]
    for i in range(n):
        for k in range(out_cols.shape[0]):
            ws[i, out_cols[k]] = 0.0
        for j in range(in_cols.shape[0]):
            s = _slot(ws[i, in_cols[j]], is_code[j], off[j], cnt[j], keys, known)
            if s >= 0:
                t = target[s]
            elif unk_error[j]:
                return i
            else:
                t = unk_target[j]
            if t >= 0:
                ws[i, out_cols[t]] = 1.0
    return -1


def one_hot_reference(ws, in_cols, out_cols, is_code, off, cnt, keys, known, target, unk_error,
                      unk_target):
    n = ws.shape[0]
    out = np.zeros((n, out_cols.shape[0]))
    bad = n
    for j in range(in_cols.shape[0]):
        s = _slots_reference(ws[:, in_cols[j]], is_code[j], off[j], cnt[j], keys, known)
        if unk_error[j] and (s < 0).any():
            bad = min(bad, int(np.flatnonzero(s < 0)[0]))
        t = np.where(s >= 0, target[np.maximum(s, 0)], unk_target[j])
        rows = np.flatnonzero(t >= 0)
        out[rows, t[rows]] = 1.0
    if bad < n:
        return bad
    ws[:, out_cols] = out
    return -1


@register_op("one_hot", family="encoding")
def bind_one_hot(step: Step, ctx: BindContext) -> Bound:
    lookup = _Lookup(step, ctx)
    t, unk_error, fields = _inputs_table(step, _ONE_HOT_UNKNOWN)
    n_out = len(step.outputs)
    target = lookup.gather(table(step, "categories")["output"], np.int64, -1)
    infrequent = i64(t["infrequent_output"]) if "infrequent_output" in t else np.full(
        len(step.inputs), -1, dtype=np.int64)
    handle = [str(h) for h in t["handle_unknown"]]
    # "ignore" and "error" set nothing for an unknown value (error stops first)
    unk_target = np.ascontiguousarray(np.where(
        np.array([h == "infrequent" for h in handle], dtype=bool), infrequent, -1)).astype(
        np.int64)
    for name, arr in (("output", target), ("infrequent_output", unk_target)):
        if len(arr) and (arr.max() >= n_out or arr.min() < -1):
            raise ValueError(f"one_hot: {name} out of range -1..{n_out - 1}")
    in_cols = ctx.cols(step.inputs, step=step)
    args = (in_cols, ctx.cols(step.outputs, step=step), *lookup.args(), target, unk_error,
            unk_target)
    return Bound(one_hot_kernel, one_hot_reference, args,
                 error=_error_builder(step, lookup, in_cols, unk_error, fields))


# --- ordinal ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def ordinal_kernel(ws, in_cols, out_cols, is_code, off, cnt, keys, known, code, unk_error,
                   unk_value):
    n = ws.shape[0]
    for i in range(n):
        for j in range(in_cols.shape[0]):
            s = _slot(ws[i, in_cols[j]], is_code[j], off[j], cnt[j], keys, known)
            if s >= 0:
                ws[i, out_cols[j]] = code[s]
            elif unk_error[j]:
                return i
            else:
                ws[i, out_cols[j]] = unk_value[j]
    return -1


def ordinal_reference(ws, in_cols, out_cols, is_code, off, cnt, keys, known, code, unk_error,
                      unk_value):
    n = ws.shape[0]
    out = np.empty((n, in_cols.shape[0]))
    bad = n
    for j in range(in_cols.shape[0]):
        s = _slots_reference(ws[:, in_cols[j]], is_code[j], off[j], cnt[j], keys, known)
        if unk_error[j] and (s < 0).any():
            bad = min(bad, int(np.flatnonzero(s < 0)[0]))
        out[:, j] = np.where(s >= 0, code[np.maximum(s, 0)], unk_value[j])
    if bad < n:
        return bad
    ws[:, out_cols] = out
    return -1


@register_op("ordinal", family="encoding")
def bind_ordinal(step: Step, ctx: BindContext) -> Bound:
    if len(step.outputs) != len(step.inputs):
        raise ValueError("ordinal: one output per input")
    lookup = _Lookup(step, ctx)
    t, unk_error, fields = _inputs_table(step, _ORDINAL_UNKNOWN)
    code = lookup.gather(table(step, "categories")["code"], np.float64, np.nan)
    unk_value = f64(t["unknown_value"]) if "unknown_value" in t else np.full(
        len(step.inputs), np.nan)
    in_cols = ctx.cols(step.inputs, step=step)
    args = (in_cols, ctx.cols(step.outputs, step=step), *lookup.args(), code, unk_error,
            unk_value)
    return Bound(ordinal_kernel, ordinal_reference, args,
                 error=_error_builder(step, lookup, in_cols, unk_error, fields))


# --- kbins -----------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def kbins_kernel(ws, in_cols, out_cols, inner, e_off, e_cnt, out_start, onehot, f32):
    n = ws.shape[0]
    for i in range(n):
        for j in range(in_cols.shape[0]):
            x = ws[i, in_cols[j]]
            if f32:
                x = np.float64(np.float32(x))
            k = e_cnt[j]
            if math.isnan(x):
                b = k
            else:
                lo = 0
                hi = k
                while lo < hi:  # number of interior edges <= x
                    mid = (lo + hi) >> 1
                    if inner[e_off[j] + mid] <= x:
                        lo = mid + 1
                    else:
                        hi = mid
                b = lo
            if onehot:
                for t in range(k + 1):
                    ws[i, out_cols[out_start[j] + t]] = 0.0
                ws[i, out_cols[out_start[j] + b]] = 1.0
            else:
                ws[i, out_cols[out_start[j]]] = float(b)
    return -1


def kbins_reference(ws, in_cols, out_cols, inner, e_off, e_cnt, out_start, onehot, f32):
    n = ws.shape[0]
    for j in range(in_cols.shape[0]):
        x = ws[:, in_cols[j]]
        if f32:
            with np.errstate(over="ignore"):
                x = x.astype(np.float32).astype(np.float64)
        b = np.searchsorted(inner[e_off[j]: e_off[j] + e_cnt[j]], x, side="right")
        if onehot:
            block = np.zeros((n, e_cnt[j] + 1))
            block[np.arange(n), b] = 1.0
            ws[:, out_cols[out_start[j]: out_start[j] + e_cnt[j] + 1]] = block
        else:
            ws[:, out_cols[out_start[j]]] = b
    return -1


@register_op("kbins", family="encoding")
def bind_kbins(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "edges")
    inp = i64(t["input"])
    edge = f64(t["edge"])
    encode = step.params.get("encode", "ordinal")
    if encode not in ("ordinal", "onehot"):
        raise ValueError(f"kbins: encode {encode!r} unknown (known: ordinal, onehot)")
    n_in = len(step.inputs)
    inner_parts, e_off, e_cnt, out_start = [], [], [], []
    start = pos = 0
    for j in range(n_in):
        e = edge[inp == j]
        if len(e) < 2:
            raise ValueError(f"kbins: input {j} has {len(e)} edges, needs at least 2")
        if np.isnan(e).any() or (np.diff(e) < 0).any():
            raise ValueError(f"kbins: edges of input {j} are not ascending")
        inner_parts.append(e[1:-1])
        e_off.append(pos)
        e_cnt.append(len(e) - 2)
        out_start.append(start if encode == "onehot" else j)
        pos += len(e) - 2
        start += len(e) - 1
    n_out = start if encode == "onehot" else n_in
    if len(step.outputs) != n_out:
        raise ValueError(f"kbins: {len(step.outputs)} outputs, the edges define {n_out}")
    inner = f64(np.concatenate(inner_parts) if inner_parts else np.zeros(0))
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), inner,
            i64(e_off), i64(e_cnt), i64(out_start), encode == "onehot",
            bool(step.params.get("float32_input", False)))
    return Bound(kbins_kernel, kbins_reference, args)
