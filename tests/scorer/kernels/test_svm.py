"""Kernels of family ``svm``: Numba == NumPy reference, and the documented formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.kernels.svm import (
    COMPARES,
    KERNELS,
    POWERS,
    SCORES,
    TIES,
    _powi,
    svm_kernel,
    svm_parallel,
    svm_reference,
    svm_vote_kernel,
    svm_vote_reference,
)
from scorer.tolerances import TOLERANCES

finite = st.floats(-10, 10, allow_nan=False, width=64)
TOL = TOLERANCES["svm"]


def _csr(machine: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(machine, kind="stable")
    ptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(machine, minlength=k), out=ptr[1:])
    return order, ptr


def _run_svm(X, V, machine, vec, coef, b, kind, gamma, coef0, degree, power, fn=svm_kernel):
    n, f = X.shape
    k = b.shape[0]
    order, ptr = _csr(machine, k)
    ws = np.zeros((n, f + k))
    ws[:, :f] = X
    status = fn(ws, np.arange(f), np.arange(f, f + k), V, ptr, vec[order], coef[order], b,
                KERNELS[kind], gamma, coef0, float(degree), POWERS[power])
    assert status == -1
    return ws[:, f:]


def _naive(X, V, machine, vec, coef, b, kind, gamma, coef0, degree):
    """The documented formula, one (row, machine) at a time in plain Python floats."""
    out = np.zeros((X.shape[0], b.shape[0]))
    for i, x in enumerate(X):
        for m in range(b.shape[0]):
            acc = 0.0
            for e in np.flatnonzero(machine == m):
                v = V[vec[e]]
                if kind == "rbf":
                    kv = math.exp(-gamma * sum((a - c) ** 2 for a, c in zip(x, v, strict=True)))
                else:
                    d = sum(a * c for a, c in zip(x, v, strict=True))
                    kv = {"linear": d, "poly": (gamma * d + coef0) ** degree,
                          "sigmoid": math.tanh(gamma * d + coef0)}[kind]
                acc += coef[e] * kv
            out[i, m] = acc + b[m]
    return out


def _scale(X, V, coef, b, kind, gamma, coef0, degree):
    """A bound on |terms| of the expansion, for the rounding allowance."""
    if kind == "rbf":
        kmax = 1.0
    else:
        d = np.abs(X) @ np.abs(V).T
        kmax = {"linear": d, "poly": (abs(gamma) * d + abs(coef0)) ** degree,
                "sigmoid": np.ones_like(d)}[kind].max(initial=0.0)
    return (np.abs(coef).sum() + 1) * (kmax + 1) + np.abs(b).max(initial=0.0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), f=st.integers(1, 6), nsv=st.integers(1, 8), k=st.integers(1, 4),
       kind=st.sampled_from(sorted(KERNELS)), power=st.sampled_from(sorted(POWERS)),
       degree=st.integers(0, 4), data=st.data())
def test_svm_kernel_matches_reference_and_formula(n, f, nsv, k, kind, power, degree, data):
    X = data.draw(arrays(np.float64, (n, f), elements=finite))
    V = data.draw(arrays(np.float64, (nsv, f), elements=finite))
    ne = data.draw(st.integers(0, 3 * nsv))
    machine = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=ne, max_size=ne)),
                       dtype=np.int64)
    vec = np.array(data.draw(st.lists(st.integers(0, nsv - 1), min_size=ne, max_size=ne)),
                   dtype=np.int64)
    coef = data.draw(arrays(np.float64, (ne,), elements=finite))
    b = data.draw(arrays(np.float64, (k,), elements=finite))
    gamma = data.draw(st.floats(0.01, 2.0))
    coef0 = data.draw(finite)
    args = (X, V, machine, vec, coef, b, kind, gamma, coef0, degree, power)
    got = _run_svm(*args)
    ref = _run_svm(*args, fn=svm_reference)
    want = _naive(X, V, machine, vec, coef, b, kind, gamma, coef0, degree)
    allow = 1e-13 * _scale(X, V, coef, b, kind, gamma, coef0, degree)
    assert np.all(np.abs(got - ref) <= allow)
    assert np.all(np.abs(got - want) <= allow)


def test_machines_without_entries_are_their_intercept_and_parallel_equals_serial():
    rng = np.random.default_rng(1)
    X, V = rng.normal(size=(5000, 4)), rng.normal(size=(30, 4))
    machine = rng.integers(0, 2, size=60)  # machine 2 has no entries
    vec, coef, b = rng.integers(0, 30, size=60), rng.normal(size=60), np.array([0.5, -1.0, 3.25])
    for kind in sorted(KERNELS):
        args = (X, V, machine, vec, coef, b, kind, 0.3, 0.5, 3, "squaring")
        serial = _run_svm(*args)
        np.testing.assert_array_equal(_run_svm(*args, fn=svm_parallel), serial)
        assert np.all(serial[:, 2] == 3.25)


def test_rbf_sums_squared_differences_in_order():
    # |x - v|^2 by differences stays exact where the expansion |x|^2 + |v|^2 - 2 x.v cancels
    X = np.array([[1e8 + 1.0, 0.0]])
    V = np.array([[1e8, 0.0]])
    one = np.array([0], dtype=np.int64)
    out = _run_svm(X, V, one, one, np.array([1.0]), np.array([0.0]), "rbf", 0.5, 0.0, 0, "pow")
    assert out[0, 0] == math.exp(-0.5)


def test_powi_is_libsvm_repeated_squaring():
    for base in (1.1, -0.7, 3.0000001):
        for d in range(8):
            t, r, p = base, 1.0, d  # square-and-multiply, written out independently
            while p:
                r = r * t if p & 1 else r
                t, p = t * t, p >> 1
            assert _powi(base, d) == r
    assert _powi(2.0, 0) == 1.0


def test_nan_input_propagates_to_the_decision():
    X = np.array([[np.nan, 1.0], [1.0, 1.0]])
    V = np.array([[1.0, 2.0]])
    one = np.array([0], dtype=np.int64)
    for kind in sorted(KERNELS):
        out = _run_svm(X, V, one, one, np.array([2.0]), np.array([1.0]), kind, 1.0, 0.0, 2,
                       "pow")
        assert np.isnan(out[0, 0]) and not np.isnan(out[1, 0])


# --- svm_vote --------------------------------------------------------------------------------
def _run_vote(D, first, second, thr, nc, compare, tie, scores, fn=svm_vote_kernel):
    n, k = D.shape
    ws = np.zeros((n, k + nc + 1))
    ws[:, :k] = D
    fn(ws, np.arange(k), np.arange(k, k + nc + 1), first, second, thr, COMPARES[compare],
       TIES[tie], SCORES[scores])
    return ws[:, k:]


def _naive_vote(D, first, second, thr, nc, compare, tie, scores):
    out = np.zeros((D.shape[0], nc + 1))
    for i, row in enumerate(D):
        votes, s, order = [0] * nc, [0.0] * nc, []
        for m, x in enumerate(row):
            win = x > thr[m] if compare == "gt" else x < thr[m]
            c = first[m] if win else second[m]
            votes[c] += 1
            if c not in order:
                order.append(c)
            s[first[m]] -= x
            s[second[m]] += x
        top = max(votes)
        tied = [c for c in range(nc) if votes[c] == top]
        best = min(tied, key=order.index) if tie == "first_voted" else tied[0]
        for c in range(nc):
            out[i, c] = {"count": votes[c], "fraction": votes[c] / len(row),
                         "ovr_confidence": votes[c] + s[c] / (3 * (abs(s[c]) + 1))}[scores]
        out[i, nc] = best
    return out


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 15), nc=st.integers(2, 5), compare=st.sampled_from(sorted(COMPARES)),
       tie=st.sampled_from(sorted(TIES)), scores=st.sampled_from(sorted(SCORES)),
       data=st.data())
def test_svm_vote_matches_reference_and_formula(n, nc, compare, tie, scores, data):
    pairs = [(i, j) for i in range(nc) for j in range(i + 1, nc)]
    if data.draw(st.booleans()):
        pairs = [(j, i) for i, j in pairs]
    first = np.array([p[0] for p in pairs], dtype=np.int64)
    second = np.array([p[1] for p in pairs], dtype=np.int64)
    k = len(pairs)
    # small integers: many values on the threshold and many tied votes
    D = data.draw(arrays(np.float64, (n, k), elements=st.sampled_from([-1.5, -1.0, 0.0, 0.5,
                                                                         1.0, 2.0])))
    thr = data.draw(arrays(np.float64, (k,), elements=st.sampled_from([0.0, 0.5, 1.0])))
    args = (D, first, second, thr, nc, compare, tie, scores)
    got = _run_vote(*args)
    np.testing.assert_array_equal(got, _run_vote(*args, fn=svm_vote_reference))
    np.testing.assert_array_equal(got, _naive_vote(*args))


def test_vote_ties_lowest_index_versus_first_voted():
    # 3 classes: (0,1) votes 1, (0,2) votes 0, (1,2) votes 2 -- one vote each
    first, second = np.array([0, 0, 1]), np.array([1, 2, 2])
    D = np.array([[-1.0, 1.0, -1.0]])
    thr = np.zeros(3)
    low = _run_vote(D, first, second, thr, 3, "gt", "lowest", "count")
    fv = _run_vote(D, first, second, thr, 3, "gt", "first_voted", "fraction")
    assert list(low[0]) == [1, 1, 1, 0]
    assert fv[0, 3] == 1  # class 1 got the first vote
    np.testing.assert_array_equal(fv[0, :3], [1 / 3] * 3)


def test_vote_nan_row_is_all_nan():
    first, second = np.array([0]), np.array([1])
    got = _run_vote(np.array([[np.nan], [0.0]]), first, second, np.zeros(1), 2, "lt",
                    "lowest", "count")
    assert np.isnan(got[0]).all()
    assert list(got[1]) == [0.0, 1.0, 1.0]  # 0 < 0 is false: the second class


@pytest.mark.parametrize("scores", sorted(SCORES))
def test_vote_ovr_confidence_is_scikit_learns_formula(scores):
    from sklearn.utils.multiclass import _ovr_decision_function

    rng = np.random.default_rng(3)
    nc = 4
    pairs = [(i, j) for i in range(nc) for j in range(i + 1, nc)]
    D = rng.normal(size=(300, len(pairs)))
    first = np.array([j for i, j in pairs])
    second = np.array([i for i, j in pairs])
    got = _run_vote(D, first, second, np.zeros(len(pairs)), nc, "lt", "lowest", scores)
    want = _ovr_decision_function(D < 0, -D, nc)
    votes = np.floor(want + 0.5)
    if scores == "ovr_confidence":
        np.testing.assert_array_equal(got[:, :nc], want)
    elif scores == "count":
        np.testing.assert_array_equal(got[:, :nc], votes)
    else:
        np.testing.assert_array_equal(got[:, :nc], votes / len(pairs))


# --- svm_probability -------------------------------------------------------------------------
from scorer.kernels.svm import (  # noqa: E402
    MIN_PROB,
    svm_probability_kernel,
    svm_probability_reference,
)


def _run_prob(D, first, second, a, b, nc, min_prob=MIN_PROB, fn=svm_probability_kernel):
    n, m = D.shape
    ws = np.zeros((n, m + nc))
    ws[:, :m] = D
    assert fn(ws, np.arange(m), np.arange(m, m + nc), first, second, a, b, min_prob) == -1
    return ws[:, m:]


def _naive_prob(D, first, second, a, b, nc, min_prob=MIN_PROB):
    """libsvm's svm_predict_probability transcribed line by line in Python floats."""
    out = np.zeros((D.shape[0], nc))
    for i, row in enumerate(D):
        r = [[0.0] * nc for _ in range(nc)]
        for m, x in enumerate(row):
            f = x * a[m] + b[m]
            s = (math.exp(-f) / (1.0 + math.exp(-f)) if f >= 0
                 else 1.0 / (1 + math.exp(f)))
            s = min(max(s, min_prob), 1 - min_prob)
            r[first[m]][second[m]] = s
            r[second[m]][first[m]] = 1 - s
        k = nc
        p = [1.0 / k] * k
        Q = [[0.0] * k for _ in range(k)]
        for t in range(k):
            for j in range(t):
                Q[t][t] += r[j][t] * r[j][t]
                Q[t][j] = Q[j][t]
            for j in range(t + 1, k):
                Q[t][t] += r[j][t] * r[j][t]
                Q[t][j] = -r[j][t] * r[t][j]
        Qp = [0.0] * k
        for _ in range(max(100, k)):
            pQp = 0.0
            for t in range(k):
                Qp[t] = 0.0
                for j in range(k):
                    Qp[t] += Q[t][j] * p[j]
                pQp += p[t] * Qp[t]
            if max(abs(Qp[t] - pQp) for t in range(k)) < 0.005 / k:
                break
            for t in range(k):
                diff = (-Qp[t] + pQp) / Q[t][t]
                p[t] += diff
                pQp = (pQp + diff * (diff * Q[t][t] + 2 * Qp[t])) / (1 + diff) / (1 + diff)
                for j in range(k):
                    Qp[j] = (Qp[j] + diff * Q[t][j]) / (1 + diff)
                    p[j] /= 1 + diff
        out[i] = p
    return out


def _pairs(nc: int, flip: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(i, j) for i in range(nc) for j in range(i + 1, nc)]
    pairs = [(j, i) if f else (i, j) for (i, j), f in zip(pairs, flip, strict=False)]
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 12), nc=st.integers(2, 7), data=st.data())
def test_svm_probability_matches_reference_and_libsvm_transcription(n, nc, data):
    m = nc * (nc - 1) // 2
    first, second = _pairs(nc, data.draw(st.lists(st.booleans(), min_size=m, max_size=m)))
    # decisions from saturating (|f| up to ~1e3: exp overflows one branch) to exactly 0
    D = data.draw(arrays(np.float64, (n, m), elements=st.one_of(
        st.floats(-50, 50, allow_nan=False), st.sampled_from([0.0, -0.0, 1e-300, 700.0]))))
    a = data.draw(arrays(np.float64, (m,), elements=st.floats(-20, 20, allow_nan=False)))
    b = data.draw(arrays(np.float64, (m,), elements=st.floats(-5, 5, allow_nan=False)))
    args = (D, first, second, a, b, nc)
    got = _run_prob(*args)
    np.testing.assert_array_equal(got, _run_prob(*args, fn=svm_probability_reference))
    np.testing.assert_array_equal(got, _naive_prob(*args))
    assert np.all(np.isfinite(got))


def test_svm_probability_nan_decision_gives_nan_row_and_clips():
    first, second = _pairs(3, [False] * 3)
    a, b = np.array([-1.0, -2.0, 1.0]), np.zeros(3)
    D = np.array([[np.nan, 0.0, 1.0], [1e3, -1e3, 1e3], [0.0, 0.0, 0.0]])
    for fn in (svm_probability_kernel, svm_probability_reference):
        out = _run_prob(D, first, second, a, b, 3, fn=fn)
        assert np.isnan(out[0]).all() and np.isfinite(out[1:]).all()
        np.testing.assert_array_equal(out[2], [1 / 3, 1 / 3, 1 / 3])  # p = 1/k converged
    # two classes: the coupling of the clipped sigmoid (libsvm iterates for k = 2 as well)
    out = _run_prob(np.array([[-1e3], [1e3]]), np.array([0]), np.array([1]), np.array([-1.0]),
                    np.array([0.0]), 2)
    np.testing.assert_array_equal(out, _naive_prob(np.array([[-1e3], [1e3]]), [0], [1],
                                                   [-1.0], [0.0], 2))
    assert out[0, 0] < 1e-6 and out[1, 0] > 1 - 1e-6


@pytest.mark.parametrize(("first", "second", "nc", "match"), [
    ([0, 0], [1, 2], 3, "every two"),          # a pair missing
    ([0, 1, 0], [1, 0, 2], 3, "every two"),    # a pair twice, in both orders
    ([0, 1, 2], [1, 2, 2], 3, "every two"),    # a class against itself
    ([0, 0, 1], [1, 3, 2], 3, "out of range"),
])
def test_svm_probability_binder_refuses_bad_pairings(first, second, nc, match):
    from scorer.ir import Step
    from scorer.ops import get_op

    step = Step(op="svm_probability", op_version=1, name="p",
                inputs=[f"d{m}" for m in range(len(first))],
                outputs=[f"p{c}" for c in range(nc)], params={},
                tables={"machines": {"first": np.array(first), "second": np.array(second),
                                     "a": np.ones(len(first)), "b": np.zeros(len(first))}})

    class Ctx:
        def cols(self, names, step=None):
            return np.arange(len(names), dtype=np.int64)

    with pytest.raises(ValueError, match=match):
        get_op("svm_probability", 1).bind(step, Ctx())
