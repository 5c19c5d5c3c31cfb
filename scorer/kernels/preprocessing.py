"""Family ``preprocessing``: elementwise numeric transforms (scalers, imputers).

Ops
---
``affine`` v1
    ``y = ((x - sub) / div) * mul + add``, optionally clipped to ``[clip_min, clip_max]``.
    The four-term form reproduces every scikit-learn scaler bit for bit: StandardScaler and
    RobustScaler subtract then divide, MinMaxScaler multiplies then adds, MaxAbsScaler divides.
    NaN passes through. Table ``columns``: one row per input, float64 ``sub, div, mul, add``.
``impute`` v1
    Replace missing entries (NaN, or ``missing_value``) of each input with ``fill``; emit the
    inputs whose ``emit`` flag is set, then one 0/1 indicator column per row of table
    ``indicator`` (``input``: position in the step's inputs). For an input holding string
    category codes, column ``fill_category`` (string, else null) names the fill category.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, param_float, table


@njit(cache=True, nogil=True)
def _consecutive(cols):
    for j in range(1, cols.shape[0]):
        if cols[j] != cols[0] + j:
            return False
    return True


# --- affine ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def affine_kernel(ws, in_cols, out_cols, sub, div, mul, add, clip, lo, hi):
    n = ws.shape[0]
    k = in_cols.shape[0]
    if k and not clip and _consecutive(in_cols) and _consecutive(out_cols):
        # the usual layout (a scaler's inputs and outputs are runs of columns): unit-stride
        # rows that the compiler vectorises
        a, b = in_cols[0], out_cols[0]
        for i in range(n):
            src = ws[i, a : a + k]
            dst = ws[i, b : b + k]
            for j in range(k):
                dst[j] = ((src[j] - sub[j]) / div[j]) * mul[j] + add[j]
        return -1
    for i in range(n):
        for j in range(k):
            y = ((ws[i, in_cols[j]] - sub[j]) / div[j]) * mul[j] + add[j]
            if clip:
                if y < lo:
                    y = lo
                elif y > hi:
                    y = hi
            ws[i, out_cols[j]] = y
    return -1


def affine_reference(ws, in_cols, out_cols, sub, div, mul, add, clip, lo, hi):
    y = ((ws[:, in_cols] - sub) / div) * mul + add
    if clip:
        y = np.clip(y, lo, hi)
    ws[:, out_cols] = y
    return -1


@register_op("affine", family="preprocessing")
def bind_affine(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "columns")
    clip = bool(step.params.get("clip", False))
    lo = param_float(step, "clip_min", -math.inf)
    hi = param_float(step, "clip_max", math.inf)
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step),
            f64(t["sub"]), f64(t["div"]), f64(t["mul"]), f64(t["add"]), clip, lo, hi)
    if not (len(args[0]) == len(args[1]) == len(args[2])):
        raise ValueError("affine: inputs, outputs and table rows differ in length")
    return Bound(affine_kernel, affine_reference, args)


# --- impute ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def impute_kernel(ws, in_cols, out_cols, fill, emit, missing_value, ind_src, ind_cols):
    n = ws.shape[0]
    nan_marker = math.isnan(missing_value)
    for i in range(n):
        k = 0
        for j in range(in_cols.shape[0]):
            x = ws[i, in_cols[j]]
            if emit[j]:
                missing = math.isnan(x) if nan_marker else x == missing_value
                ws[i, out_cols[k]] = fill[j] if missing else x
                k += 1
        for m in range(ind_src.shape[0]):
            x = ws[i, in_cols[ind_src[m]]]
            missing = math.isnan(x) if nan_marker else x == missing_value
            ws[i, ind_cols[m]] = 1.0 if missing else 0.0
    return -1


def impute_reference(ws, in_cols, out_cols, fill, emit, missing_value, ind_src, ind_cols):
    X = ws[:, in_cols]
    mask = np.isnan(X) if np.isnan(missing_value) else X == missing_value
    imputed = np.where(mask, fill, X)
    ws[:, out_cols] = imputed[:, emit.astype(bool)]
    ws[:, ind_cols] = mask[:, ind_src].astype(np.float64)
    return -1


@register_op("impute", family="preprocessing")
def bind_impute(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "columns")
    emit = np.ascontiguousarray(np.asarray(t["emit"], dtype=np.bool_))
    ind = step.tables.get("indicator", {"input": np.zeros(0, dtype=np.int64)})
    ind_src = i64(ind["input"])
    if len(emit) != len(step.inputs) or len(t["fill"]) != len(step.inputs):
        raise ValueError(f"impute: table 'columns' has {len(emit)} rows for "
                         f"{len(step.inputs)} inputs")
    # the kernel reads in_cols[ind_src[m]] unchecked
    if len(ind_src) and (ind_src.min() < 0 or ind_src.max() >= len(step.inputs)):
        raise ValueError(f"impute: indicator.input out of range 0..{len(step.inputs) - 1}")
    n_emit = int(emit.sum())
    outs = ctx.cols(step.outputs, step=step)
    if len(outs) != n_emit + len(ind_src):
        raise ValueError("impute: outputs must be the emitted inputs then the indicators")
    fill = f64(t["fill"]).copy()
    # String columns hold category codes: their fill value is a category, looked up here.
    for j, cat in enumerate(t.get("fill_category", [None] * len(fill))):
        if cat is not None:
            vocab_j = ctx.vocab.get(step.inputs[j])
            if vocab_j is None or cat not in vocab_j:
                raise ValueError(f"fill category {cat!r} not in the vocabulary of "
                                 f"'{step.inputs[j]}'")
            fill[j] = vocab_j.index(cat)
    args = (ctx.cols(step.inputs, step=step), outs[:n_emit], fill, emit,
            param_float(step, "missing_value", math.nan), ind_src, outs[n_emit:])
    # Imputing a code column (string field) keeps its vocabulary.
    vocab = {}
    emitted = [c for c, e in zip(step.inputs, emit, strict=True) if e]
    for src, out in zip(emitted, step.outputs[:n_emit], strict=True):
        if src in ctx.vocab:
            vocab[out] = ctx.vocab[src]
    return Bound(impute_kernel, impute_reference, args, out_vocab=vocab)
