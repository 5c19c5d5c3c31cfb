"""Kernels of family ``naive_bayes``: Numba == NumPy reference, and both == the op's formulas
written out independently here (per row, plain Python)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.ir import Step
from scorer.kernels.naive_bayes import (
    DENSITY,
    KINDS,
    MISSING,
    NORMALIZE,
    bind_naive_bayes,
    naive_bayes_kernel,
    naive_bayes_parallel,
)
from scorer.ops import BindContext


def make_step(kinds, k, rng, *, density="log", normalize="logsumexp", missing="skip",
              threshold=0.0, binarize=None, truncate=None, unknown=None, n_cats=4,
              dense=True, emit_jll=True):
    """A random ``naive_bayes`` step over inputs x0..x{n-1}, with its parameters."""
    n = len(kinds)
    inputs = {"kind": np.array([KINDS[c] for c in kinds], dtype=np.int8),
              "binarize": np.full(n, np.nan) if binarize is None else np.asarray(binarize),
              "truncate": np.zeros(n, bool) if truncate is None else np.asarray(truncate),
              "unknown": np.zeros(n, np.int8) if unknown is None else np.asarray(unknown,
                                                                                   np.int8)}
    mean = rng.normal(scale=2.0, size=(n, k))
    variance = rng.uniform(0.05, 3.0, size=(n, k))
    for f, c in enumerate(kinds):
        if c == "poisson":
            mean[f] = rng.uniform(0.0, 6.0, size=k)
            mean[f, 0] = 0.0 if k > 1 else mean[f, 0]  # a zero rate: ln 0 = -inf
    weight = rng.normal(size=(n, k))
    for j in range(k):
        inputs[f"mean_{j}"] = mean[:, j].copy()
        inputs[f"variance_{j}"] = variance[:, j].copy()
        inputs[f"weight_{j}"] = weight[:, j].copy()
    tables = {"classes": {"log_prior": np.log(rng.dirichlet(np.ones(k)))}, "inputs": inputs}
    cats = [(f, c) for f, kind in enumerate(kinds) if kind == "categorical"
            for c in range(n_cats)]
    if cats:
        rows = cats[::-1]  # grouped by input in any order: the binder sorts them
        vals = [float(c) if dense else float(c) * 1.5 - 1.0 for _, c in rows]
        lp = np.log(rng.dirichlet(np.ones(n_cats), size=k))  # (k, n_cats)
        lp[0, 0] = -np.inf  # a zero probability
        tables["categories"] = {"input": np.array([f for f, _ in rows], np.int32),
                                "value": np.array(vals),
                                **{f"log_p_{j}": np.array([lp[j, c] for _, c in rows])
                                   for j in range(k)}}
    outs = [f"p{j}" for j in range(k)] + ([f"l{j}" for j in range(k)] if emit_jll else [])
    step = Step("naive_bayes", 1, "nb", [f"x{f}" for f in range(n)], outs,
                params={"n_classes": k, "density": density, "normalize": normalize,
                        "missing": missing, "threshold": threshold}, tables=tables)
    return step


def bind(step):
    names = step.inputs + step.outputs
    return bind_naive_bayes(step, BindContext({c: i for i, c in enumerate(names)}))


def run_all(step, X):
    """(numba, reference, parallel) workspaces and statuses."""
    b = bind(step)
    n_in = len(step.inputs)
    out = []
    for fn in (b.kernel, b.reference, b.parallel):
        ws = np.zeros((len(X), n_in + len(step.outputs)))
        ws[:, :n_in] = X
        with np.errstate(all="ignore"):
            status = fn(ws, *b.args)
        out.append((ws[:, n_in:], status))
    return out


def by_hand(step, x):
    """The op's normative formulas for one row, in plain Python (no shared code)."""
    p = step.params
    k = p["n_classes"]
    inp, cl = step.tables["inputs"], step.tables["classes"]
    acc = [0.0] * k
    for f, xf in enumerate(x):
        if math.isnan(xf):
            if p["missing"] == "error":
                return None
            continue
        if not math.isnan(inp["binarize"][f]):
            xf = 1.0 if xf > inp["binarize"][f] else 0.0
        if inp["truncate"][f]:
            xf = float(math.trunc(xf))
        kind = int(inp["kind"][f])
        if kind == 3:
            ct = step.tables["categories"]
            rows = [r for r in range(len(ct["input"])) if ct["input"][r] == f
                    and ct["value"][r] == xf]
            if not rows:
                if inp["unknown"][f]:
                    return None
                continue
            for j in range(k):
                acc[j] += ct[f"log_p_{j}"][rows[0]]
            continue
        for j in range(k):
            m, v = inp[f"mean_{j}"][f], inp[f"variance_{j}"][f]
            if kind == 2:
                lf = xf * inp[f"weight_{j}"][f]
            elif kind == 0 and p["density"] == "log":
                lf = -0.5 * math.log(2 * math.pi * v) - 0.5 * ((xf - m) ** 2 / v)
            else:
                if kind == 0:
                    z = (xf - m) / math.sqrt(v)
                    pr = math.exp(-0.5 * z * z - (math.log(math.sqrt(v))
                                                  + 0.5 * math.log(2 * math.pi)))
                    lp = None
                else:
                    n = math.trunc(xf) if math.isfinite(xf) else xf
                    lp = (-math.inf if n < 0 else -m if n == 0 else
                          n * (math.log(m) if m > 0 else -math.inf) - m - math.lgamma(n + 1))
                    pr = math.exp(lp)
                if kind == 1 and p["density"] == "log":
                    lf = lp
                else:
                    pr = max(pr, p["threshold"])
                    lf = math.log(pr) if pr > 0 else (-math.inf if pr == 0 else math.nan)
            acc[j] += lf
    jll = [acc[j] + cl["log_prior"][j] for j in range(k)]
    if any(math.isnan(v) for v in jll):
        return [math.nan] * k, jll
    mx = max(jll)
    if p["normalize"] == "softmax":
        e = [math.exp(v - mx) if not (v == mx == -math.inf) else math.nan for v in jll]
        s = sum(e)
        return [v / s for v in e], jll
    h = mx if math.isfinite(mx) else 0.0
    c = sum(1 for v in jll if v == mx)
    s = sum(math.exp(v - h) for v in jll if v != mx)
    s = s / c if s != 0 else s
    lse = (math.log1p(s) + math.log(c)) + mx
    return [math.exp(v - lse) if not (v == lse == -math.inf) else math.nan for v in jll], jll


def check(step, X, *, rtol=1e-13):
    (nb, s1), (ref, s2), (par, s3) = run_all(step, X)
    k = step.params["n_classes"]
    assert s1 == s2 == s3
    np.testing.assert_array_equal(nb, par)  # same code, other threads
    np.testing.assert_allclose(ref, nb, rtol=rtol, atol=1e-300, equal_nan=True)
    first_bad = -1
    for i, x in enumerate(X):
        with np.errstate(all="ignore"):  # inf - inf and friends, as in the kernels
            want = by_hand(step, x)
        if want is None:
            first_bad = i if first_bad < 0 else first_bad
            assert np.isnan(nb[i]).all()
            continue
        probs, jll = want
        np.testing.assert_allclose(nb[i, :k], probs, rtol=rtol, atol=1e-300, equal_nan=True)
        np.testing.assert_allclose(nb[i, k:], jll, rtol=1e-13, atol=1e-12, equal_nan=True)
    assert s1 == first_bad
    return nb


KIND_NAMES = sorted(KINDS)
value = st.one_of(st.floats(-8, 8, allow_nan=False), st.integers(-1, 5).map(float),
                  st.just(math.nan))


@settings(max_examples=80, deadline=None)
@given(kinds=st.lists(st.sampled_from(KIND_NAMES), min_size=1, max_size=5),
       k=st.integers(1, 4), seed=st.integers(0, 2**31), density=st.sampled_from(sorted(DENSITY)),
       normalize=st.sampled_from(sorted(NORMALIZE)), missing=st.sampled_from(sorted(MISSING)),
       threshold=st.sampled_from([0.0, 1e-3, 0.5]), dense=st.booleans(), data=st.data())
def test_kernel_matches_reference_and_formulas(kinds, k, seed, density, normalize, missing,
                                               threshold, dense, data):
    rng = np.random.default_rng(seed)
    n = len(kinds)
    binarize = [data.draw(st.sampled_from([math.nan, 0.0, 1.5])) if c == "linear" else math.nan
                for c in kinds]
    truncate = [data.draw(st.booleans()) if c == "categorical" else False for c in kinds]
    unknown = [data.draw(st.booleans()) for _ in kinds]
    step = make_step(kinds, k, rng, density=density, normalize=normalize, missing=missing,
                     threshold=threshold, binarize=binarize, truncate=truncate,
                     unknown=unknown, dense=dense)
    rows = data.draw(st.integers(1, 12))
    X = np.array(data.draw(st.lists(st.lists(value, min_size=n, max_size=n), min_size=rows,
                                    max_size=rows)), dtype=np.float64)
    check(step, X)


def test_parallel_blocks_report_the_first_refused_row():
    rng = np.random.default_rng(3)
    step = make_step(["gaussian", "categorical"], 3, rng, missing="error",
                     unknown=[0, 1])
    X = np.column_stack([rng.normal(size=9000), rng.integers(0, 4, 9000).astype(float)])
    X[7000, 1] = 9.0  # unknown category: refused
    X[5000, 0] = np.nan  # missing: refused, and first
    nb = check(step, X)
    assert np.isfinite(nb[:5000, :3]).all() and np.isnan(nb[5000]).all()
    b = bind(step)
    ws = np.zeros((len(X), 2 + 6))
    ws[:, :2] = X
    err = b.error(ws, naive_bayes_parallel(ws, *b.args))
    assert "row 5000" in str(err) and "x0" in str(err) and "missing" in str(err)
    X[5000, 0] = 0.0
    ws[:, :2] = X
    err = b.error(ws, naive_bayes_kernel(ws, *b.args))
    assert "row 7000" in str(err) and "9.0" in str(err)


def test_edge_values():
    rng = np.random.default_rng(5)
    step = make_step(["gaussian", "linear", "poisson"], 3, rng, density="probability",
                     normalize="softmax")
    X = np.array([[0.0, 0.0, 0.0], [1e300, 1.0, 2.0], [-np.inf, 0.0, 1.0],
                  [np.inf, np.inf, 3.0], [np.nan, np.nan, np.nan], [0.0, -1e308, 7.9],
                  [3.0, 2.0, np.inf]])
    nb = check(step, X)
    # every input missing: the priors alone
    prior = np.exp(step.tables["classes"]["log_prior"])
    np.testing.assert_allclose(nb[4, :3], prior / prior.sum(), rtol=1e-14)
    # x = 1e300: every class's density underflows to 0 (threshold 0): ln 0 = -inf for all
    # classes, and the normalisation -inf - (-inf) is undefined
    assert np.isneginf(nb[1, 3:]).all() and np.isnan(nb[1, :3]).all()


def test_threshold_floors_underflowed_densities():
    """density="probability": an underflowed density takes the threshold; "log" keeps the
    finite log density (the two answers differ)."""
    rng = np.random.default_rng(1)
    X = np.array([[40.0], [-35.0], [0.2]])
    for density in DENSITY:
        step = make_step(["gaussian"], 2, rng, density=density, threshold=1e-30)
        step.tables["inputs"]["mean_0"][:] = 0.0
        step.tables["inputs"]["mean_1"][:] = 1.0
        step.tables["inputs"]["variance_0"][:] = 1.0
        step.tables["inputs"]["variance_1"][:] = 1.0
        nb = check(step, X)
        jll = nb[:, 2:] - step.tables["classes"]["log_prior"]
        if density == "probability":  # exp(-800) underflows: both classes floored
            np.testing.assert_allclose(jll[:2], math.log(1e-30), rtol=1e-15)
        else:
            assert np.all(jll[:2] < -600) and jll[0, 0] != jll[0, 1]
        assert np.all(np.isfinite(jll[2]))


def test_log_and_probability_space_agree_away_from_underflow():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    a = make_step(["gaussian"] * 3, 3, np.random.default_rng(9), density="log")
    b = make_step(["gaussian"] * 3, 3, np.random.default_rng(9), density="probability")
    (pa, _), _, _ = run_all(a, X)
    (pb, _), _, _ = run_all(b, X)
    np.testing.assert_allclose(pa, pb, rtol=1e-12)
    c = make_step(["gaussian"] * 3, 3, np.random.default_rng(9), normalize="softmax")
    (pc, _), _, _ = run_all(c, X)
    np.testing.assert_allclose(pa[:, :3], pc[:, :3], rtol=1e-13)
    np.testing.assert_allclose(pa[:, :3].sum(axis=1), 1.0, rtol=1e-14)


def test_binder_refuses_malformed_tables():
    rng = np.random.default_rng(0)
    step = make_step(["gaussian"], 2, rng)
    step.tables["inputs"]["variance_1"][:] = 0.0
    with pytest.raises(ValueError, match="variances > 0"):
        bind(step)
    step = make_step(["categorical"], 2, rng)
    step.tables["categories"]["value"][1] = step.tables["categories"]["value"][0]
    with pytest.raises(ValueError, match="repeats"):
        bind(step)
    step = make_step(["linear"], 2, rng)
    step.params["normalize"] = "simplemax"
    with pytest.raises(ValueError, match="normalize"):
        bind(step)
    step = make_step(["linear"], 2, rng, emit_jll=False)
    step.outputs = step.outputs[:1]
    with pytest.raises(ValueError, match="outputs"):
        bind(step)
