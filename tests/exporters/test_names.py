"""Input names: a bundle is named, and scored, by the caller's columns even where the model's
library renamed them when it was fitted (LightGBM: spaces -> ``_``), with punctuation,
unicode, non-string labels and names that collide with generated workspace columns."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import exporters
from scorer.errors import ExportError
from scorer.model import Model

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")

#: spaces (LightGBM rewrites them), punctuation, unicode, leading / doubled spaces, names a
#: rewrite brings next to another ("a  b" -> "a__b" beside "a_b_"), and names of the columns
#: the exporters generate ("lightgbm.margin.0", "link.0")
AWKWARD = ["fixed acidity", "pH (log10) %", "a-b/c.d", "Dichte ρ", "温度 °C", " lead",
           "a  b", "a_b_", "lightgbm.margin.0", "link.0"]


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*feature names.*")
        warnings.filterwarnings("ignore", message=".*whitespace.*")
        yield


def _frame(columns: list[Any], n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(columns))), columns=columns)
    y = (X.iloc[:, 0] + 0.5 * X.iloc[:, -1] - 0.3 * X.iloc[:, 1] > 0).astype(int).to_numpy().copy()
    y[X.iloc[:, 2].to_numpy() > 1.0] = 2
    return X, y


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_lightgbm_renamed_columns_score_by_the_callers_names(kind: str) -> None:
    X, y = _frame(AWKWARD)
    params = {"n_estimators": 8, "num_leaves": 6, "n_jobs": 1, "verbose": -1}
    est = (lgb.LGBMClassifier(**params) if kind == "classifier"
           else lgb.LGBMRegressor(**params)).fit(X, y)
    # the library's own names are not the caller's
    assert "fixed_acidity" in list(est.feature_names_in_)
    model = Model(exporters.build_bundle(est, sample=X), verify=True)
    assert [f.name for f in model.bundle.inputs] == AWKWARD
    if kind == "classifier":
        np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X),
                                   rtol=0, atol=1e-15)
        np.testing.assert_array_equal(model.predict(X), est.predict(X))
    else:
        np.testing.assert_array_equal(model.predict(X), est.predict(X))
    # scored by name: a frame with the columns in another order gives the same answers
    shuffled = X[AWKWARD[::-1]]
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(X))


def test_lightgbm_in_a_pipeline_of_one(tmp_path: Any) -> None:
    from sklearn.pipeline import Pipeline

    X, y = _frame(AWKWARD[:4])
    pipe = Pipeline([("m", lgb.LGBMClassifier(n_estimators=4, verbose=-1, n_jobs=1))]).fit(X, y)
    exporters.export(pipe, tmp_path / "b", sample=X)
    import scorer

    model = scorer.load(tmp_path / "b")
    assert [f.name for f in model.bundle.inputs] == AWKWARD[:4]
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), rtol=0,
                               atol=1e-15)


def test_a_reordered_sample_is_refused_not_mapped_by_position() -> None:
    X, y = _frame(AWKWARD[:4])
    est = lgb.LGBMClassifier(n_estimators=4, verbose=-1, n_jobs=1).fit(X, y)
    # LightGBM would read this frame by position; the names say it is not the model's order
    with pytest.raises(ExportError, match="not the model's"):
        exporters.build_bundle(est, sample=X[AWKWARD[:4][::-1]])


@pytest.mark.parametrize("family", ["xgboost", "lightgbm", "sklearn"])
def test_non_string_column_labels(family: str) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = _frame([0, 1, 2, 3])
    est = {"xgboost": lambda: xgb.XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1),
           "lightgbm": lambda: lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1),
           "sklearn": lambda: RandomForestClassifier(3, random_state=0)}[family]().fit(X, y)
    model = Model(exporters.build_bundle(est, sample=X), verify=True)
    assert [f.name for f in model.bundle.inputs] == ["0", "1", "2", "3"]
    np.testing.assert_allclose(model.predict_proba(X.rename(columns=str)),
                               est.predict_proba(X), rtol=0, atol=1e-6)


def test_xgboost_multiindex_columns() -> None:
    cols = pd.MultiIndex.from_tuples([("wine", "fixed acidity"), ("wine", "pH"),
                                      ("ρ", "x"), ("y", "z")])
    X, y = _frame(list(cols))
    X.columns = cols
    est = xgb.XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1).fit(X, y)
    assert est.feature_names_in_[0] == "wine fixed acidity"  # XGBoost's own spelling
    model = Model(exporters.build_bundle(est, sample=X), verify=True)
    names = [str(c) for c in cols]
    assert [f.name for f in model.bundle.inputs] == names
    flat = pd.DataFrame(X.to_numpy(), columns=names)
    np.testing.assert_allclose(model.predict_proba(flat), est.predict_proba(X), rtol=0,
                               atol=1e-6)


def test_xgboost_awkward_names() -> None:
    # XGBoost keeps names (it refuses '[', ']' and '<'); they must reach the bundle as they are
    X, y = _frame(AWKWARD)
    est = xgb.XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1).fit(X, y)
    model = Model(exporters.build_bundle(est, sample=X), verify=True)
    assert [f.name for f in model.bundle.inputs] == AWKWARD
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X), rtol=0,
                               atol=1e-6)
