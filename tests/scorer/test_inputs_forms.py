"""Input forms a review found mis-read: non-string frame labels, a list of rows missing a key,
pandas' ``pd.NA``, big-endian and long-double arrays; and exports whose sample the original
refuses or that were never fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import exporters
import scorer
from scorer.errors import ExportError, MissingFieldError


@pytest.fixture(scope="module")
def numeric(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    est = make_pipeline(SimpleImputer(), LogisticRegression()).fit(pd.DataFrame(X), y)
    path = tmp_path_factory.mktemp("forms") / "b"
    exporters.export(est, path, sample=pd.DataFrame(X))  # columns 0, 1, 2
    return est, X, scorer.load(path)


def test_a_frame_of_integer_labels_scores_as_exported(numeric):
    est, X, m = numeric
    np.testing.assert_allclose(m.predict_proba(pd.DataFrame(X)), est.predict_proba(
        pd.DataFrame(X)), rtol=0, atol=1e-12)


def test_a_row_missing_a_key_is_refused_not_read_as_missing(numeric):
    _, _, m = numeric
    rows = [{"0": 0.5, "1": 0.1, "2": 3.0}, {"0": 0.5, "1": 0.1, "X2": 3.0}]
    with pytest.raises(MissingFieldError, match="missing input field '2' in row 1"):
        m.predict_proba(rows)


@pytest.mark.parametrize("rows", [1, 7, 40_000])  # one row, a batch, chunked batches
def test_big_endian_and_long_double_arrays_score_as_native_ones(numeric, rows):
    _, X, m = numeric
    A = np.resize(X, (rows, 3))
    want = m.score_arrays(A)
    for dt in (">f8", ">i8", np.longdouble):
        got = m.score_arrays(A.astype(dt))
        for k in want:
            if dt == ">i8":
                continue  # (other values: integers)
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{dt} {k}")
    np.testing.assert_array_equal(m.score_arrays(A.astype(np.int64).astype(">i8"))["label"],
                                  m.score_arrays(A.astype(np.int64))["label"])


def test_pandas_na_is_a_missing_value(tmp_path):
    df = pd.DataFrame({"c": ["roma", "torino", None, "roma"] * 20, "x": np.arange(80.0)})
    y = (df["x"] % 3 == 0).astype(int)
    est = make_pipeline(
        __import__("sklearn.compose", fromlist=["ColumnTransformer"]).ColumnTransformer([
            ("c", make_pipeline(SimpleImputer(strategy="constant", fill_value="roma"),
                                OneHotEncoder(handle_unknown="ignore")), ["c"]),
            ("x", SimpleImputer(), ["x"])]), LogisticRegression()).fit(df, y)
    exporters.export(est, tmp_path / "b", sample=df)
    m = scorer.load(tmp_path / "b")
    with_none = m.predict_proba(pd.DataFrame({"c": [None], "x": [None]}, dtype=object))
    with_na = m.predict_proba(pd.DataFrame({"c": pd.array([pd.NA], dtype="string"),
                                            "x": pd.array([pd.NA], dtype="Float64")}))
    np.testing.assert_array_equal(with_na, with_none)
    np.testing.assert_array_equal(m.predict_proba({"c": pd.NA, "x": pd.NA}), with_none)


def test_exports_the_original_cannot_score_are_export_errors(numeric, tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    est = LogisticRegression().fit(df, (df.a > 0).astype(int))
    # the training frame with its target, or its columns shuffled: the fitted columns are used
    exporters.export(est, tmp_path / "t", sample=df.assign(target=1))
    exporters.export(est, tmp_path / "s", sample=df[["c", "a", "b"]])
    np.testing.assert_allclose(scorer.load(tmp_path / "s").predict_proba(df),
                               est.predict_proba(df), rtol=0, atol=1e-12)
    with pytest.raises(ExportError, match="could not score the sample"):
        exporters.export(est, tmp_path / "n", sample=df.assign(a=np.nan))
    with pytest.raises(ExportError, match="is not fitted"):
        exporters.export(LogisticRegression(), tmp_path / "u", sample=df)
