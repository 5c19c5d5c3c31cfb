"""AdaBoostClassifier (SAMME) / AdaBoostRegressor (weighted median): original == kernel ==
reference; decisions and medians bit for bit, probabilities to libm's exp."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor
from sklearn.impute import SimpleImputer
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

import exporters
import scorer
from scorer.errors import InputError, UnsupportedEstimatorError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _decision(model: scorer.Model, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    got = model.score_arrays(X)
    if len(classes) == 2:
        return got["decision"]
    return np.column_stack([got[f"decision({c})"] for c in classes])


def _missing(seed: int) -> np.ndarray:
    """Synthetic rows with NaN cells, without the +-1e300 that float32 trees refuse."""
    X = synthetic(400, 6, seed=seed, nan=True)
    X[np.abs(X) > 1e30] = 0.0
    return X


def _check_classifier(est, X, tmp_path, *, exact: bool = True) -> scorer.Model:
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    want = est.decision_function(X)
    if exact:  # the SAMME sums and the division are scikit-learn's operations
        np.testing.assert_array_equal(_decision(model, X, est.classes_), want)
    got = model.score_arrays(X)
    proba = np.column_stack([got[f"probability({c})"] for c in est.classes_])
    # NumPy's SIMD exp and libm's exp differ in the last ulp on ~2% of arguments
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-15, atol=1e-16)
    return model


@pytest.mark.parametrize("ds", ["breast_cancer", "iris", "digits"])
def test_classifier_stumps(ds, tmp_path):
    X, y = sklearn_dataset(ds)
    est = AdaBoostClassifier(n_estimators=25, random_state=0).fit(X, y)
    _check_classifier(est, X, tmp_path)


def test_classifier_deeper_trees_learning_rate_string_labels(tmp_path):
    X, y = sklearn_dataset("wine")
    labels = np.array(["barolo", "grignolino", "barbera"])[y]
    est = AdaBoostClassifier(ExtraTreeClassifier(max_depth=3, random_state=0), n_estimators=30,
                             learning_rate=0.5, random_state=0).fit(X, labels)
    _check_classifier(est, X, tmp_path)


def test_classifier_non_tree_members(tmp_path):
    X, y = sklearn_dataset("iris")
    est = AdaBoostClassifier(LogisticRegression(max_iter=2000), n_estimators=6,
                             random_state=0).fit(X, y)
    _check_classifier(est, X, tmp_path)


def test_classifier_with_missing_values_imputed(tmp_path):
    X = _missing(5)
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 4]) > 2).astype(int)
    est = make_pipeline(SimpleImputer(), AdaBoostClassifier(
        DecisionTreeClassifier(max_depth=2), n_estimators=20, random_state=0)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    np.testing.assert_array_equal(model.score_arrays(X)["decision"],
                                  est.decision_function(X))


def test_nan_and_float32_overflow_refused_like_scikit_learn(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = AdaBoostClassifier(n_estimators=5, random_state=0).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    for bad in (np.nan, 1e300, np.inf):
        row = X[:1].copy()
        row[0, 3] = bad
        with pytest.raises(ValueError):
            est.predict(row)
        with pytest.raises(InputError):
            model.predict(row)


@pytest.mark.parametrize("ds", ["diabetes", "synthetic_nan"])
def test_regressor_trees_bit_exact(ds, tmp_path):
    if ds == "diabetes":
        X, y = sklearn_dataset(ds)
        est = AdaBoostRegressor(n_estimators=40, random_state=0).fit(X, y)
    else:  # missing values: AdaBoost refuses NaN, so a user imputes first
        X = _missing(2)
        y = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 5])
        est = make_pipeline(SimpleImputer(), AdaBoostRegressor(
            n_estimators=30, loss="square", random_state=0)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.score_arrays(X)["value"], est.predict(X))


def test_regressor_tied_predictions(tmp_path):
    # pure leaves on a 0/1 target: most rows see many members predict exactly 0 or 1, so
    # the weighted median falls inside runs of tied predictions
    X, y = sklearn_dataset("diabetes")
    yb = (y > 140).astype(float)
    est = AdaBoostRegressor(DecisionTreeRegressor(max_depth=12), n_estimators=40,
                            loss="exponential", random_state=0).fit(X, yb)
    preds = np.array([m.predict(X) for m in est.estimators_]).T
    assert np.mean([len(np.unique(r)) < preds.shape[1] for r in preds]) > 0.9
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.score_arrays(X)["value"], est.predict(X))


def test_regressor_non_tree_members(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = AdaBoostRegressor(Ridge(alpha=0.1), n_estimators=5, random_state=0).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    # the members' dot products are summed in another order than BLAS's (family linear)
    np.testing.assert_allclose(model.score_arrays(X)["value"], est.predict(X), rtol=1e-12)


def test_member_without_exporter_is_refused_by_name(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = AdaBoostRegressor(KernelRidge(), n_estimators=2, random_state=0).fit(X, y)
    with pytest.raises(UnsupportedEstimatorError, match=r"no exporter for sklearn\.KernelRidge"):
        exporters.export(est, tmp_path / "m", sample=X)
