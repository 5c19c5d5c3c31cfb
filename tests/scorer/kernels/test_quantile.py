"""Kernel of family ``quantile`` (``quantile_transform``): Numba == NumPy reference, bit for
bit, and ``ndtri`` == SciPy's ``special.ndtri``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import special

from scorer.kernels.quantile import (
    ndtri,
    ndtri_reference,
    quantile_kernel,
    quantile_reference,
    quantile_starts,
)

value = st.floats(-1e3, 1e3) | st.sampled_from([math.nan, 0.0, -0.0, 1e-7, -1e-7])


def test_ndtri_is_scipys_bit_for_bit():
    rng = np.random.default_rng(0)
    ys = np.concatenate([rng.uniform(0, 1, 20000), 10 ** rng.uniform(-300, 0, 5000),
                         1 - 10 ** rng.uniform(-16, 0, 5000),
                         [0.0, 1.0, 0.5, 1e-7 - 2**-52, 1 - (1e-7 - 2**-52), math.exp(-2),
                          1 - math.exp(-2), math.exp(-32), 5e-324, -0.1, 1.1, math.nan]])
    want = special.ndtri(ys)
    np.testing.assert_array_equal(np.array([ndtri(y) for y in ys]), want)
    np.testing.assert_array_equal(np.array([ndtri_reference(y) for y in ys]), want)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 3), normal=st.booleans(), data=st.data())
def test_quantile_kernel_matches_reference(n, k, normal, data):
    qs, rs, inputs = [], [], []
    for j in range(k):
        # non-decreasing quantiles with repeats (ties in the training column)
        q = sorted(data.draw(st.lists(st.floats(-100, 100) | st.sampled_from([0.0, 1.0]),
                                      min_size=1, max_size=8)))
        qs += q
        rs += list(np.linspace(0, 1, len(q)))
        inputs += [j] * len(q)
    qs, rs = np.array(qs), np.array(rs)
    X = data.draw(arrays(np.float64, (n, k), elements=value))
    starts = quantile_starts(np.array(inputs), qs, k, "test")
    X[0] = [qs[starts[j]] for j in range(k)]  # on the bounds and on repeated quantiles
    if n > 1:
        X[1] = [qs[starts[j + 1] - 1] for j in range(k)]
    ws1 = np.zeros((n, 2 * k))
    ws1[:, :k] = X
    ws2 = ws1.copy()
    args = (np.arange(k), np.arange(k, 2 * k), starts, qs, rs,
            np.ascontiguousarray(-qs[::-1]), np.ascontiguousarray(-rs[::-1]), normal)
    quantile_kernel(ws1, *args)
    quantile_reference(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)
    assert np.array_equal(np.isnan(ws1[:, k:]), np.isnan(X))  # NaN in, NaN out, only


def test_quantiles_must_not_decrease():
    with pytest.raises(ValueError, match="non-decreasing"):
        quantile_starts(np.array([0, 0]), np.array([2.0, 1.0]), 1, "t")
    with pytest.raises(ValueError, match="no quantiles"):
        quantile_starts(np.array([0, 0]), np.array([1.0, 1.0]), 2, "t")
