"""Verification rows are chosen to cover the model: an edited leaf that the sample reaches is
caught by the default load-time check, and the coverage is recorded."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import exporters
from scorer.errors import VerificationError
from scorer.model import Model


def _forest() -> tuple[RandomForestRegressor, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    y = X[:, 0] + np.sin(3 * X[:, 1]) + 0.1 * rng.normal(size=3000)
    est = RandomForestRegressor(n_estimators=8, max_leaf_nodes=24, random_state=0,
                                n_jobs=1).fit(X, y)
    return est, X


def _edited(bundle, node: int):
    """The bundle with one leaf's value changed (as if its tables were edited and the hashes
    recomputed: the in-memory bundle has no hashes to check)."""
    b = copy.deepcopy(bundle)
    step = next(s for s in b.steps if s.op == "tree_ensemble")
    values = np.array(step.tables["nodes"]["value_0"], dtype=np.float64)
    values[node] += 0.5
    step.tables["nodes"]["value_0"] = values
    return b


def test_every_leaf_the_sample_reaches_is_verified() -> None:
    est, X = _forest()
    bundle = exporters.build_bundle(est, sample=X)
    cov = bundle.verification.coverage
    assert "verification_coverage" not in bundle.producer
    n_rows = len(next(iter(bundle.verification.inputs.values())))
    assert cov["method"] == "leaves" and cov["rows"] == n_rows <= 256
    # every leaf the 3000 rows reach is covered by at most 256 rows
    assert cov["leaves_covered"] == cov["leaves_reached"] == cov["leaves_total"]
    assert cov["share"] == 1.0
    step = next(s for s in bundle.steps if s.op == "tree_ensemble")
    leaves = np.flatnonzero(np.asarray(step.tables["nodes"]["left"]) < 0)
    base = Model(bundle, verify=True).predict(X)
    missed = []
    for node in leaves:
        edited = _edited(bundle, int(node))
        if np.array_equal(Model(edited, verify=False).predict(X), base):
            continue  # no sample row reaches this leaf
        try:
            Model(edited, verify=True)
        except VerificationError:
            continue
        missed.append(int(node))
    assert not missed, f"edited leaves {missed} pass the default verification"


def test_first_rows_alone_miss_edited_leaves() -> None:
    """The situation before: the first 64 rows leave leaves the sample reaches unverified."""
    est, X = _forest()
    bundle = exporters.build_bundle(est, sample=X)
    leaf_rows = est.apply(X)
    first = {(t, leaf) for t in range(leaf_rows.shape[1]) for leaf in leaf_rows[:64, t]}
    reached = {(t, leaf) for t in range(leaf_rows.shape[1]) for leaf in leaf_rows[:, t]}
    assert len(first) < len(reached)  # the old default could not catch every edit
    chosen = exporters.choose_verification_rows(est, X, bundle)[0]
    covered = {(t, leaf) for t in range(leaf_rows.shape[1]) for leaf in leaf_rows[chosen, t]}
    assert covered == reached


def test_other_families_span_ranges_and_categories() -> None:
    import pandas as pd

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    X.loc[400, "a"] = 9.0   # the extremes sit beyond the first rows
    X.loc[450, "b"] = -9.0
    y = (X["a"] > 0).astype(int)
    est = LogisticRegression().fit(X, y)
    bundle = exporters.build_bundle(est, sample=X)
    cov = bundle.verification.coverage
    assert "verification_coverage" not in bundle.producer
    assert cov["method"] == "span" and cov["rows"] == 64
    va = bundle.verification.inputs
    assert va["a"].max() == 9.0 and va["b"].min() == -9.0


@pytest.mark.parametrize("cap", [5, 64])
def test_row_count_is_bounded(cap: int) -> None:
    est, X = _forest()
    bundle = exporters.build_bundle(est, sample=X, verification_rows=cap)
    assert len(next(iter(bundle.verification.inputs.values()))) <= cap


def test_a_float32_sample_is_scored_by_the_original_as_float64(tmp_path):
    # scikit-learn computes in float32 for float32 inputs (~1e-7 relative from the float64
    # the bundle computes): the verification rows hold the float64 answers, and a model
    # fitted on float32 data exports (it was a VerificationError)
    import pandas as pd
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import scorer

    rng = np.random.default_rng(15)
    X32 = (rng.normal(size=(200, 4)) * [1, 10, 100, 1000] + [0, 5, -50, 1e4]).astype(np.float32)
    est = make_pipeline(StandardScaler(), Ridge()).fit(X32, X32[:, 0] * 2 + X32[:, 1])
    X64 = X32.astype(np.float64)
    assert not np.array_equal(est.predict(X32), est.predict(X64))  # the two computations
    for k, sample in enumerate((X32[:40], pd.DataFrame(X32[:40], columns=list("abcd")))):
        exporters.export(est, tmp_path / f"b{k}", sample=sample)
        np.testing.assert_allclose(scorer.load(tmp_path / f"b{k}").predict(X64),
                                   est.predict(X64), rtol=1e-12, atol=1e-12)
