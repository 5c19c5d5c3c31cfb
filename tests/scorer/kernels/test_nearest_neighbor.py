"""Kernels of family ``nearest_neighbor``: Numba == NumPy reference, neighbour order, votes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.kernels.clustering import squared_norm
from scorer.kernels.nearest_neighbor import (
    METHODS,
    nearest_neighbor_kernel,
    nearest_neighbor_reference,
)

# few distinct values: ties between instances are frequent
coords = st.one_of(st.sampled_from([0.0, 1.0, 2.0, -1.0]), st.floats(-50, 50, width=64))


def run(X, inst, ys, n_classes, methods, *, k, measure=0, p=2.0, threshold=0.001,
        zero_rule=False, expansion=False, ids=None, heap=False, refuse=False, status=-1):
    n, f = X.shape
    starts, o = [], k
    for c in n_classes:
        starts.append(o)
        o += 1 if c == 0 else c + 1
    ws1 = np.zeros((n, f + o))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    m = inst.shape[0]
    cc = np.array([squared_norm(r) for r in inst])
    ids = np.arange(m, dtype=np.float64) + 1.0 if ids is None else ids
    args = (np.arange(f), np.arange(f, f + o), inst, ids, ys, np.ones(f),
            np.zeros(f, dtype=np.int64), np.ones(f), np.ones(f), measure, p, expansion, cc, k,
            threshold, zero_rule, np.asarray(n_classes, dtype=np.int64),
            np.array([METHODS[x] for x in methods], dtype=np.int64),
            np.asarray(starts, dtype=np.int64), heap, refuse)
    assert nearest_neighbor_kernel(ws1, *args) == status
    assert nearest_neighbor_reference(ws2, *args) == status
    return ws1[:, f:], ws2[:, f:]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 8), f=st.integers(1, 3), m=st.integers(1, 12), k=st.integers(1, 5),
       measure=st.sampled_from([0, 1, 2, 3]), cont=st.sampled_from(
           ["average", "median", "weightedAverage"]), cat=st.sampled_from(
           ["majorityVote", "weightedMajorityVote"]), zero_rule=st.booleans(),
       heap=st.booleans(), data=st.data())
def test_kernel_matches_reference(n, f, m, k, measure, cont, cat, zero_rule, heap, data):
    X = data.draw(arrays(np.float64, (n, f), elements=st.one_of(coords, st.just(np.nan))))
    inst = data.draw(arrays(np.float64, (m, f), elements=coords))
    y0 = data.draw(arrays(np.float64, (m,), elements=st.floats(-100, 100, width=64)))
    y1 = data.draw(arrays(np.float64, (m,), elements=st.integers(0, 2).map(float)))
    a, b = run(X, inst, np.column_stack([y0, y1]), [0, 3], [cont, cat], k=k, measure=measure,
               zero_rule=zero_rule, threshold=0.0 if zero_rule else 0.001, heap=heap)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    # np.median and the kernel's middle-value mean round alike; sums run in the same order
    np.testing.assert_array_equal(a[ok], b[ok])


def test_neighbours_ties_go_to_the_earlier_instance_and_fewer_than_k():
    inst = np.array([[2.0], [1.0], [1.0], [np.nan], [3.0]])
    ys = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])
    X = np.array([[1.0], [np.nan]])
    a, b = run(X, inst, ys, [0], ["average"], k=5, measure=2)
    np.testing.assert_array_equal(a, b)
    # ids: 1-based rows; rows 2 and 3 tie at 0, row 1 and 5 at 1 and 2; row 4 (NaN) never
    np.testing.assert_array_equal(a[0, :5], [2.0, 3.0, 1.0, 5.0, np.nan])
    assert a[0, 5] == (20.0 + 30.0 + 10.0 + 50.0) / 4
    assert np.isnan(a[1]).all()  # a missing input: no distance, no neighbour


def test_votes_weights_and_class_ties():
    inst = np.array([[0.0], [1.0], [3.0], [4.0]])
    ys = np.array([[1.0], [0.0], [1.0], [0.0]])
    X = np.array([[2.0], [0.0]])
    a, _ = run(X, inst, ys, [2], ["majorityVote"], k=4, measure=2)
    np.testing.assert_array_equal(a[0, 4:], [0.5, 0.5, 0.0])  # tie: the smaller class index
    a, b = run(X, inst, ys, [2], ["weightedMajorityVote"], k=2, measure=2, threshold=0.0,
               zero_rule=True)
    np.testing.assert_array_equal(a, b)
    # row 1 sits on instance 0 (distance 0): only that neighbour counts
    np.testing.assert_array_equal(a[1, 2:], [0.0, 1.0, 1.0])
    w = 1.0 / np.array([1.0, 1.0])  # row 0: instances 1 and 2, both at distance 1
    np.testing.assert_array_equal(a[0, 2:4], w / w.sum())


def test_expansion_matches_reference():
    rng = np.random.default_rng(3)
    X, inst = rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    ys = rng.normal(size=(40, 1))
    a, b = run(X, inst, ys, [0], ["weightedAverage"], k=3, expansion=True, threshold=0.0,
               zero_rule=True)
    np.testing.assert_array_equal(a, b)
    exact, _ = run(X, inst, ys, [0], ["weightedAverage"], k=3)
    np.testing.assert_array_equal(a[:, :3], exact[:, :3])  # same neighbours, apart from ties


def test_parallel_kernel_equals_serial():
    from scorer.kernels.nearest_neighbor import nearest_neighbor_kernel_parallel

    rng = np.random.default_rng(4)
    n, f, m, k = 300, 2, 50, 3
    X, inst = rng.normal(size=(n, f)), rng.normal(size=(m, f))
    ys = np.column_stack([rng.normal(size=m), rng.integers(0, 2, m).astype(float)])
    o = k + 1 + 3
    ws1 = np.zeros((n, f + o))
    ws1[:, :f] = X
    ws2 = ws1.copy()
    args = (np.arange(f), np.arange(f, f + o), inst, np.arange(m, dtype=np.float64), ys,
            np.ones(f), np.zeros(f, dtype=np.int64), np.ones(f), np.ones(f), 0, 2.0, False,
            np.zeros(m), k, 0.001, False, np.array([0, 2]),
            np.array([METHODS["average"], METHODS["majorityVote"]]), np.array([k, k + 1]),
            True, False)
    nearest_neighbor_kernel(ws1, *args)
    nearest_neighbor_kernel_parallel(ws2, *args)
    np.testing.assert_array_equal(ws1, ws2)


def _sklearn_heap_choice(d, k):
    """scikit-learn's own ArgKmin on integer points whose squared distances to the query are
    ``d`` exactly (one feature per point, query at 0): which instances it keeps."""
    from sklearn.metrics._pairwise_distances_reduction import ArgKmin

    pts = np.sqrt(np.asarray(d, dtype=np.float64))[:, None]
    return ArgKmin.compute(np.zeros((1, 1)), pts, k, metric="euclidean",
                           strategy="parallel_on_X")[0]


def test_heap_search_keeps_the_ties_scikit_learn_keeps():
    # tied distances at the k-th place: a stable sort keeps the earlier instances, the
    # max-heap evicts whichever tied instance sits at its root
    v = np.array([0, 5, 2, 2, 4, 1, 3, 5, 4, 0, 5, 4, 4, 1, 5, 2, 5, 1, 0, 5, 3, 2, 5, 5, 0, 3,
                  4, 4, 3, 3], dtype=np.float64)  # points; squared distances to 0: v * v
    d = v * v
    inst = np.sqrt(d)[:, None]
    ys = np.arange(len(d), dtype=np.float64)[:, None]
    X = np.zeros((1, 1))
    a, b = run(X, inst, ys, [0], ["average"], k=5, heap=True, expansion=True,
               ids=np.arange(len(d), dtype=np.float64))
    np.testing.assert_array_equal(a, b)
    want = _sklearn_heap_choice(d, 5)
    np.testing.assert_array_equal(np.sort(a[0, :5]), np.sort(want))
    stable, _ = run(X, inst, ys, [0], ["average"], k=5, expansion=True,
                    ids=np.arange(len(d), dtype=np.float64))
    assert set(stable[0, :5]) != set(want)  # the case really tells the two apart


@settings(max_examples=30, deadline=None)
@given(d=arrays(np.float64, st.integers(1, 25), elements=st.integers(0, 4).map(
    lambda v: float(v * v))), k=st.integers(1, 6))
def test_heap_search_matches_scikit_learn(d, k):
    k = min(k, len(d))
    inst = np.sqrt(d)[:, None]
    ids = np.arange(len(d), dtype=np.float64)
    a, b = run(np.zeros((1, 1)), inst, ids[:, None], [0], ["average"], k=k, heap=True,
               expansion=True, ids=ids)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a[0, :k]), np.sort(_sklearn_heap_choice(d, k)))


def test_too_few_neighbours_refused_or_nan():
    inst = np.array([[0.0], [1.0], [2.0]])
    ys = np.array([[1.0], [2.0], [3.0]])
    X = np.array([[0.5], [1e300], [2.0]])  # row 1: squared distances overflow to inf
    for expansion in (False, True):
        a, b = run(X, inst, ys, [0], ["average"], k=2, expansion=expansion, heap=expansion)
        np.testing.assert_array_equal(a, b)
        assert np.isnan(a[1]).all() and not np.isnan(a[[0, 2]]).any()
        run(X, inst, ys, [0], ["average"], k=2, expansion=expansion, refuse=True, status=1)


def test_parallel_kernel_refuses_the_first_bad_row():
    from scorer.kernels.nearest_neighbor import nearest_neighbor_kernel_parallel

    n, m, k = 300, 20, 3
    inst = np.arange(m, dtype=np.float64)[:, None]
    X = np.linspace(0.0, 19.0, n)[:, None]
    X[[250, 70, 130]] = 1e300  # three blocks of 64 rows hold a refused row
    ws = np.zeros((n, 1 + k + 1))
    ws[:, 0] = X[:, 0]
    args = (np.arange(1), np.arange(1, 2 + k), inst, np.arange(m, dtype=np.float64),
            inst.copy(), np.ones(1), np.zeros(1, dtype=np.int64), np.ones(1), np.ones(1), 0,
            2.0, False, np.zeros(m), k, 0.0, False, np.array([0]),
            np.array([METHODS["average"]]), np.array([k]), True, True)
    assert nearest_neighbor_kernel_parallel(ws.copy(), *args) == 70
    assert nearest_neighbor_kernel(ws.copy(), *args) == 70
    assert nearest_neighbor_reference(ws.copy(), *args) == 70
