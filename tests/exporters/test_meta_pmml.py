"""PCA and VotingClassifier through sklearn2pmml -> tablescore's PMML reader (#20). Needs
Java, which CI has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

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


def test_pmml_voting_with_tree_and_hard_voting_labels(tmp_path):
    """With a tree member the document's probabilities differ from scikit-learn's by ~7e-8
    (sklearn2pmml's tree scores, not the voting): labels only. Hard voting has no
    probabilities in scikit-learn."""
    members = [("lr", LogisticRegression(max_iter=1000)),
               ("dt", DecisionTreeClassifier(max_depth=3, random_state=0))]
    for voting in ("soft", "hard"):
        est, df, got = _score(VotingClassifier(members, voting=voting), tmp_path, voting)
        np.testing.assert_array_equal(got["y"], est.predict(df))
