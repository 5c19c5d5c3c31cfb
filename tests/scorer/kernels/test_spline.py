"""Kernel of family ``spline`` (``bspline``): Numba == NumPy reference bit for bit, and both
== SciPy's ``BSpline`` (what scikit-learn's ``SplineTransformer`` calls) for the B-spline
evaluation and NumPy's ``remainder`` for the periodic map."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.interpolate import BSpline

from scorer.kernels.spline import MODES, bspline_kernel, bspline_reference, np_remainder

value = st.floats(-50, 50) | st.sampled_from([math.nan, 0.0, -0.0, 1e300, -1e300, math.inf,
                                              -math.inf])


def _args(knots: list[np.ndarray], d: int, mode: str, include_bias: bool,
          refuse_nonfinite: bool = False):
    k = len(knots)
    periodic = mode == "periodic"
    ns = [len(t) - d - 1 - (d if periodic else 0) for t in knots]
    drop = 0 if include_bias else 1
    out_starts = np.cumsum([0] + [n - drop for n in ns]).astype(np.int64)
    kstarts = np.cumsum([0] + [len(t) for t in knots]).astype(np.int64)
    # edges as the exporter takes them: basis values / slopes at the knots t[d], t[-d-1]
    rows, bounds, ecols = [], [], []
    for t, n in zip(knots, ns, strict=True):
        spl = BSpline.construct_fast(t, np.eye(len(t) - d - 1)[:, :n], d, extrapolate=False)
        lo, hi = t[d], t[-d - 1]
        rows.append(np.column_stack([spl(lo), spl(hi), spl(lo, nu=1), spl(hi, nu=1)]))
        bounds.append((lo, hi))
        e = d if mode == "constant" or d > 1 else d + 1
        ecols.append((e, e))
    n_out = int(out_starts[-1])
    return (np.arange(k), np.arange(k, k + n_out), out_starts, np.concatenate(knots), kstarts,
            d, MODES[mode], include_bias, np.array(bounds), np.array(ecols, dtype=np.int64),
            np.vstack(rows), np.cumsum([0, *ns]).astype(np.int64), False, refuse_nonfinite)


def _run(fn, X: np.ndarray, args) -> tuple[np.ndarray, int]:
    k = X.shape[1]
    ws = np.full((X.shape[0], k + len(args[1])), -7.0)
    ws[:, :k] = X
    status = fn(ws, *args)
    return ws, status


@st.composite
def knot_vectors(draw, d: int, k: int) -> list[np.ndarray]:
    out = []
    for _ in range(k):
        n = draw(st.integers(2 * d + 2, 2 * d + 9))
        # non-decreasing, repeats allowed (scikit-learn's quantile knots of a tied column)
        t = sorted(draw(st.lists(st.floats(-20, 20) | st.sampled_from([0.0, 1.0]),
                                 min_size=n, max_size=n)))
        out.append(np.array(t))
    return out


@settings(max_examples=150, deadline=None)
@given(d=st.integers(0, 4), k=st.integers(1, 3), mode=st.sampled_from(sorted(MODES)),
       include_bias=st.booleans(), refuse=st.booleans(), data=st.data())
def test_bspline_kernel_matches_reference(d, k, mode, include_bias, refuse, data):
    knots = data.draw(knot_vectors(d, k))
    args = _args(knots, d, mode, include_bias, refuse)
    if len(args[1]) == 0:
        return
    n = data.draw(st.integers(1, 12))
    X = data.draw(arrays(np.float64, (n, k), elements=value))
    X[0] = [t[min(d + i, len(t) - 1)] for i, t in enumerate(knots)]  # on knots
    ws1, s1 = _run(bspline_kernel, X, args)
    ws2, s2 = _run(bspline_reference, X, args)
    assert s1 == s2
    if s1 < 0:
        np.testing.assert_array_equal(ws1, ws2)
    else:  # rows before the refused one agree
        np.testing.assert_array_equal(ws1[:s1], ws2[:s1])


@settings(max_examples=150, deadline=None)
@given(d=st.integers(0, 5), data=st.data())
def test_continue_mode_is_scipys_bspline_bit_for_bit(d, data):
    """Within and beyond the knots (extrapolate=True), NaN rows aside (they become 0)."""
    [t] = data.draw(knot_vectors(d, 1))
    X = data.draw(arrays(np.float64, (20, 1), elements=st.floats(-40, 40) | st.sampled_from(
        [math.inf, -math.inf, 1e300])))
    want = BSpline.construct_fast(t, np.eye(len(t) - d - 1), d, extrapolate=True)(X[:, 0])
    ws, status = _run(bspline_kernel, X, _args([t], d, "continue", True))
    assert status == -1
    np.testing.assert_array_equal(ws[:, 1:], want)


def test_periodic_map_is_numpys_remainder():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(0, 10, 5000), rng.normal(0, 1e12, 1000),
                        [0.0, -0.0, 3.0, -3.0, 6.0, -6.0, math.inf, -math.inf, math.nan, 5e-324]])
    for b in (3.0, 0.1, 1e-9, 7.25, 2.0 ** 60):
        with np.errstate(invalid="ignore"):
            want = np.remainder(a, b)
        got = np.array([np_remainder(x, b) for x in a])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_error_mode_refuses_the_first_row_outside_the_knots():
    t = np.arange(-3.0, 4.0)  # degree 2: base knots -1 .. 1
    args = _args([t], 2, "error", True)
    X = np.array([[0.5], [np.nan], [1.0], [1.5], [-2.0]])
    for fn in (bspline_kernel, bspline_reference):
        ws, status = _run(fn, X, args)
        assert status == 3
        np.testing.assert_array_equal(ws[1, 1:], 0.0)  # NaN: all zeros


def test_refuse_nonfinite():
    t = np.arange(-3.0, 4.0)
    X = np.array([[0.5], [math.inf]])
    for fn in (bspline_kernel, bspline_reference):
        assert _run(fn, X, _args([t], 2, "continue", True, refuse_nonfinite=True))[1] == 1
        assert _run(fn, X, _args([t], 2, "continue", True))[1] == -1
        # constant extrapolation of inf is finite
        assert _run(fn, X, _args([t], 2, "constant", True, refuse_nonfinite=True))[1] == -1


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_basis_sums_to_one_inside_the_knots(mode):
    t = np.array([-4.0, -2.5, -1.0, 0.0, 0.5, 2.0, 3.0, 4.5, 6.0])
    x = np.linspace(-1.0, 3.0, 101)[:, None]  # t[3] .. t[-4] for degree 3... and 2
    for d in (1, 2, 3):
        if mode == "periodic":
            continue
        ws, status = _run(bspline_kernel, x[(x[:, 0] >= t[d]) & (x[:, 0] <= t[-d - 1])],
                          _args([t], d, mode, True))
        assert status == -1
        np.testing.assert_allclose(ws[:, 1:].sum(axis=1), 1.0, rtol=1e-14)
