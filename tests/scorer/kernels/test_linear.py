"""Kernels of family ``linear``: Numba == NumPy reference on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.kernels.linear import (
    LINKS,
    linear_kernel,
    linear_reference,
    link_kernel,
    link_reference,
    link_row_kernel,
    pack_link,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), f=st.integers(1, 12), k=st.integers(1, 5), data=st.data())
def test_linear_kernel_matches_reference(n, f, k, data):
    X = data.draw(arrays(np.float64, (n, f), elements=finite))
    coef = data.draw(arrays(np.float64, (f, k), elements=finite))
    b = data.draw(arrays(np.float64, (k,), elements=finite))
    ws1 = np.zeros((n, f + k))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    cols_in, cols_out = np.arange(f), np.arange(f, f + k)
    assert linear_kernel(ws1, cols_in, cols_out, coef, b) == -1
    linear_reference(ws2, cols_in, cols_out, coef, b)
    scale = np.abs(X) @ np.abs(coef) + np.abs(b) + 1.0
    assert np.all(np.abs(ws1 - ws2)[:, f:] <= 1e-12 * scale)


@pytest.mark.parametrize("name", sorted(LINKS))
def test_links_match_reference_including_extremes(name):
    rng = np.random.default_rng(0)
    k = 1 if name == "logistic2" else 4
    k_out = 2 if name == "logistic2" else k
    X = rng.normal(scale=20, size=(200, k))
    X[:5] = [[710.0] * k, [-710.0] * k, [0.0] * k, [1e-300] * k, [-745.0] * k]
    if name == "exp":
        X = np.clip(X, -700, 700)
    ws1 = np.zeros((200, k + k_out))
    ws1[:, :k] = X
    ws2 = ws1.copy()
    cin, cout = np.arange(k), np.arange(k, k + k_out)
    with np.errstate(over="ignore"):
        link_kernel(ws1, cin, cout, LINKS[name])
        link_reference(ws2, cin, cout, LINKS[name])
    np.testing.assert_allclose(ws1, ws2, rtol=1e-15, atol=1e-300)
    sums = ws1[:, k:].sum(axis=1)
    if name == "logistic_ovr":
        # every margin <= -710 underflows every expit to 0: 0/0 = NaN, as in scikit-learn
        assert np.isnan(sums[[1, 4]]).all()
        sums = np.delete(sums, [1, 4])
    if name in ("softmax", "logistic_ovr", "logistic2"):
        np.testing.assert_allclose(sums, 1.0, rtol=1e-14)


@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_row_kernel_equals_link_kernel(name):
    """The one-row link (arguments packed in one array) writes what the batch kernel writes,
    also with scattered, unordered columns."""
    rng = np.random.default_rng(1)
    k = 1 if name == "logistic2" else 3
    k_out = 2 if name == "logistic2" else k
    cin = np.array([4, 0, 2][:k], dtype=np.int64)
    cout = np.array([5, 1, 6][:k_out], dtype=np.int64)
    for _ in range(20):
        row = rng.normal(scale=5, size=(1, 7))
        a, b = row.copy(), row.copy()
        assert link_kernel(a, cin, cout, LINKS[name]) == -1
        assert link_row_kernel(b, pack_link(cin, cout, LINKS[name])) == -1
        np.testing.assert_array_equal(b, a)
        assert not np.array_equal(a, row)  # the link wrote something


def test_linear_scattered_and_consecutive_columns_agree():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 6))
    coef, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    ws = np.zeros((40, 9))
    ws[:, :6] = X
    linear_kernel(ws, np.arange(6), np.arange(6, 9), coef, b)
    ws2 = np.zeros((40, 9))
    perm = np.array([5, 2, 0, 4, 1, 3])  # scattered: the general path
    ws2[:, perm] = X
    linear_kernel(ws2, perm, np.array([8, 6, 7]), coef, b)
    np.testing.assert_array_equal(ws[:, 6:9], ws2[:, [8, 6, 7]])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 37])
def test_linear_sums_each_row_in_input_order(n):
    """The consecutive-column path scores four rows per pass; every row must still be the
    spec's left-to-right float64 sum plus the intercept, bit for bit (also the tail rows)."""
    rng = np.random.default_rng(n)
    f, k = 30, 2
    X = rng.normal(scale=[10.0 ** (i % 7 - 3) for i in range(f)], size=(n, f))
    coef, b = rng.normal(size=(f, k)), rng.normal(size=k)
    ws = np.zeros((n, f + k))
    ws[:, :f] = X
    linear_kernel(ws, np.arange(f), np.arange(f, f + k), coef, b)
    for i in range(n):
        for j in range(k):
            acc = 0.0
            for q in range(f):
                acc += float(X[i, q]) * float(coef[q, j])
            assert ws[i, f + j] == acc + float(b[j]), (i, j)
