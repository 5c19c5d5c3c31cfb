"""AdaBoost and IsolationForest through sklearn2pmml -> tablescore's PMML reader (#20). Needs
Java, which CI has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor, IsolationForest

import scorer
from exporters import to_pmml
from exporters.outputs import expected_outputs
from scorer.errors import ExportError
from tests.datasets import sklearn_dataset


def _frame(ds: str) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = sklearn_dataset(ds)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]), y


def _load(est, df, tmp_path) -> scorer.Model:
    return scorer.load(to_pmml(est, tmp_path / "m.pmml", sample=df, target_name="y"))


def test_binary_adaboost_classifier(tmp_path):
    df, y = _frame("breast_cancer")
    est = AdaBoostClassifier(n_estimators=20, random_state=0).fit(df, y)
    got = _load(est, df, tmp_path).score_arrays(df)
    np.testing.assert_array_equal(got["y"], est.predict(df))
    proba = np.column_stack([got[f"probability({c})"] for c in est.classes_])
    np.testing.assert_allclose(proba, est.predict_proba(df), rtol=1e-12, atol=1e-12)


def test_adaboost_regressor(tmp_path):
    df, y = _frame("diabetes")
    est = AdaBoostRegressor(n_estimators=20, random_state=0).fit(df, y)
    assert len(est.estimators_) == 20  # sklearn2pmml refuses an early-stopped one
    got = _load(est, df, tmp_path).score_arrays(df)
    np.testing.assert_allclose(got["y"], est.predict(df), rtol=1e-12, atol=1e-12)


def test_isolation_forest(tmp_path):
    df, _ = _frame("breast_cancer")
    est = IsolationForest(n_estimators=20, random_state=0).fit(df)
    model = _load(est, df, tmp_path)
    got = model.score_arrays(df)
    want = expected_outputs(est, df, model.bundle.outputs)
    assert set(want) == {"decisionFunction", "outlier", "predict(outlier)"}
    np.testing.assert_allclose(got["decisionFunction"], est.decision_function(df),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(got["outlier"], dtype=bool),
                                  est.predict(df) == -1)
    np.testing.assert_array_equal(got["predict(outlier)"], est.predict(df))


def test_multiclass_adaboost_is_refused_by_sklearn2pmml(tmp_path):
    df, y = _frame("iris")
    est = AdaBoostClassifier(n_estimators=5, random_state=0).fit(df, y)
    with pytest.raises(ExportError, match="could not convert AdaBoostClassifier"):
        to_pmml(est, tmp_path / "m.pmml", sample=df, target_name="y")
