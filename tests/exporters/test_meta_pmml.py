"""PCA and VotingClassifier through sklearn2pmml -> tablescore's PMML reader (#20). Needs
Java, which CI has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import scorer
from exporters import to_pmml
from tests.datasets import sklearn_dataset


def _score(est, tmp_path, name):
    X, y = sklearn_dataset("iris")
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    est.fit(df, y)
    path = to_pmml(est, tmp_path / f"{name}.pmml", sample=df, target_name="y")
    model = scorer.load(path)
    return est, df, model.score_arrays(df)


def _max_diff(est, df, got) -> float:
    want = est.predict_proba(df)
    return max(float(np.abs(got[f"probability({c})"] - want[:, j]).max())
               for j, c in enumerate(est.classes_))


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(PCA(2), LogisticRegression(max_iter=1000)),
    lambda: make_pipeline(PCA(3, whiten=True), LogisticRegression(max_iter=1000)),
    lambda: VotingClassifier([("a", LogisticRegression(max_iter=1000)),
                              ("b", LogisticRegression(C=0.1, max_iter=1000))],
                             voting="soft", weights=[1, 3]),
])
def test_pmml_probabilities_match(make, tmp_path):
    est, df, got = _score(make(), tmp_path, "m")
    np.testing.assert_array_equal(got["y"], est.predict(df))
    assert _max_diff(est, df, got) <= 1e-12


def _regression_score(est, tmp_path, name):
    X, y = sklearn_dataset("diabetes")
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    est.fit(df, y)
    model = scorer.load(to_pmml(est, tmp_path / f"{name}.pmml", sample=df, target_name="y"))
    return est, df, model.score_arrays(df)


def _tree():
    return DecisionTreeClassifier(max_depth=3, random_state=0)


@pytest.mark.parametrize("make", [
    lambda: VotingClassifier([("lr", LogisticRegression(max_iter=1000)), ("dt", _tree())],
                             voting="soft"),
    lambda: VotingClassifier([("lr", make_pipeline(StandardScaler(),
                                                   LogisticRegression(max_iter=1000))),
                              # a tree inside a pipeline reading the raw inputs
                              ("dt", make_pipeline(SelectKBest(k=3), _tree()))],
                             voting="soft", weights=[2, 1]),
    lambda: StackingClassifier([("lr", LogisticRegression(max_iter=1000)), ("dt", _tree())],
                               final_estimator=LogisticRegression(max_iter=1000), cv=3),
    # the member's segment also exposes 'probability(0)' .. (the reader took those for the
    # final estimator's)
    lambda: StackingClassifier([("lr", make_pipeline(StandardScaler(),
                                                     LogisticRegression(max_iter=1000))),
                                ("dt", _tree())],
                               final_estimator=LogisticRegression(max_iter=1000), cv=3),
    lambda: StackingClassifier([("dt", _tree())], passthrough=True, cv=3,
                               final_estimator=LogisticRegression(max_iter=1000)),
    lambda: make_pipeline(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression(max_iter=1000)), ("dt", _tree())], voting="soft")),
])
def test_pmml_ensemble_with_tree_member_matches_float64(make, tmp_path):
    """A tree member must not narrow the inputs it shares with the other members to
    dataType="float" (sklearn2pmml's default input_float=True did: the DataFields became
    float and the logistic regression read float32-rounded inputs, ~7e-8 off); a stacker's
    probabilities are its final estimator's."""
    est, df, got = _score(make(), tmp_path, "m")
    np.testing.assert_array_equal(got["y"], est.predict(df))
    assert _max_diff(est, df, got) <= 1e-12
    text = (tmp_path / "m.pmml").read_text()
    assert 'name="x0" optype="continuous" dataType="double"' in text


@pytest.mark.parametrize("make", [
    lambda: VotingRegressor([("r", Ridge()), ("t", DecisionTreeRegressor(max_depth=4,
                                                                        random_state=0))]),
    lambda: StackingRegressor([("r", Ridge()), ("t", DecisionTreeRegressor(max_depth=4,
                                                                          random_state=0))],
                              final_estimator=Ridge(), cv=3),
])
def test_pmml_regression_ensemble_with_tree_member_matches_float64(make, tmp_path):
    est, df, got = _regression_score(make(), tmp_path, "r")
    np.testing.assert_allclose(got["y"], est.predict(df), rtol=1e-12, atol=1e-12)


def test_to_pmml_leaves_the_estimator_untouched(tmp_path):
    est, _, _ = _score(VotingClassifier([("lr", LogisticRegression(max_iter=1000)),
                                         ("dt", _tree())]), tmp_path, "v")
    assert not hasattr(est, "pmml_options_")
    assert not any(hasattr(m, "pmml_options_") for m in est.estimators_)


def test_pmml_hard_voting_with_tree_labels(tmp_path):
    """Hard voting has no probabilities in scikit-learn: labels only."""
    est, df, got = _score(VotingClassifier([("lr", LogisticRegression(max_iter=1000)),
                                            ("dt", _tree())], voting="hard"), tmp_path, "h")
    np.testing.assert_array_equal(got["y"], est.predict(df))
