"""Kernels of family ``preprocessing``: Numba == NumPy reference, bit for bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.kernels.preprocessing import (
    affine_kernel,
    affine_reference,
    impute_kernel,
    impute_reference,
)

anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=64)
nonzero = st.floats(1e-6, 1e6) | st.floats(-1e6, -1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 15), f=st.integers(1, 6), clip=st.booleans(), data=st.data())
def test_affine_matches_reference(n, f, clip, data):
    X = data.draw(arrays(np.float64, (n, f), elements=anyfloat))
    sub, mul, add = (data.draw(arrays(np.float64, (f,), elements=st.floats(-1e3, 1e3)))
                     for _ in range(3))
    div = data.draw(arrays(np.float64, (f,), elements=nonzero))
    ws1 = np.zeros((n, 2 * f))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    args = (np.arange(f), np.arange(f, 2 * f), sub, div, mul, add, clip, -1.0, 1.0)
    with np.errstate(all="ignore"):
        affine_kernel(ws1, *args)
        affine_reference(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 15), f=st.integers(1, 6), marker=st.sampled_from([math.nan, -1.0]),
       data=st.data())
def test_impute_matches_reference(n, f, marker, data):
    X = data.draw(arrays(np.float64, (n, f), elements=st.sampled_from(
        [math.nan, -1.0, 0.0, 2.5, 1e300])))
    fill = data.draw(arrays(np.float64, (f,), elements=st.floats(-10, 10)))
    emit = data.draw(arrays(np.bool_, (f,)))
    ind = np.array(sorted(set(data.draw(st.lists(st.integers(0, f - 1), max_size=f)))),
                   dtype=np.int64)
    n_out = int(emit.sum()) + len(ind)
    ws1 = np.zeros((n, f + n_out))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    outs = np.arange(f, f + n_out)
    args = (np.arange(f), outs[: emit.sum()], fill, emit, marker, ind, outs[emit.sum():])
    impute_kernel(ws1, *args)
    impute_reference(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)


def test_affine_scattered_and_consecutive_columns_agree():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 5))
    sub, div, mul, add = (rng.normal(size=5) for _ in range(4))
    ws = np.zeros((50, 15))
    ws[:, :5] = X
    ws2 = ws.copy()
    affine_kernel(ws, np.arange(5), np.arange(5, 10), sub, div, mul, add, False, 0.0, 0.0)
    perm = np.array([3, 0, 4, 1, 2])  # scattered: the general path
    ws2[:, :5] = X[:, np.argsort(perm)][:, :]
    affine_kernel(ws2, perm, np.array([14, 10, 12, 11, 13]), sub, div, mul, add, False, 0.0,
                  0.0)
    np.testing.assert_array_equal(ws[:, 5:10], ws2[:, [14, 10, 12, 11, 13]])
