"""Input encoding and validation: every accepted form, every error in the user's terms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import exporters
import scorer
from scorer.errors import (
    FieldTypeError,
    MissingFieldError,
    MissingValueError,
    ShapeError,
)
from tests.datasets import sklearn_dataset


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    X, y = sklearn_dataset("iris")
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    path = tmp_path_factory.mktemp("m") / "iris"
    exporters.export(est, path, sample=X)
    return est, scorer.load(path), X


@pytest.fixture(scope="module")
def named_model(tmp_path_factory):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"age": rng.normal(40, 10, 200), "income": rng.normal(5e4, 1e4, 200),
                       "hours": rng.normal(40, 5, 200), "unused": rng.normal(size=200)})
    y = df["age"] * 2 + df["income"] / 1e4
    ct = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                            ("keep", "passthrough", ["hours"])])
    est = make_pipeline(ct, Ridge()).fit(df, y)
    path = tmp_path_factory.mktemp("m") / "named"
    exporters.export(est, path, sample=df)
    return est, scorer.load(path), df


def test_every_input_form_gives_the_same_answer(iris_model):
    est, model, X = iris_model
    want = est.predict_proba(X[:3])
    cols = {f"x{j}": X[:3, j] for j in range(4)}
    forms = [X[:3], X[:3].tolist(), pd.DataFrame(cols), cols,
             [{k: v[i] for k, v in cols.items()} for i in range(3)]]
    for form in forms:
        np.testing.assert_allclose(model.predict_proba(form), want, rtol=0, atol=1e-15)
    one = model.predict_proba({f"x{j}": X[0, j] for j in range(4)})
    np.testing.assert_allclose(one, want[:1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.predict_proba(X[0]), want[:1], rtol=0, atol=1e-15)


def test_wrong_width_is_named(iris_model):
    _, model, X = iris_model
    with pytest.raises(ShapeError, match="expected 4 features, got 3"):
        model.predict(X[:, :3])
    with pytest.raises(ShapeError, match="expected 4 features, got 5"):
        model.predict(np.ones(5))


def test_missing_field_is_named(named_model):
    _, model, df = named_model
    with pytest.raises(MissingFieldError, match="missing input field 'income'"):
        model.predict(df.drop(columns=["income"]))


def test_unused_columns_are_not_required(named_model):
    est, model, df = named_model
    assert model.input_names == ["age", "income", "hours"]
    np.testing.assert_allclose(model.predict(df.drop(columns=["unused"])), est.predict(df),
                               rtol=1e-12, atol=1e-12)


def test_strings_in_a_numeric_field(named_model):
    _, model, _ = named_model
    with pytest.raises(FieldTypeError, match=r"field 'age' expects numbers \(double\), got 'old'"):
        model.predict({"age": "old", "income": 1.0, "hours": 2.0})
    # numbers written as strings are fine
    model.predict({"age": "41.5", "income": 1.0, "hours": 2.0})


def test_missing_value_refused_where_the_model_refuses_it(iris_model):
    est, model, X = iris_model
    Xn = X[:4].copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(Xn)  # the original refuses it too
    with pytest.raises(MissingValueError, match=r"field 'x1' has missing values \(row 2\)"):
        model.predict(Xn)


def test_infinity_refused_where_the_model_refuses_it(iris_model):
    _, model, X = iris_model
    Xi = X[:3].copy()
    Xi[1, 3] = np.inf
    with pytest.raises(FieldTypeError, match="field 'x3' has infinite values"):
        model.predict(Xi)


def test_imputer_makes_missing_values_acceptable(tmp_path):
    X, y = sklearn_dataset("diabetes")
    X = X.copy()
    X[::7, 2] = np.nan
    est = make_pipeline(SimpleImputer(strategy="median"), Ridge()).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    assert all(f.missing == "allow" for f in model.bundle.inputs)
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)


def test_not_a_table(iris_model):
    _, model, _ = iris_model
    with pytest.raises(ShapeError):
        model.predict(np.ones((2, 2, 2)))


def test_large_batches_run_in_chunks_with_identical_results(iris_model):
    est, model, X = iris_model
    big = np.tile(X, (800, 1))  # 120,000 rows: several chunks
    assert len(big) > 4 * model._chunk_rows
    import numba

    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            got = model.predict_proba(big)
            np.testing.assert_array_equal(got, np.tile(model.predict_proba(X), (800, 1)))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(got, est.predict_proba(big), rtol=1e-12, atol=1e-12)
    assert (model.predict(big) == est.predict(big)).all()


def test_errors_in_a_late_chunk_name_the_callers_row(iris_model):
    _, model, X = iris_model
    big = np.tile(X, (400, 1))
    big[45_001, 2] = np.nan
    with pytest.raises(MissingValueError, match=r"field 'x2' has missing values \(row 45001\)"):
        model.predict(big)
