"""Family ``calibration``: piecewise-linear maps of one column each.

Op ``interpolate`` version 1 (normative)
----------------------------------------
``k`` inputs, ``k`` outputs; output ``j`` is input ``j`` mapped through its own
piecewise-linear function, exactly as ``numpy.interp(v, x, y)`` computes it (scikit-learn's
``IsotonicRegression.predict``, hence ``CalibratedClassifierCV(method='isotonic')``).

table ``points``: one row per knot: int32 ``input`` (position in the step's inputs), float64
``x``, float64 ``y``. The rows of an input are contiguous, in increasing input order, with
``x`` strictly increasing; every input has at least one knot.

For a value ``v`` and an input's knots ``(x_0, y_0) .. (x_{m-1}, y_{m-1})``:

- ``m == 1``: ``y_0`` (whatever ``v`` is, NaN included: ``np.interp`` with one knot);
- ``v`` NaN: NaN;
- ``v < x_0``: ``y_0``; ``v >= x_{m-1}``: ``y_{m-1}``;
- else ``j`` = the largest index with ``x_j <= v``; if ``x_j == v``: ``y_j``; else
  ``s = (y_{j+1} - y_j) / (x_{j+1} - x_j)``, ``r = s * (v - x_j) + y_j``; if ``r`` is NaN,
  ``r = s * (v - x_{j+1}) + y_{j+1}``; if that is NaN too and ``y_j == y_{j+1}``, ``r = y_j``.

Every operation is one IEEE binary64 operation, no fused multiply-add: the result is bit for
bit ``numpy.interp``'s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, table


@njit(cache=True, nogil=True, error_model="numpy")
def _interp_one(v, xs, ys, lo, hi):
    m = hi - lo
    if m == 1:
        return ys[lo]
    if math.isnan(v):
        return v
    if v < xs[lo]:
        return ys[lo]
    if v >= xs[hi - 1]:
        return ys[hi - 1]
    # binary search: the largest j with xs[j] <= v (xs[lo] <= v < xs[hi - 1] here)
    a, b = lo, hi - 1
    while b - a > 1:
        mid = (a + b) // 2
        if xs[mid] <= v:
            a = mid
        else:
            b = mid
    j = a
    if xs[j] == v:
        return ys[j]
    s = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
    r = s * (v - xs[j]) + ys[j]
    if math.isnan(r):
        r = s * (v - xs[j + 1]) + ys[j + 1]
        if math.isnan(r) and ys[j] == ys[j + 1]:
            r = ys[j]
    return r


@njit(cache=True, nogil=True, error_model="numpy")
def interpolate_kernel(ws, in_cols, out_cols, starts, xs, ys):
    n = ws.shape[0]
    for i in range(n):
        for j in range(in_cols.shape[0]):
            ws[i, out_cols[j]] = _interp_one(ws[i, in_cols[j]], xs, ys, starts[j],
                                             starts[j + 1])
    return -1


def interpolate_reference(ws, in_cols, out_cols, starts, xs, ys):
    for j in range(len(in_cols)):
        lo, hi = starts[j], starts[j + 1]
        v = ws[:, in_cols[j]]
        if hi - lo == 1:
            ws[:, out_cols[j]] = ys[lo]
        else:
            ws[:, out_cols[j]] = np.interp(v, xs[lo:hi], ys[lo:hi])
    return -1


def segment_starts(inputs: np.ndarray, values: np.ndarray, k: int, what: str, *,
                   noun: str, strict: bool) -> np.ndarray:
    """Offsets of each input's rows of a per-input table (``k + 1`` entries), validating the
    table's order: ``input`` runs over ``0 .. k-1`` increasing, each input has rows, and its
    ``values`` are free of NaN and increasing (``strict``) or non-decreasing."""
    if len(inputs) and (np.any(np.diff(inputs) < 0) or inputs[0] < 0 or inputs[-1] >= k):
        raise ValueError(f"{what}: 'input' must run over 0 .. {k - 1} in increasing order")
    starts = np.searchsorted(inputs, np.arange(k + 1), side="left").astype(np.int64)
    for j in range(k):
        lo, hi = starts[j], starts[j + 1]
        if hi - lo < 1:
            raise ValueError(f"{what}: input {j} has no {noun}")
        seg = values[lo:hi]
        steps = np.diff(seg)
        if np.isnan(seg).any() or np.any(steps <= 0 if strict else steps < 0):
            order = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(f"{what}: the {noun} of input {j} are not {order}")
    return starts


def knot_starts(inputs: np.ndarray, xs: np.ndarray, k: int, what: str) -> np.ndarray:
    """Offsets of each input's knots (``k + 1`` entries), validating the table's order."""
    return segment_starts(inputs, xs, k, what, noun="knots", strict=True)


@register_op("interpolate", family="calibration")
def bind_interpolate(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "points")
    inputs = np.asarray(t["input"], dtype=np.int64)
    xs, ys = f64(t["x"]), f64(t["y"])
    k = len(step.inputs)
    if len(step.outputs) != k:
        raise ValueError(f"interpolate step '{step.name}': {k} inputs, "
                         f"{len(step.outputs)} outputs")
    starts = knot_starts(inputs, xs, k, f"interpolate step '{step.name}'")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), starts, xs,
            ys)
    return Bound(interpolate_kernel, interpolate_reference, args)
