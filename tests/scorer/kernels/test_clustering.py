"""Kernels of family ``clustering``: Numba == NumPy reference; distances == scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

from scorer.kernels.clustering import (
    MEASURES,
    clustering_kernel,
    clustering_reference,
    reference_distances,
    squared_norm,
)

values = st.one_of(st.floats(-1e3, 1e3, allow_nan=False, width=64), st.just(np.nan),
                   st.sampled_from([0.0, 1.0, -1.0]))


def run(X, centers, *, weight=None, compare=None, scale=None, qw=None, measure=0, p=2.0,
        expansion=False):
    n, f = X.shape
    k = centers.shape[0]
    weight = np.ones(f) if weight is None else weight
    compare = np.zeros(f, dtype=np.int64) if compare is None else compare
    scale = np.ones(f) if scale is None else scale
    qw = np.ones(f) if qw is None else qw
    cc = np.array([squared_norm(c) for c in centers])
    ws1 = np.zeros((n, f + k + 1))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    args = (np.arange(f), np.arange(f, f + k + 1), centers, weight, compare, scale, qw, measure,
            p, expansion, cc)
    assert clustering_kernel(ws1, *args) == -1
    assert clustering_reference(ws2, *args) == -1
    return ws1[:, f:], ws2[:, f:]


def assert_same(a, b, rel=0.0):
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    assert np.all(np.abs(a[ok] - b[ok]) <= rel * np.abs(b[ok]))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 12), f=st.integers(1, 5), k=st.integers(1, 4),
       measure=st.sampled_from(sorted(MEASURES.values())), data=st.data())
def test_kernel_matches_reference(n, f, k, measure, data):
    X = data.draw(arrays(np.float64, (n, f), elements=values))
    C = data.draw(arrays(np.float64, (k, f), elements=st.floats(-1e3, 1e3, width=64)))
    w = data.draw(arrays(np.float64, (f,), elements=st.floats(0.0, 10.0, width=64)))
    cmp = data.draw(arrays(np.int64, (f,), elements=st.integers(0, 3)))
    qw = data.draw(arrays(np.float64, (f,), elements=st.floats(0.1, 5.0, width=64)))
    p = data.draw(st.floats(0.5, 4.0)) if measure == 4 else 2.0
    a, b = run(X, C, weight=w, compare=cmp, scale=np.full(f, 2.5), qw=qw, measure=measure, p=p)
    # minkowski's x ** p and gaussSim's exp: Numba's libm and NumPy's may differ in the last
    # ulp (then a near-tie may pick another winner: winners are compared when exact only)
    libm = measure == 4 or bool((cmp == 1).any())
    assert_same(a[:, :-1], b[:, :-1], rel=1e-13 if libm else 0.0)
    if not libm:
        assert np.array_equal(a[:, -1], b[:, -1], equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), f=st.integers(1, 5), k=st.integers(1, 4),
       measure=st.sampled_from([0, 1]), data=st.data())
def test_expansion_matches_reference(n, f, k, measure, data):
    fin = st.floats(-1e3, 1e3, allow_nan=False, width=64)
    X = data.draw(arrays(np.float64, (n, f), elements=fin))
    C = data.draw(arrays(np.float64, (k, f), elements=fin))
    a, b = run(X, C, measure=measure, expansion=True)
    assert_same(a, b)
    assert np.array_equal(a[:, -1], b[:, -1])


@pytest.mark.parametrize(("measure", "metric", "kw"), [
    (0, "euclidean", {}), (1, "sqeuclidean", {}), (2, "cityblock", {}),
    (3, "chebyshev", {}), (4, "minkowski", {"p": 3.0})])
def test_distances_equal_scipy(measure, metric, kw):
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(50, 4)), rng.normal(size=(6, 4))
    a, b = run(X, C, measure=measure, p=kw.get("p", 2.0))
    want = cdist(X, C, metric, **kw)
    np.testing.assert_allclose(a[:, :-1], want, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(a[:, -1], np.argmin(want, axis=1))
    assert_same(a, b, rel=1e-13)


def test_missing_values_are_adjusted_and_ties_go_to_the_first_center():
    C = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    X = np.array([[1.0, np.nan, 2.0],       # one of three missing
                  [np.nan, np.nan, np.nan],  # all missing: no distance, no winner
                  [0.5, 0.5, 0.5]])          # equidistant from all: the first wins
    qw = np.array([1.0, 2.0, 1.0])
    a, b = run(X, C, qw=qw, measure=1)
    assert_same(a, b)
    # row 0: (1 + 4) * (1 + 2 + 1) / (1 + 1) against center 0; (0 + 1) * 2 against center 1
    assert a[0, 0] == 10.0 and a[0, 1] == 2.0 and a[0, 3] == 1.0
    assert np.isnan(a[1]).all()
    assert a[2, 3] == 0.0


def test_compare_functions_and_field_weights():
    C = np.array([[1.0, 2.0, 3.0, 4.0]])
    X = np.array([[1.0, 5.0, 3.0, 0.0], [2.0, 2.0, 4.0, 4.0]])
    cmp = np.array([0, 1, 2, 3])
    w = np.array([2.0, 1.0, 3.0, 0.5])
    a, b = run(X, C, weight=w, compare=cmp, scale=np.full(4, 2.0), measure=2)
    assert_same(a, b)
    g = np.exp(-np.log(2) * (np.array([3.0, 0.0]) ** 2) / 4.0)
    want = w[0] * np.abs(X[:, 0] - 1) + w[1] * g + w[2] * (X[:, 2] != 3) + w[3] * (X[:, 3] == 4)
    np.testing.assert_allclose(a[:, 0], want, rtol=1e-15)


def test_reference_distances_of_empty_reference_set():
    d = reference_distances(np.ones((3, 2)), np.zeros((0, 2)), np.ones(2),
                            np.zeros(2, dtype=np.int64), np.ones(2), np.ones(2), 0, 2.0, False)
    assert d.shape == (3, 0)


def test_parallel_kernel_equals_serial():
    from scorer.kernels.clustering import clustering_kernel_parallel

    rng = np.random.default_rng(2)
    X, C = rng.normal(size=(700, 3)), rng.normal(size=(5, 3))
    X[::7, 1] = np.nan
    f, k = 3, 5
    ws1 = np.zeros((700, f + k + 1))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    args = (np.arange(f), np.arange(f, f + k + 1), C, np.ones(f), np.zeros(f, dtype=np.int64),
            np.ones(f), np.ones(f), 0, 2.0, False, np.array([squared_norm(c) for c in C]))
    clustering_kernel(ws1, *args)
    clustering_kernel_parallel(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)
