"""The binning and divergence kernels against their NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from scorer.monitoring import kernels
from scorer.monitoring.profile import numeric_edges


def _values(rng: np.random.Generator, n: int, edges: np.ndarray) -> np.ndarray:
    x = rng.normal(size=n) * 2
    x[rng.random(n) < 0.05] = np.nan
    x[:4] = [np.inf, -np.inf, edges[0], edges[-1]]
    x[4:4 + len(edges)] = edges  # every edge itself
    return x


@pytest.mark.parametrize("seed", range(4))
def test_numeric_bins_equal_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = numeric_edges(rng.normal(size=500), bins=10 + seed)
    x = _values(rng, 2000, edges)
    counts = np.zeros(len(edges) + 2, np.int64)
    kernels.count_numeric(x, edges, 0, counts)
    ref = np.bincount(kernels.numeric_bins_reference(x, edges), minlength=len(edges) + 2)
    assert np.array_equal(counts, ref)
    assert counts[0] == np.isnan(x).sum()
    assert counts[1] == (x < edges[0]).sum() and counts[-1] == (x > edges[-1]).sum()


def test_constant_feature_has_one_inner_bin() -> None:
    edges = numeric_edges(np.full(50, 3.0))
    assert list(edges) == [3.0, np.nextafter(3.0, np.inf)]
    counts = np.zeros(4, np.int64)
    kernels.count_numeric(np.array([3.0, 2.0, 4.0, np.nan, 3.0]), edges, 0, counts)
    assert list(counts) == [1, 1, 2, 1]
    assert list(kernels.numeric_bins_reference(np.array([3.0, 2.0, 4.0]), edges)) == [2, 1, 3]


def test_code_bins_equal_reference() -> None:
    codes = np.array([0, 1, 2, -1, np.nan, 5, 2, 0], dtype=np.float64)
    counts = np.zeros(5, np.int64)
    kernels.count_codes(codes, 3, 0, counts)
    assert np.array_equal(counts, np.bincount(kernels.code_bins_reference(codes, 3),
                                              minlength=5))
    assert list(counts) == [1, 2, 1, 2, 2]  # missing, three categories, unseen (-1 and 5)


@pytest.mark.parametrize("seed", range(6))
def test_psi_and_js_equal_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 24, size=8)
    ref = [rng.integers(0, 500, s) for s in sizes]
    cur = [rng.integers(0, 500, s) for s in sizes]
    for r, c in zip(ref, cur, strict=True):  # empty bins on either side or both
        r[rng.integers(0, len(r))] = 0
        c[rng.integers(0, len(c))] = 0
        c[0] = r[0] = 0
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    psi, js = np.empty(len(sizes)), np.empty(len(sizes))
    kernels.divergences(np.concatenate(ref), np.concatenate(cur), off, kernels.PSI_EPSILON,
                        psi, js)
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        assert abs(psi[i] - kernels.psi_reference(r, c)) <= 1e-12
        assert abs(js[i] - kernels.js_reference(r, c)) <= 1e-12
        assert abs(js[i] - jensenshannon(r / r.sum(), c / c.sum(), base=2)) <= 1e-12


def test_identical_distributions_have_zero_drift_and_empty_side_is_nan() -> None:
    r = np.array([0, 5, 10, 0, 3], np.int64)
    psi, js = np.empty(2), np.empty(2)
    kernels.divergences(np.concatenate([r, r]), np.concatenate([r * 3, r * 0]),
                        np.array([0, 5, 10], np.int64), 1e-4, psi, js)
    assert psi[0] == 0.0 and js[0] == 0.0
    assert np.isnan(psi[1]) and np.isnan(js[1])


@st.composite
def _batch(draw: st.DrawFn) -> tuple:
    """A count_batch call: a matrix with numeric columns, and other columns of every kind."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(0, 1100))  # across the kernel's blocks (128 rows; 512 values of V)
    k = draw(st.integers(0, 4))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    X = (rng.normal(size=(n, k + 1)) * 3).astype(dtype)
    if dtype != np.int64 and n:
        X[rng.random(X.shape) < 0.05] = np.nan
        X[0, :] = np.inf
    edges = []
    for _ in range(k + 3):
        e = np.unique(np.round(rng.normal(size=draw(st.integers(1, 20))) * 2, 1))
        edges.append(np.repeat(e, 2) if e.size == 1 else e)
    W = max(len(e) for e in edges)
    E = np.full((len(edges), W), np.inf)
    ne = np.array([len(e) for e in edges], np.int64)
    for i, e in enumerate(edges):
        E[i, :len(e)] = e
    cols = rng.permutation(k + 1)[:k].astype(np.int64)
    sizes = [int(ne[t]) + 2 for t in range(k)]
    # other columns: numeric against rows k.., codes, keys
    kinds = [kernels.V_NUMERIC, kernels.V_CODES, kernels.V_KEYS]
    vkind = np.array([kinds[i % 3] for i in range(draw(st.integers(0, 6)))], np.int64)
    keys = np.unique(rng.integers(-5, 6, size=4).astype(np.float64))
    K = np.full((1, 4), np.inf)
    K[0, :len(keys)] = keys
    kn = np.array([len(keys)], np.int64)
    kc = np.zeros((1, 4), np.int64)
    kc[0, :len(keys)] = rng.permutation(len(keys))
    pieces, vrow, vm = [], [], []
    for kind in vkind:
        size = int(rng.integers(0, 700))
        if kind == kernels.V_NUMERIC:
            r = int(rng.integers(k, len(edges)))
            v = rng.normal(size=size) * 3
            vrow.append(r)
            vm.append(0)
            sizes.append(int(ne[r]) + 2)
        else:
            m = len(keys) if kind == kernels.V_KEYS else int(rng.integers(1, 6))
            v = rng.integers(-6, 7, size=size).astype(np.float64)
            vrow.append(0)
            vm.append(m)
            sizes.append(m + 2)
        v[rng.random(size) < 0.1] = np.nan
        pieces.append(v)
    V = np.concatenate(pieces) if pieces else np.zeros(0)
    vstart = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return (X, cols, E, ne, off[:k], V, vstart, np.array(vrow, np.int64), vkind, K, kn, kc,
            np.array(vm, np.int64), off[k:len(sizes)], int(off[-1]))


@settings(max_examples=80, deadline=None)
@given(_batch())
def test_count_batch_equals_numpy_reference(case: tuple) -> None:
    *args, total = case
    got = np.zeros(total, np.int64)
    want = np.zeros(total, np.int64)
    kernels.count_batch(*args, got)
    kernels.count_batch_reference(*args, want)
    assert np.array_equal(got, want)
    X, cols, V, vstart = args[0], args[1], args[5], args[6]
    assert got.sum() == X.shape[0] * len(cols) + len(V) == vstart[-1] + X.shape[0] * len(cols)


def test_a_flag_or_a_count_has_a_bin_per_value() -> None:
    """Edges [0, 1] alone put 0 and 1 in one (closed) bin: a flag's drift never showed."""
    rng = np.random.default_rng(0)
    ref = (rng.random(4000) < 0.1).astype(float)  # 10% ones
    cur = (rng.random(4000) < 0.9).astype(float)  # 90% ones
    edges = numeric_edges(ref)
    assert list(edges) == [0.0, 1.0, np.nextafter(1.0, np.inf)]
    c_ref, c_cur = (np.zeros(len(edges) + 2, np.int64) for _ in range(2))
    kernels.count_numeric(ref, edges, 0, c_ref)
    kernels.count_numeric(cur, edges, 0, c_cur)
    assert c_ref[2] == (ref == 0).sum() and c_ref[3] == (ref == 1).sum()
    assert c_cur[2] == (cur == 0).sum() and c_cur[3] == (cur == 1).sum()
    counts3 = numeric_edges(np.repeat([0.0, 1.0, 2.0], 100))
    assert list(counts3) == [0.0, 1.0, 2.0, np.nextafter(2.0, np.inf)]
    # many distinct values: quantiles, as before
    assert len(numeric_edges(rng.normal(size=1000), bins=10)) == 11


def test_edges_stay_finite_where_interpolation_overflows() -> None:
    x = np.concatenate([np.full(50, -1e308), np.full(50, 1e308), np.linspace(-1, 1, 100)])
    edges = numeric_edges(x)
    assert np.isfinite(edges).all() and np.all(np.diff(edges) > 0)
    assert edges[0] == -1e308 and edges[-1] == 1e308
