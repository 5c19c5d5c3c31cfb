"""Family ``quantile``: scikit-learn's ``QuantileTransformer`` (forward transform).

Op ``quantile_transform`` version 1 (normative)
-----------------------------------------------
``k`` inputs, ``k`` outputs; output ``j`` is input ``j`` mapped through its own quantiles.

table ``quantiles``: one row per quantile: int32 ``input`` (position in the step's inputs),
float64 ``q`` (the quantile), float64 ``r`` (its reference, a probability). The rows of an
input are contiguous, in increasing input order, with ``q`` non-decreasing (repeated values
allowed: a feature with ties), no NaN; every input has at least one row.

params: ``output``: ``"uniform"`` or ``"normal"``.

For a value ``v`` and an input's rows ``(q_0, r_0) .. (q_{m-1}, r_{m-1})``
(``interp`` is the ``interpolate`` op's function, §6.14 of docs/bundle-format.md, which is
``numpy.interp``'s also for non-decreasing knots):

1. ``v`` NaN: NaN (nothing below applies).
2. ``t = 0.5 * (interp(v; q, r) - interp(-v; -q[::-1], -r[::-1]))`` (the mean of the upward
   and the downward interpolation, so a run of equal quantiles maps to its middle).
3. ``uniform``: ``t = 1`` if ``v == q_{m-1}``; then ``t = 0`` if ``v == q_0``.
   ``normal``: ``t = 1`` if ``(v + 1e-7) > q_{m-1}``; then ``t = 0`` if
   ``(v - 1e-7) < q_0`` (each sum rounded to float64 before comparing); then
   ``t = ndtri(t)`` (``-inf`` at 0, ``+inf`` at 1), clipped to ``[ndtri(1e-7 - 2^-52),
   ndtri(1 - (1e-7 - 2^-52))]``.

``ndtri`` is Cephes' ``ndtri`` (SciPy's ``special.ndtri``, hence ``stats.norm.ppf``): its
rational approximations evaluated by Horner's rule (no fused multiply-add) with libm ``log``
and ``sqrt``; the coefficients are ``_P0 .. _Q2`` below.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, table
from .calibration import _interp_one, segment_starts

#: scikit-learn's ``BOUNDS_THRESHOLD``
BOUNDS = 1e-7
_S2PI = 2.50662827463100050242e0
_EXP_M2 = 0.13533528323661269189  # exp(-2)
_P0 = np.array([-5.99633501014107895267e1, 9.80010754185999661536e1,
                -5.66762857469070293439e1, 1.39312609387279679503e1,
                -1.23916583867381258016e0])
_Q0 = np.array([1.95448858338141759834e0, 4.67627912898881538453e0,
                8.63602421390890590575e1, -2.25462687854119370527e2,
                2.00260212380060660359e2, -8.20372256168333339912e1,
                1.59056225126211695515e1, -1.18331621121330003142e0])
_P1 = np.array([4.05544892305962419923e0, 3.15251094599893866154e1,
                5.71628192246421288162e1, 4.40805073893200834700e1,
                1.46849561928858024014e1, 2.18663306850790267539e0,
                -1.40256079171354495875e-1, -3.50424626827848203418e-2,
                -8.57456785154685413611e-4])
_Q1 = np.array([1.57799883256466749731e1, 4.53907635128879210584e1,
                4.13172038254672030440e1, 1.50425385692907503408e1,
                2.50464946208309415979e0, -1.42182922854787788574e-1,
                -3.80806407691578277194e-2, -9.33259480895457427372e-4])
_P2 = np.array([3.23774891776946035970e0, 6.91522889068984211695e0,
                3.93881025292474443415e0, 1.33303460815807542389e0,
                2.01485389549179081538e-1, 1.23716634817820021358e-2,
                3.01581553508235416007e-4, 2.65806974686737550832e-6,
                6.23974539184983293730e-9])
_Q2 = np.array([6.02427039364742014255e0, 3.67983563856160859403e0,
                1.37702099489081330271e0, 2.16236993594496635890e-1,
                1.34204006088543189037e-2, 3.28014464682127739104e-4,
                2.89247864745380683936e-6, 6.79019408009981274425e-9])


@njit(cache=True, nogil=True, error_model="numpy")
def _polevl(x, coef):
    ans = coef[0]
    for i in range(1, coef.shape[0]):
        ans = ans * x + coef[i]
    return ans


@njit(cache=True, nogil=True, error_model="numpy")
def _p1evl(x, coef):  # leading coefficient 1
    ans = x + coef[0]
    for i in range(1, coef.shape[0]):
        ans = ans * x + coef[i]
    return ans


@njit(cache=True, nogil=True, error_model="numpy")
def ndtri(y0):
    """The standard normal quantile, Cephes' ``ndtri`` operation for operation."""
    if math.isnan(y0) or y0 < 0.0 or y0 > 1.0:
        return math.nan
    if y0 == 0.0:
        return -math.inf
    if y0 == 1.0:
        return math.inf
    negate = True
    y = y0
    if y > 1.0 - _EXP_M2:
        y = 1.0 - y
        negate = False
    if y > _EXP_M2:
        y = y - 0.5
        y2 = y * y
        x = y + y * (y2 * _polevl(y2, _P0) / _p1evl(y2, _Q0))
        return x * _S2PI
    x = math.sqrt(-2.0 * math.log(y))
    x0 = x - math.log(x) / x
    z = 1.0 / x
    if x < 8.0:  # y > exp(-32)
        x1 = z * _polevl(z, _P1) / _p1evl(z, _Q1)
    else:
        x1 = z * _polevl(z, _P2) / _p1evl(z, _Q2)
    x = x0 - x1
    return -x if negate else x


@njit(cache=True, nogil=True, error_model="numpy")
def _clip_bounds():
    eps = 2.220446049250313e-16  # np.spacing(1)
    return ndtri(BOUNDS - eps), ndtri(1.0 - (BOUNDS - eps))


@njit(cache=True, nogil=True, error_model="numpy")
def _transform_one(v, qs, rs, nq, nr, lo, hi, normal, cmin, cmax):
    if math.isnan(v):
        return v
    m = hi - lo
    # the downward interpolation runs over (-q[::-1], -r[::-1]), stored at [n - hi, n - lo)
    n = qs.shape[0]
    t = 0.5 * (_interp_one(v, qs, rs, lo, hi) - _interp_one(-v, nq, nr, n - hi, n - lo))
    if normal:
        if v + BOUNDS > qs[lo + m - 1]:
            t = 1.0
        if v - BOUNDS < qs[lo]:
            t = 0.0
        t = ndtri(t)
        # np.clip(t, cmin, cmax)
        if t < cmin:
            t = cmin
        if t > cmax:
            t = cmax
        return t
    if v == qs[lo + m - 1]:
        t = 1.0
    if v == qs[lo]:
        t = 0.0
    return t


@njit(cache=True, nogil=True, error_model="numpy")
def quantile_kernel(ws, in_cols, out_cols, starts, qs, rs, nq, nr, normal):
    cmin, cmax = _clip_bounds()
    for i in range(ws.shape[0]):
        for j in range(in_cols.shape[0]):
            ws[i, out_cols[j]] = _transform_one(ws[i, in_cols[j]], qs, rs, nq, nr, starts[j],
                                                starts[j + 1], normal, cmin, cmax)
    return -1


def _polyval(x: float, coef: np.ndarray, monic: bool) -> float:
    ans = x + coef[0] if monic else coef[0]
    for c in coef[1:]:
        ans = ans * x + c
    return float(ans)


def ndtri_reference(y0: float) -> float:
    """Plain-Python ``ndtri`` (the same Cephes operations; ``math.log`` is libm's)."""
    if math.isnan(y0) or y0 < 0.0 or y0 > 1.0:
        return math.nan
    if y0 in (0.0, 1.0):
        return -math.inf if y0 == 0.0 else math.inf
    y, negate = (1.0 - y0, False) if y0 > 1.0 - _EXP_M2 else (y0, True)
    if y > _EXP_M2:
        y = y - 0.5
        y2 = y * y
        return (y + y * (y2 * _polyval(y2, _P0, False) / _polyval(y2, _Q0, True))) * _S2PI
    x = math.sqrt(-2.0 * math.log(y))
    x0 = x - math.log(x) / x
    z = 1.0 / x
    p, q = (_P1, _Q1) if x < 8.0 else (_P2, _Q2)
    x = x0 - z * _polyval(z, p, False) / _polyval(z, q, True)
    return -x if negate else x


def quantile_reference(ws, in_cols, out_cols, starts, qs, rs, nq, nr, normal):
    """The same semantics with ``np.interp`` (scikit-learn's own expression)."""
    eps = float(np.spacing(1))
    cmin, cmax = ndtri_reference(BOUNDS - eps), ndtri_reference(1.0 - (BOUNDS - eps))
    for j in range(len(in_cols)):
        q, r = qs[starts[j]:starts[j + 1]], rs[starts[j]:starts[j + 1]]
        v = ws[:, in_cols[j]].copy()
        ok = ~np.isnan(v)
        t = v.copy()
        with np.errstate(invalid="ignore"):
            if normal:
                low, up = v - BOUNDS < q[0], v + BOUNDS > q[-1]
            else:
                low, up = v == q[0], v == q[-1]
            t[ok] = 0.5 * (np.interp(v[ok], q, r) - np.interp(-v[ok], -q[::-1], -r[::-1]))
        t[up] = 1.0
        t[low] = 0.0
        if normal:
            t = np.array([ndtri_reference(float(x)) for x in t])
            t = np.clip(t, cmin, cmax)
        ws[:, out_cols[j]] = t
    return -1


def quantile_starts(inputs: np.ndarray, qs: np.ndarray, k: int, what: str) -> np.ndarray:
    """Offsets of each input's rows (``k + 1`` entries), validating the table's order."""
    return segment_starts(inputs, qs, k, what, noun="quantiles", strict=False)


@register_op("quantile_transform", family="quantile")
def bind_quantile(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "quantiles")
    inputs = np.asarray(t["input"], dtype=np.int64)
    qs, rs = f64(t["q"]), f64(t["r"])
    k = len(step.inputs)
    what = f"quantile_transform step '{step.name}'"
    if len(step.outputs) != k:
        raise ValueError(f"{what}: {k} inputs, {len(step.outputs)} outputs")
    if len(rs) != len(qs) or len(inputs) != len(qs):
        raise ValueError(f"{what}: table columns of different lengths")
    output = step.params.get("output")
    if output not in ("uniform", "normal"):
        raise ValueError(f"{what}: params.output must be 'uniform' or 'normal', "
                         f"not {output!r}")
    starts = quantile_starts(inputs, qs, k, what)
    # the reversed, negated knots, laid out so input j's are [n - hi, n - lo)
    nq, nr = np.ascontiguousarray(-qs[::-1]), np.ascontiguousarray(-rs[::-1])
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), starts, qs,
            rs, nq, nr, output == "normal")
    return Bound(quantile_kernel, quantile_reference, args)
