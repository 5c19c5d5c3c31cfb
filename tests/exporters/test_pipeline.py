"""Composition: Pipeline and ColumnTransformer wiring (named columns, passthrough, drop)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

import exporters
from scorer.errors import ExportError
from tests.datasets import shared_csv, sklearn_dataset
from tests.parity import assert_parity


@pytest.mark.parametrize("remainder", ["drop", "passthrough"])
def test_column_transformer_on_named_columns(tmp_path, remainder):
    df = shared_csv("AuditNA.csv")[["Age", "Income", "Hours", "Adjusted"]].copy()
    df["Age"] = shared_csv("Audit.csv")["Age"].astype(float)  # complete: refused if missing
    df["Hours"] = shared_csv("Audit.csv")["Hours"].astype(float)
    X, y = df.drop(columns=["Adjusted"]), df["Adjusted"]
    ct = ColumnTransformer(
        [("imp", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), ["Income"]),
         ("mm", MinMaxScaler(), ["Age"])],
        remainder=remainder)
    est = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    expected = ["Age", "Income", "Hours"] if remainder == "passthrough" else ["Age", "Income"]
    assert model.input_names == expected
    assert model.bundle.field("Income").missing == "allow"
    assert model.bundle.field("Age").missing == "error"


def test_column_selector_drop_and_passthrough_steps(tmp_path):
    X, y = sklearn_dataset("diabetes")
    df = pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])])
    ct = ColumnTransformer([
        ("a", StandardScaler(), make_column_selector(pattern="c[0-4]")),
        ("b", "drop", ["c5"]),
        ("c", "passthrough", ["c9", "c6"]),
    ])
    est = Pipeline([("ct", ct), ("noop", "passthrough"), ("ident", FunctionTransformer()),
                    ("lr", LinearRegression())]).fit(df, y)
    model = assert_parity(est, df, tmp_path / "m")
    assert "c5" not in model.input_names


def test_positional_model_keeps_every_field(tmp_path):
    X, y = sklearn_dataset("diabetes")
    ct = ColumnTransformer([("a", StandardScaler(), [0, 3])])
    est = make_pipeline(ct, LinearRegression()).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert len(model.input_names) == X.shape[1]  # callers pass the whole row


def test_python_function_is_refused(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = make_pipeline(FunctionTransformer(np.log1p), LinearRegression()).fit(np.abs(X), y)
    with pytest.raises(ExportError, match="FunctionTransformer with a Python function"):
        exporters.export(est, tmp_path / "m", sample=np.abs(X))


def test_ordinal_unknown_as_nan_into_a_nan_refusing_model(tmp_path):
    from sklearn.preprocessing import OrdinalEncoder

    from scorer.errors import UnknownCategoryError

    df = shared_csv("Audit.csv")[["Employment", "Age", "Adjusted"]].astype(
        {"Employment": object})
    X, y = df[["Employment", "Age"]], df["Adjusted"]
    ct = ColumnTransformer([("o", OrdinalEncoder(handle_unknown="use_encoded_value",
                                                 unknown_value=np.nan), ["Employment"])],
                           remainder="passthrough")
    est = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    bad = X.iloc[:2].copy()
    bad.iloc[0, 0] = "Astronaut"
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)  # scikit-learn refuses: the unseen category became NaN
    with pytest.raises(UnknownCategoryError, match="'Astronaut' for field 'Employment'"):
        model.predict(bad)
