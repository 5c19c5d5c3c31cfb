"""Family ``spline``: scikit-learn's ``SplineTransformer`` (B-spline bases of each input).

Op ``bspline`` version 1 (normative: docs/bundle-format.md §6.16, summarised here)
-------------------------------------------------------------------------------
``k`` inputs; input ``j`` has the knot vector ``t`` (its rows of table ``knots``, ``m``
values) and ``nb = m - d - 1`` B-spline basis functions of degree ``d`` (param ``degree``);
``ns = nb - d`` spline columns for ``extrapolation == "periodic"`` (the last ``d`` basis
functions fold onto the first ``d``), else ``ns = nb``. The step's outputs are, input by input,
that input's ``ns`` columns, without the last one when ``include_bias`` is false.

Per value ``x`` of input ``j`` (``lo = t[d]``, ``hi = t[nb]``):

1. ``x`` NaN: every column 0.0.
2. ``constant`` / ``linear``: with ``(blo, bhi)`` and ``(nlo, nhi)`` input ``j``'s row of
   table ``bounds``: ``x`` in ``[blo, bhi]``: step 4; else every column 0.0. Then
   ``constant``: ``x < blo``: columns ``c < nlo`` = ``lo_value[c]``; ``x > bhi``: the row
   cannot be scored if ``refuse_above``, else columns ``c >= ns - nhi`` = ``hi_value[c]``.
   ``linear``, for ``c`` in ``0 .. max(nlo, nhi) - 1``: ``x < blo`` and ``c < nlo``:
   column ``c = lo_value[c] + (x - blo) * lo_slope[c]``; then ``x > bhi`` and ``c < nhi``:
   column ``q = ns - 1 - c`` gets ``hi_value[q] + (x - bhi) * hi_slope[q]`` (table ``edges``).
3. ``periodic``: ``p = hi - lo``; ``x = lo + remainder(x - lo, p)`` (NumPy's
   ``np.remainder``: C ``fmod``, then ``+ p`` when the signs differ, ``copysign(0, p)`` for a
   zero result) if ``p > 0``, else ``x = 0.0``; then step 4 extrapolating.
4. SciPy's ``BSpline.__call__`` (``_evaluate_spline``) with the 0/1 coefficient matrix ``C``
   (``C[i, c] = 1`` if ``i == c`` or, periodic only, ``i - ns == c``): ``l =
   find_interval(x)`` (-1, all columns NaN, for ``x`` outside ``[lo, hi]`` unless the mode
   extrapolates: ``continue``, ``periodic``), the ``d + 1`` non-zero basis values ``h`` by
   de Boor's recursion (``_deBoor_D``, no derivative), and column ``c = sum over a = 0..d of
   C[l - d + a, c] * h[a]``, summed from +0.0 in that order.
5. ``error``: a row with a NaN among input ``j``'s ``ns`` columns cannot be scored.
6. ``refuse_nonfinite``: a row with a NaN or infinite output cannot be scored.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, table
from .calibration import segment_starts

#: ``params.extrapolation`` -> the code the kernel takes
MODES = {"error": 0, "constant": 1, "linear": 2, "continue": 3, "periodic": 4}
_ERROR, _CONSTANT, _LINEAR, _CONTINUE, _PERIODIC = range(5)


@njit(cache=True, nogil=True, error_model="numpy")
def np_remainder(a, b):
    """NumPy's float ``remainder`` (``npy_remainder``): the result has the divisor's sign."""
    mod = np.fmod(a, b)
    if b == 0.0:
        return mod
    if mod != 0.0:
        if (b < 0.0) != (mod < 0.0):
            mod += b
    else:
        mod = math.copysign(0.0, b)
    return mod


@njit(cache=True, nogil=True, error_model="numpy")
def find_interval(t, lo, d, nb, x, extrapolate):
    """SciPy's ``_find_interval`` for the knots ``t[lo:lo + nb + d + 1]``: the index ``l`` in
    ``[d, nb - 1]`` with ``t[l] <= x < t[l + 1]`` (the first / last such interval outside
    the base interval), or -1 for NaN or, without ``extrapolate``, ``x`` outside
    ``[t[d], t[nb]]``. Its linear walk ends at the largest ``l`` with ``t[l] <= x``, clamped
    to ``[d, nb - 1]``, whatever index it starts from: a bisection finds the same."""
    if x != x:
        return -1
    if (x < t[lo + d] or x > t[lo + nb]) and not extrapolate:
        return -1
    a = d
    b = nb - 1
    if x >= t[lo + b]:
        return b
    if x < t[lo + a + 1]:
        return a
    # t[a] <= x (or a == d) and x < t[b]
    while b - a > 1:
        mid = (a + b) >> 1
        if t[lo + mid] <= x:
            a = mid
        else:
            b = mid
    return a


@njit(cache=True, nogil=True, error_model="numpy")
def de_boor(t, lo, x, d, ell, h, hh):
    """SciPy's ``_deBoor_D`` with ``m = 0``: ``h[0..d]`` = the non-zero basis values
    ``B_{ell - d} .. B_{ell}`` at ``x``; ``hh`` is scratch of ``d + 1`` values."""
    h[0] = 1.0
    for j in range(1, d + 1):
        for q in range(j):
            hh[q] = h[q]
        h[0] = 0.0
        for n in range(1, j + 1):
            ind = ell + n
            xb = t[lo + ind]
            xa = t[lo + ind - j]
            if xb == xa:
                h[n] = 0.0
                continue
            w = hh[n - 1] / (xb - xa)
            h[n - 1] += w * (xb - x)
            h[n] = w * (x - xa)


@njit(cache=True, nogil=True, error_model="numpy")
def _basis_row(t, lo, d, nb, ns, x, mode, h, hh, out):
    """The ``ns`` spline columns of one non-NaN value into ``out[:ns]`` (steps 2 and 4)."""
    periodic = mode == _PERIODIC
    if periodic:
        tlo = t[lo + d]
        p = t[lo + nb] - tlo
        x = tlo + np_remainder(x - tlo, p) if p > 0.0 else 0.0
    ell = find_interval(t, lo, d, nb, x, mode == _CONTINUE or periodic)
    if ell < 0:
        for c in range(ns):
            out[c] = math.nan
        return
    de_boor(t, lo, x, d, ell, h, hh)
    for c in range(ns):
        s = 0.0
        for a in range(d + 1):
            i = ell - d + a
            coef = 1.0 if (i == c or (periodic and i - ns == c)) else 0.0
            s += coef * h[a]
        out[c] = s


@njit(cache=True, nogil=True, error_model="numpy")
def bspline_kernel(ws, in_cols, out_cols, out_starts, knots, kstarts, d, mode, include_bias,
                   bounds, ecols, edges, estarts, refuse_above, refuse_nonfinite):
    """Op ``bspline`` on every row of ``ws``. ``out_starts[j]`` is input ``j``'s first
    position in ``out_cols``; ``kstarts`` / ``estarts`` delimit its knots / edge rows
    (``edges`` columns: lo_value, hi_value, lo_slope, hi_slope); ``bounds[j]`` is input
    ``j``'s ``(lo, hi)`` and ``ecols[j]`` how many columns it extrapolates below / above.
    Returns -1, or the first row that cannot be scored."""
    h = np.empty(d + 1)
    hh = np.empty(d + 1)
    width = 1
    for j in range(in_cols.shape[0]):
        width = max(width, kstarts[j + 1] - kstarts[j])
    out = np.empty(width)
    for i in range(ws.shape[0]):
        for j in range(in_cols.shape[0]):
            lo = kstarts[j]
            nb = kstarts[j + 1] - lo - d - 1
            ns = nb - d if mode == _PERIODIC else nb
            x = ws[i, in_cols[j]]
            if x != x:
                for c in range(ns):
                    out[c] = 0.0
            elif mode == _CONSTANT or mode == _LINEAR:
                blo = bounds[j, 0]
                bhi = bounds[j, 1]
                if blo <= x and x <= bhi:
                    _basis_row(knots, lo, d, nb, ns, x, mode, h, hh, out)
                else:
                    for c in range(ns):
                        out[c] = 0.0
                e0 = estarts[j]
                nlo = ecols[j, 0]
                nhi = ecols[j, 1]
                if mode == _CONSTANT:
                    if x < blo:
                        for c in range(nlo):
                            out[c] = edges[e0 + c, 0]
                    if x > bhi:
                        if refuse_above:
                            return i
                        for c in range(ns - nhi, ns):
                            out[c] = edges[e0 + c, 1]
                else:  # scikit-learn's loop: per edge column, below then above
                    for c in range(max(nlo, nhi)):
                        if x < blo and c < nlo:
                            out[c] = edges[e0 + c, 0] + (x - blo) * edges[e0 + c, 2]
                        if x > bhi and c < nhi:
                            q = ns - 1 - c
                            out[q] = edges[e0 + q, 1] + (x - bhi) * edges[e0 + q, 3]
            else:
                _basis_row(knots, lo, d, nb, ns, x, mode, h, hh, out)
                if mode == _ERROR:
                    for c in range(ns):
                        if out[c] != out[c]:
                            return i
            n_out = ns if include_bias else ns - 1
            o = out_starts[j]
            for c in range(n_out):
                v = out[c]
                if refuse_nonfinite and not math.isfinite(v):
                    return i
                ws[i, out_cols[o + c]] = v
    return -1


def bspline_reference(ws, in_cols, out_cols, out_starts, knots, kstarts, d, mode,
                      include_bias, bounds, ecols, edges, estarts, refuse_above,
                      refuse_nonfinite):
    """The same semantics with NumPy, a column at a time: ``np.searchsorted`` for the
    interval, ``np.remainder`` for the periodic map, de Boor's recursion on whole columns,
    scikit-learn's masks for the extrapolation."""
    n = ws.shape[0]
    bad = np.zeros(n, dtype=bool)
    for j in range(len(in_cols)):
        t = knots[kstarts[j]:kstarts[j + 1]]
        nb = len(t) - d - 1
        ns = nb - d if mode == _PERIODIC else nb
        lo, hi = t[d], t[nb]
        x = ws[:, in_cols[j]].copy()
        nan = np.isnan(x)
        block = np.zeros((n, ns))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            if mode in (_CONSTANT, _LINEAR):
                blo, bhi = bounds[j, 0], bounds[j, 1]
                nlo, nhi = int(ecols[j, 0]), int(ecols[j, 1])
                inside = (blo <= x) & (x <= bhi)
                block[inside] = _evaluate(t, d, ns, x[inside], extrapolate=False,
                                          periodic=False)
                e = edges[estarts[j]:estarts[j + 1]]
                below, above = x < blo, x > bhi
                if mode == _CONSTANT:
                    bad |= above & bool(refuse_above)
                    block[np.ix_(below, np.arange(nlo))] = e[:nlo, 0]
                    block[np.ix_(above, np.arange(ns - nhi, ns))] = e[ns - nhi:, 1]
                else:
                    for c in range(max(nlo, nhi)):
                        q = ns - 1 - c
                        if c < nlo:
                            block[below, c] = e[c, 0] + (x[below] - blo) * e[c, 2]
                        if c < nhi:
                            block[above, q] = e[q, 1] + (x[above] - bhi) * e[q, 3]
            else:
                xe = x
                if mode == _PERIODIC:
                    xe = lo + np.remainder(x - lo, hi - lo) if hi - lo > 0 else np.zeros(n)
                block = _evaluate(t, d, ns, xe, extrapolate=mode != _ERROR,
                                  periodic=mode == _PERIODIC)
                block[nan] = 0.0
                if mode == _ERROR:
                    bad |= np.isnan(block).any(axis=1)
        block = block if include_bias else block[:, :ns - 1]
        if refuse_nonfinite:
            bad |= ~np.isfinite(block).all(axis=1)
        o = out_starts[j]
        ws[:, out_cols[o:o + block.shape[1]]] = block
    return int(np.argmax(bad)) if bad.any() else -1


def _evaluate(t: np.ndarray, d: int, ns: int, x: np.ndarray, *, extrapolate: bool,
              periodic: bool) -> np.ndarray:
    """``BSpline(t, C, d)(x)`` for the 0/1 coefficient matrix ``C``, on a whole column."""
    nb = len(t) - d - 1
    out = np.full((len(x), ns), np.nan)
    ok = ~np.isnan(x)
    if not extrapolate:
        ok &= (t[d] <= x) & (x <= t[nb])
    xs = x[ok]
    ell = np.clip(np.searchsorted(t, xs, side="right") - 1, d, nb - 1)
    h = np.zeros((len(xs), d + 1))
    h[:, 0] = 1.0
    for j in range(1, d + 1):
        hh = h[:, :j].copy()
        h[:, 0] = 0.0
        for n in range(1, j + 1):
            xb, xa = t[ell + n], t[ell + n - j]
            same = xb == xa
            w = hh[:, n - 1] / (xb - xa)
            h[:, n - 1] = np.where(same, h[:, n - 1], h[:, n - 1] + w * (xb - xs))
            h[:, n] = np.where(same, 0.0, w * (xs - xa))
    vals = np.zeros((len(xs), ns))
    for c in range(ns):
        for a in range(d + 1):
            i = ell - d + a
            coef = ((i == c) | (periodic & (i - ns == c))).astype(np.float64)
            vals[:, c] = vals[:, c] + coef * h[:, a]
    out[ok] = vals
    return out


@register_op("bspline", family="spline")
def bind_bspline(step: Step, ctx: BindContext) -> Bound:
    what = f"bspline step '{step.name}'"
    p = step.params
    mode = MODES.get(p.get("extrapolation"))  # type: ignore[arg-type]
    if mode is None:
        raise ValueError(f"{what}: params.extrapolation must be one of {sorted(MODES)}, not "
                         f"{p.get('extrapolation')!r}")
    d = p.get("degree")
    if not isinstance(d, int) or isinstance(d, bool) or d < 0:
        raise ValueError(f"{what}: params.degree must be a non-negative integer, not {d!r}")
    flags = {}
    for key in ("include_bias", "refuse_above", "refuse_nonfinite"):
        flags[key] = p.get(key, key == "include_bias")
        if not isinstance(flags[key], bool):
            raise ValueError(f"{what}: params.{key} must be true or false")
    k = len(step.inputs)
    t = table(step, "knots")
    inputs = np.asarray(t["input"], dtype=np.int64)
    knots = f64(t["t"])
    if len(inputs) != len(knots):
        raise ValueError(f"{what}: table columns of different lengths")
    kstarts = segment_starts(inputs, knots, k, what, noun="knots", strict=False)
    # Python ints: no int64 overflow in the counts below, whatever the table holds
    sizes = [int(kstarts[j + 1] - kstarts[j]) for j in range(k)]
    ns = [m - d - 1 - (d if mode == MODES["periodic"] else 0) for m in sizes]
    for j, (m, n) in enumerate(zip(sizes, ns, strict=True)):
        if m < 2 * d + 2 or n < 1:
            raise ValueError(f"{what}: input {j} has {m} knots, too few for degree {d}")
    if not np.isfinite(knots).all():
        raise ValueError(f"{what}: knots must be finite")
    drop = 0 if flags["include_bias"] else 1
    out_starts = np.cumsum([0] + [n - drop for n in ns]).astype(np.int64)
    if len(step.outputs) != out_starts[-1]:
        raise ValueError(f"{what}: the knots give {int(out_starts[-1])} outputs, the step "
                         f"lists {len(step.outputs)}")
    if mode in (MODES["constant"], MODES["linear"]):
        b = table(step, "bounds")
        binputs = np.asarray(b["input"], dtype=np.int64)
        if not np.array_equal(binputs, np.arange(k)):
            raise ValueError(f"{what}: bounds must hold one row per input, in input order")
        bounds = np.ascontiguousarray(np.column_stack([f64(b["lo"]), f64(b["hi"])]))
        ecols = np.ascontiguousarray(np.column_stack([
            np.asarray(b["lo_columns"], dtype=np.int64),
            np.asarray(b["hi_columns"], dtype=np.int64)]))
        if len(bounds) != k or len(ecols) != k:
            raise ValueError(f"{what}: bounds columns of different lengths")
        if np.isnan(bounds).any() or any(not (0 <= int(ecols[j, 0]) <= ns[j] and
                                              0 <= int(ecols[j, 1]) <= ns[j])
                                         for j in range(k)):
            raise ValueError(f"{what}: bounds must not be NaN, and each input's lo_columns / "
                             "hi_columns must lie in 0 .. its spline column count")
        e = table(step, "edges")
        cols = [f64(e[c]) for c in ("lo_value", "hi_value", "lo_slope", "hi_slope")]
        einputs = np.asarray(e["input"], dtype=np.int64)
        if any(len(c) != len(einputs) for c in cols):
            raise ValueError(f"{what}: edges columns of different lengths")
        estarts = segment_starts(einputs, np.zeros(len(einputs)), k, what, noun="edges",
                                 strict=False)
        if any(int(estarts[j + 1] - estarts[j]) != ns[j] for j in range(k)):
            raise ValueError(f"{what}: edges must hold one row per spline column of each input")
        edges = np.ascontiguousarray(np.column_stack(cols))
    else:
        bounds = np.zeros((k, 2))
        ecols = np.zeros((k, 2), dtype=np.int64)
        edges = np.zeros((0, 4))
        estarts = np.zeros(k + 1, dtype=np.int64)
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), out_starts,
            knots, kstarts, d, mode, flags["include_bias"], bounds, ecols, edges, estarts,
            flags["refuse_above"], flags["refuse_nonfinite"])

    def error(ws: np.ndarray, row: int) -> Exception:
        from ..errors import InputError

        for j, col in enumerate(args[0]):
            x = float(ws[row, col])
            t_lo, t_hi = float(knots[kstarts[j] + d]), float(knots[kstarts[j + 1] - d - 1])
            if mode in (MODES["constant"], MODES["linear"]):
                t_lo, t_hi = float(bounds[j, 0]), float(bounds[j, 1])
            name = step.inputs[j]
            if mode == MODES["error"] and not (t_lo <= x <= t_hi) and x == x:
                why = (f"'{name}' = {x!r} is outside the knots [{t_lo!r}, {t_hi!r}] "
                       "(extrapolation='error')")
                break
            if flags["refuse_above"] and x > t_hi:
                why = (f"'{name}' = {x!r} is above the last knot {t_hi!r} (degree 0 with "
                       "extrapolation='constant': scikit-learn cannot transform it)")
                break
        else:
            why = ("its spline features are not finite (an infinite or huge input), which "
                   "the next step refuses")
        return InputError(f"row {row}: SplineTransformer cannot transform it: {why}")

    return Bound(bspline_kernel, bspline_reference, args, error=error)
