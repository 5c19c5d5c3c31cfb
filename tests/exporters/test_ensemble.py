"""Voting / Stacking / Bagging meta-estimators: original == kernel == reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import exporters
from scorer.errors import ExportError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _members():
    return [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))),
            ("dt", DecisionTreeClassifier(max_depth=3, random_state=0)),
            ("nb", GaussianNB())]


def _regressors():
    return [("r", make_pipeline(StandardScaler(), Ridge())),
            ("t", DecisionTreeRegressor(max_depth=4, random_state=0))]


def _check(est, X, tmp_path, *, proba: bool = True):
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    if proba:
        got = model.score_arrays(X)
        want = est.predict_proba(X)
        diff = max(np.abs(got[f"probability({c})"] - want[:, j]).max()
                   for j, c in enumerate(est.classes_))
        assert diff <= 1e-10, diff  # the members' own tolerances (GaussianNB's is 1e-10)
    return model


CLASSIFIERS = [
    lambda: VotingClassifier(_members(), voting="soft"),
    lambda: VotingClassifier(_members(), voting="soft", weights=[1, 2, 0.5]),
    lambda: VotingClassifier([*_members(), ("svc", make_pipeline(StandardScaler(),
                                                                  LinearSVC()))]),
    lambda: VotingClassifier(_members(), weights=[2, 1, 1]),
    lambda: StackingClassifier(_members(), final_estimator=LogisticRegression(max_iter=3000)),
    lambda: StackingClassifier([*_members(), ("svc", make_pipeline(StandardScaler(),
                                                                    LinearSVC()))],
                               passthrough=True, cv=3,
                               final_estimator=make_pipeline(StandardScaler(),
                                                             LogisticRegression())),
    lambda: StackingClassifier(_members(), stack_method="predict", cv=3,
                               final_estimator=DecisionTreeClassifier(max_depth=3)),
    lambda: BaggingClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=6,
                              max_features=0.6, bootstrap_features=True, random_state=0),
    lambda: BaggingClassifier(make_pipeline(StandardScaler(), LinearSVC()), n_estimators=4,
                              max_features=0.5, random_state=0, n_jobs=2),
]


@pytest.mark.parametrize("ds", ["iris", "breast_cancer"])
def test_bagging_decision_function_is_the_members_average(ds, tmp_path):
    X, y = sklearn_dataset(ds)
    est = BaggingClassifier(make_pipeline(StandardScaler(), LogisticRegression()),
                            n_estimators=5, max_features=0.7, random_state=0,
                            n_jobs=2).fit(X, y)
    model = _check(est, X, tmp_path)
    got, want = model.decision_function(X), est.decision_function(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", CLASSIFIERS)
@pytest.mark.parametrize("ds", ["iris", "breast_cancer"])
def test_classifier_parity(make, ds, tmp_path):
    X, y = sklearn_dataset(ds)
    y = np.array(["no", "yes", "maybe"])[y]  # string labels: members see encoded ones
    est = make().fit(X, y)
    _check(est, X, tmp_path, proba=hasattr(est, "predict_proba"))


def test_hard_vote_ties_take_the_smallest_class_index(tmp_path):
    """Three members that disagree on every row: bincount ties 1-1-1, argmax takes class 0
    of the encoded labels; with weights the heavier member wins."""
    X = np.arange(30, dtype=float).reshape(-1, 1)
    y = np.repeat([0, 1, 2], 10)
    members = [(f"m{i}", LogisticRegression()) for i in range(3)]
    est = VotingClassifier(members).fit(X, y)
    for i, m in enumerate(est.estimators_):  # rig member i to predict class i everywhere
        m.coef_[:] = 0.0
        m.intercept_[:] = np.eye(3)[i] * 5.0
    model = assert_parity(est, X, tmp_path / "a")
    assert set(est.predict(X)) == {0}
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    est.weights = [1, 1.5, 1]
    model = assert_parity(est, X, tmp_path / "b")
    assert set(est.predict(X)) == {1}
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


REGRESSORS = [
    lambda: VotingRegressor(_regressors()),
    lambda: VotingRegressor(_regressors(), weights=[0.3, 0.7]),
    lambda: StackingRegressor(_regressors(), final_estimator=Ridge(), passthrough=True),
    lambda: BaggingRegressor(Ridge(), n_estimators=5, max_features=0.5, random_state=0),
    lambda: BaggingRegressor(DecisionTreeRegressor(max_depth=4), n_estimators=7,
                             bootstrap_features=True, random_state=0, n_jobs=3),
]


@pytest.mark.parametrize("make", REGRESSORS)
@pytest.mark.parametrize("ds", ["diabetes", "missing"])
def test_regressor_parity(make, ds, tmp_path):
    if ds == "missing":
        X = synthetic(300, 6, seed=5, nan=True)
        X[:, 2] /= 1e6
        X[:, 3] = np.clip(X[:, 3], -5, 5)
        y = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 4])
        est = make_pipeline(SimpleImputer(), make()).fit(X, y)
    else:
        X, y = sklearn_dataset(ds)
        est = make().fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)


def test_classifier_on_missing_values_behind_imputer(tmp_path):
    X = synthetic(300, 6, seed=6, nan=True)
    X[:, 2] /= 1e6
    X[:, 3] = np.clip(X[:, 3], -5, 5)
    y = (np.nan_to_num(X[:, 0]) > 2).astype(int)
    est = make_pipeline(SimpleImputer(), VotingClassifier(_members(), voting="soft")).fit(X, y)
    _check(est, X, tmp_path)


def test_svc_probability_members_stack(tmp_path):
    # SVC(probability=True) exports predict_proba (op svm_probability): a stack over it too
    from sklearn.svm import SVC

    X, y = sklearn_dataset("iris")
    est = StackingClassifier([("svc", SVC(probability=True, random_state=0))],
                             stack_method="predict_proba",
                             final_estimator=LogisticRegression()).fit(X, y)
    assert_parity(est, X, tmp_path / "b")


def test_member_without_exported_method_is_refused_by_name():
    X, y = sklearn_dataset("iris")
    # LinearSVC has decision_function only: a stack asking for predict_proba cannot be fitted,
    # but a Voting ensemble's soft vote needs predict_proba of every member
    est = StackingClassifier([("svc", LinearSVC())], stack_method="decision_function",
                             final_estimator=LogisticRegression()).fit(X, y)
    est.stack_method_ = ["predict_proba"]  # as a hand-edited or future estimator might say
    with pytest.raises(ExportError, match="member LinearSVC exports no predict_proba"):
        exporters.build_bundle(est, sample=X)


def test_supported_lists_the_new_estimators():
    names = set(exporters.supported())
    for n in ("SelectKBest", "SelectPercentile", "SelectFromModel", "VarianceThreshold", "RFE",
              "FeatureUnion", "PCA", "TruncatedSVD", "Normalizer", "Binarizer",
              "PolynomialFeatures", "VotingClassifier", "VotingRegressor",
              "StackingClassifier", "StackingRegressor", "BaggingClassifier",
              "BaggingRegressor", "CalibratedClassifierCV"):
        assert f"sklearn.{n}" in names, n
