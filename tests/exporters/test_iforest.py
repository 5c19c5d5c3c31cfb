"""IsolationForest: score_samples / decision_function / predict == scikit-learn; the depth sum
bit for bit, the score to libm's pow (NumPy's SIMD pow differs in the last ulp)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

import exporters
import scorer
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _depths(est: IsolationForest, X: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_compute_score_samples`` depth sum, replayed (float32 input)."""
    X = np.asarray(X, dtype=np.float32)
    depths = np.zeros(X.shape[0])
    subsample = est._max_features != X.shape[1]
    for t, (tree, feats) in enumerate(zip(est.estimators_, est.estimators_features_,
                                          strict=True)):
        leaves = tree.apply(X[:, feats] if subsample else X, check_input=False)
        depths += (est._decision_path_lengths[t][leaves]
                   + est._average_path_length_per_tree[t][leaves] - 1.0)
    return depths


def _check(est: IsolationForest, X: np.ndarray, tmp_path) -> None:
    model = assert_parity(est, X, tmp_path / "m")
    got = model.score_arrays(X)
    want = est.score_samples(X)
    den = len(est.estimators_) * _average_path_length([est._max_samples])[0]
    libm = np.array([-math.pow(2.0, -(d / den)) if den else -0.5
                     for d in _depths(est, X)])
    # everything but pow is scikit-learn's operations: equal to the replay with libm's pow
    np.testing.assert_array_equal(got["score_samples"], libm)
    np.testing.assert_allclose(got["score_samples"], want, rtol=2.3e-16, atol=0)
    np.testing.assert_allclose(got["decision"], est.decision_function(X), rtol=0,
                               atol=2.3e-16)
    np.testing.assert_array_equal(np.asarray(got["label"]).astype(int), est.predict(X))
    np.testing.assert_array_equal(model.predict(X).astype(int), est.predict(X))


@pytest.mark.parametrize("kw", [{}, {"max_features": 0.5, "contamination": 0.1},
                                {"max_samples": 1.0, "n_estimators": 30, "bootstrap": True},
                                {"max_samples": 1, "n_estimators": 5}])
def test_breast_cancer(kw, tmp_path):
    X, _ = sklearn_dataset("breast_cancer")
    _check(IsolationForest(random_state=0, **kw).fit(X), X, tmp_path)


@pytest.mark.parametrize("kw", [{}, {"max_features": 3, "contamination": 0.05}])
def test_missing_and_hostile_values(kw, tmp_path):
    # NaN (missing_go_to_left), +-inf, 1e+-300 (overflow float32 to inf), integer ties
    X = synthetic(600, 8, seed=1, nan=True, inf=True)
    est = IsolationForest(n_estimators=40, random_state=0, **kw).fit(X)
    with np.errstate(over="ignore"):
        _check(est, X, tmp_path)


def test_single_row_scoring_and_feature_names(tmp_path):
    import pandas as pd

    X, _ = sklearn_dataset("wine")
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    est = IsolationForest(n_estimators=20, random_state=0).fit(frame)
    exporters.export(est, tmp_path / "m", sample=frame)
    model = scorer.load(tmp_path / "m")
    one = model.score_arrays(frame.iloc[3].to_dict())
    assert one["label"][0] == est.predict(frame.iloc[3:4])[0]
    np.testing.assert_allclose(one["score_samples"], est.score_samples(frame.iloc[3:4]),
                               rtol=2.3e-16)


def test_leaf_values_without_the_cached_attributes(tmp_path):
    """A model pickled before scikit-learn cached the per-tree path lengths: the exporter
    computes them as fit does, with the same result."""
    from exporters.iforest import _leaf_values

    X, _ = sklearn_dataset("iris")
    est = IsolationForest(n_estimators=5, random_state=0).fit(X)
    cached = [_leaf_values(est, t) for t in range(5)]
    del est._decision_path_lengths, est._average_path_length_per_tree
    for t in range(5):
        np.testing.assert_array_equal(_leaf_values(est, t), cached[t])
