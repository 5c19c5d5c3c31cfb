"""Kernel of family ``calibration`` (``interpolate``): Numba == NumPy reference
(``np.interp``), bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.kernels.calibration import interpolate_kernel, interpolate_reference, knot_starts

value = st.floats(-1e6, 1e6) | st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0])
knot_y = st.floats(-1e3, 1e3) | st.sampled_from([math.inf, -math.inf])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 4), data=st.data())
def test_interpolate_matches_numpy_interp(n, k, data):
    xs, ys, inputs = [], [], []
    for j in range(k):
        x = sorted(set(data.draw(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8))))
        xs += x
        ys += data.draw(st.lists(knot_y, min_size=len(x), max_size=len(x)))
        inputs += [j] * len(x)
    xs, ys = np.array(xs), np.array(ys)
    X = data.draw(arrays(np.float64, (n, k), elements=value))
    # values exactly on knots as well
    X[0] = [xs[inputs.index(j)] for j in range(k)]
    starts = knot_starts(np.array(inputs), xs, k, "test")
    ws1 = np.zeros((n, 2 * k))
    ws1[:, :k] = X
    ws2 = ws1.copy()
    args = (np.arange(k), np.arange(k, 2 * k), starts, xs, ys)
    with np.errstate(all="ignore"):
        interpolate_kernel(ws1, *args)
        interpolate_reference(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)
    for j in range(k):  # and the reference is np.interp itself
        lo, hi = starts[j], starts[j + 1]
        if hi - lo > 1:
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(ws1[:, k + j], np.interp(X[:, j], xs[lo:hi],
                                                                       ys[lo:hi]))


def test_knots_must_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        knot_starts(np.array([0, 0]), np.array([1.0, 1.0]), 1, "t")
    with pytest.raises(ValueError, match="no knots"):
        knot_starts(np.array([0, 0]), np.array([1.0, 2.0]), 2, "t")
