"""CalibratedClassifierCV (sigmoid, isotonic; ensemble or not; FrozenEstimator)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

import exporters
from scorer.errors import ExportError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

BASES = [
    lambda: make_pipeline(StandardScaler(), LinearSVC()),  # decision_function
    lambda: DecisionTreeClassifier(max_depth=3, random_state=0),  # predict_proba
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
]


def _max_diff(model, est, X) -> float:
    got = model.score_arrays(X)
    want = est.predict_proba(X)
    return max(float(np.abs(got[f"probability({c})"] - want[:, j]).max())
               for j, c in enumerate(est.classes_))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_calibrated_parity(base, method, ensemble, ds, tmp_path):
    X, y = sklearn_dataset(ds)
    est = CalibratedClassifierCV(base(), method=method, cv=3, ensemble=ensemble).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    # measured <= 7e-13 (linear members' BLAS order through the calibration map)
    assert _max_diff(model, est, X) <= 1e-12


def test_frozen_prefit_and_gaussian_nb(tmp_path):
    X, y = sklearn_dataset("iris")
    fitted = make_pipeline(StandardScaler(), LinearSVC()).fit(X, y)
    est = CalibratedClassifierCV(FrozenEstimator(fitted), method="isotonic").fit(X, y)
    model = assert_parity(est, X, tmp_path / "a")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    est = CalibratedClassifierCV(GaussianNB(), method="isotonic", cv=3).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_missing_values_behind_imputer(tmp_path):
    X = synthetic(400, 6, seed=7, nan=True)
    X[:, 2] /= 1e6
    X[:, 3] = np.clip(X[:, 3], -5, 5)
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 4]) > 2).astype(int)
    est = make_pipeline(SimpleImputer(), StandardScaler(), CalibratedClassifierCV(
        LogisticRegression(), method="sigmoid", cv=3)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    assert _max_diff(model, est, X) <= 1e-12


def test_uniform_fallback_where_every_calibrator_says_zero(tmp_path):
    """Isotonic calibrators that are 0 over some region give a zero sum: scikit-learn then
    returns 1 / n_classes for every class."""
    X, y = sklearn_dataset("iris")
    est = CalibratedClassifierCV(DecisionTreeClassifier(max_depth=1, random_state=0),
                                 method="isotonic", cv=2, ensemble=False).fit(X, y)
    cc = est.calibrated_classifiers_[0]
    for cal in cc.calibrators:  # force every calibrated value to 0 below the threshold
        cal.y_thresholds_ = np.zeros_like(cal.y_thresholds_)
        cal._build_f(cal.X_thresholds_, cal.y_thresholds_)
    want = est.predict_proba(X)
    assert np.all(want == 1 / 3)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_temperature_is_refused_by_name():
    X, y = sklearn_dataset("iris")
    est = CalibratedClassifierCV(LogisticRegression(max_iter=1000), method="temperature",
                                 cv=2).fit(X, y)
    with pytest.raises(ExportError, match="method='temperature'"):
        exporters.build_bundle(est, sample=X)
