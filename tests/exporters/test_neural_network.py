"""Family ``neural_network``: scikit-learn's MLPs, original == kernel == reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import exporters
import scorer
from scorer.errors import ExportError, InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]


def _fit(est, X, y):
    with warnings.catch_warnings():  # a few iterations are enough to get non-trivial weights
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_classifier(tmp_path, dataset, activation):
    X, y = sklearn_dataset(dataset)
    est = _fit(make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(12, 6), activation=activation, max_iter=200, random_state=0)),
        X, y)
    model = assert_parity(est, X, tmp_path / "m")
    ops = [s.op for s in model.bundle.steps]
    assert "neural_network" in ops
    # binary: one output neuron through logistic2; multiclass: softmax inside the op
    assert ("link" in ops) == (len(np.unique(y)) == 2)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_regressor(tmp_path, activation):
    X, y = sklearn_dataset("diabetes")
    est = _fit(make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=(16, 8), activation=activation, max_iter=200, random_state=0)),
        X, y)
    assert_parity(est, X, tmp_path / "m")


def test_multi_output_regressor(tmp_path):
    X, y = sklearn_dataset("diabetes")
    Y = np.column_stack([y, -0.5 * y + 3.0, np.log(y)])
    est = _fit(make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=(10,), max_iter=100, random_state=0)), X, Y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.output_names == ["value(0)", "value(1)", "value(2)"]


def test_poisson_regressor_exp_output(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = _fit(make_pipeline(StandardScaler(), MLPRegressor(
        loss="poisson", hidden_layer_sizes=(8,), max_iter=100, random_state=0)), X, y)
    model = assert_parity(est, X, tmp_path / "m")
    step = next(s for s in model.bundle.steps if s.op == "neural_network")
    assert list(step.tables["layers"]["activation"]) == ["rectifier", "exponential"]


def test_string_classes_and_deep_network_on_hostile_data(tmp_path):
    X = synthetic(300, 6, seed=3)
    X[:, 3] = np.clip(X[:, 3], -1e3, 1e3)  # keep the 1e300 cells from saturating everything
    y = np.array(["low", "mid", "high"])[(X[:, 0] > 1).astype(int) + (X[:, 4] > 0.5)]
    est = _fit(MLPClassifier(hidden_layer_sizes=(32, 16, 8), max_iter=30, random_state=0),
               X, y)
    assert_parity(est, X, tmp_path / "m")


def test_refuses_nan_and_inf_like_sklearn(tmp_path):
    X, y = sklearn_dataset("iris")
    est = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0), X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    for bad in (np.nan, np.inf):
        Z = X[:3].copy()
        Z[1, 2] = bad
        with pytest.raises(InputError):
            model.score_arrays(Z)


def test_multilabel_is_refused(tmp_path):
    X, y = sklearn_dataset("iris")
    Y = np.column_stack([y == 0, y == 1]).astype(int)
    est = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0), X, Y)
    with pytest.raises(ExportError, match="multilabel"):
        exporters.export(est, tmp_path / "m", sample=X)


def test_large_batch_uses_parallel_kernel(tmp_path):

    X, y = sklearn_dataset("breast_cancer")
    est = _fit(make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(16,), activation="tanh", max_iter=50, random_state=0)), X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    rows = model.parallel_min_rows
    assert rows is not None and rows <= 200_000
    big = np.repeat(X, rows // len(X) + 1, axis=0)
    got = model.score_arrays(big)
    want = est.predict_proba(big)
    np.testing.assert_allclose(got["probability(1)"], want[:, 1], rtol=1e-9, atol=1e-9)
    assert np.array_equal(got["label"], est.predict(big))


def test_pipeline_with_encoded_strings_and_imputed_numbers(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from tests.datasets import shared_csv

    df = shared_csv("AuditNA.csv")[["Age", "Income", "Education", "Gender", "Adjusted"]]
    df = df.dropna(subset=["Education", "Gender"]).head(400)
    X, y = df.drop(columns=["Adjusted"]), df["Adjusted"]
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
         ["Age", "Income"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["Education", "Gender"])])
    est = _fit(make_pipeline(ct, MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                               random_state=0)), X, y)
    model = assert_parity(est, X, tmp_path / "m")
    # the imputer absorbs missing incomes before the network, which never sees NaN
    assert model.bundle.field("Income").missing == "allow"
