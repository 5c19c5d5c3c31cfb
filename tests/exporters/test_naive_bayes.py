"""Family ``naive_bayes``: scikit-learn's five naive Bayes classifiers, original == kernel ==
reference (probabilities and labels), and the inputs scikit-learn refuses are refused."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import naive_bayes as nb
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import exporters
import scorer
from scorer.errors import ExportError, InputError
from tests.datasets import sklearn_dataset
from tests.parity import assert_parity


def counts(n: int = 300, f: int = 15, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic word counts whose rates depend on the class (ties and zeros included)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    rates = rng.gamma(1.0, 2.0, size=(k, f))
    return rng.poisson(rates[y]).astype(np.float64), y


@pytest.mark.parametrize("dataset", ["iris", "wine", "digits"])
def test_gaussian_nb(tmp_path, dataset):
    X, y = sklearn_dataset(dataset)
    assert_parity(nb.GaussianNB().fit(X, y), X, tmp_path / "m")


def test_gaussian_nb_priors_string_labels_and_far_rows(tmp_path):
    X, y = sklearn_dataset("iris")
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    est = nb.GaussianNB(priors=[0.2, 0.5, 0.3], var_smoothing=1e-12).fit(X, labels)
    far = np.vstack([X, X[:10] * 40.0, -X[:10] * 1e3])  # log densities of -1e8: no underflow
    model = assert_parity(est, far, tmp_path / "m")
    assert set(model.predict(far)) <= set(labels)


@pytest.mark.parametrize("dataset", ["digits", "counts"])
@pytest.mark.parametrize("name", ["multinomial", "complement", "complement_norm"])
def test_multinomial_and_complement_nb(tmp_path, name, dataset):
    X, y = counts() if dataset == "counts" else sklearn_dataset("digits")
    est = {"multinomial": nb.MultinomialNB(alpha=0.5),
           "complement": nb.ComplementNB(),
           "complement_norm": nb.ComplementNB(norm=True)}[name].fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_single_class_complement_nb_adds_its_prior(tmp_path):
    X, _ = counts(60)
    est = nb.ComplementNB().fit(X, np.zeros(60, dtype=int))
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.score_arrays(X)["probability(0)"], 1.0)


@pytest.mark.parametrize("binarize", [None, 0.0, 4.5])
def test_bernoulli_nb(tmp_path, binarize):
    X, y = sklearn_dataset("digits")
    Xb = (X > 4.5).astype(float) if binarize is None else X
    est = nb.BernoulliNB(binarize=binarize, alpha=0.3).fit(Xb, y)
    assert_parity(est, Xb, tmp_path / "m")


def test_bernoulli_nb_values_at_the_threshold(tmp_path):
    X, y = counts(200, 8, seed=4)
    est = nb.BernoulliNB(binarize=2.0).fit(X, y)
    X2 = X.copy()
    X2[:40] = 2.0  # x > binarize, strictly: 2.0 is absent
    X2[40:60] = np.nextafter(2.0, 3.0)
    assert_parity(est, X2, tmp_path / "m")


@pytest.mark.parametrize("dataset", ["digits", "counts"])
def test_categorical_nb(tmp_path, dataset):
    X, y = counts(400, 10, seed=1) if dataset == "counts" else sklearn_dataset("digits")
    est = nb.CategoricalNB(alpha=0.7).fit(X.astype(int), y)
    # scikit-learn truncates non-integer inputs toward zero (-0.5 -> 0)
    X2 = X.copy()
    X2[:30] = X2[:30] + 0.75
    X2[30:40, 0] = -0.5
    assert_parity(est, X2, tmp_path / "m")


def test_categorical_nb_refuses_what_scikit_learn_refuses(tmp_path):
    X, y = counts(100, 4, seed=2)
    X = np.minimum(X, 3)
    est = nb.CategoricalNB().fit(X.astype(int), y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    for bad, why in ((4.0, IndexError), (-1.0, ValueError)):
        row = X[:3].copy()
        row[1, 2] = bad
        with pytest.raises(why):
            est.predict_proba(row)
        with pytest.raises(InputError, match=r"row 1.*x2|x2.*row 1"):
            model.score_arrays(row)


def test_missing_and_infinite_inputs_are_refused(tmp_path):
    X, y = sklearn_dataset("iris")
    est = nb.GaussianNB().fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    assert all(f.missing == "error" and f.infinite == "error" for f in model.bundle.inputs)
    for bad in (np.nan, np.inf):
        row = X[:2].copy()
        row[1, 3] = bad
        with pytest.raises(ValueError):
            est.predict_proba(row)
        with pytest.raises(InputError):
            model.score_arrays(row)


def test_in_a_pipeline(tmp_path):
    X, y = sklearn_dataset("wine")
    est = make_pipeline(MinMaxScaler(), nb.MultinomialNB()).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_string_columns_must_be_encoded_first(tmp_path):
    import pandas as pd

    X = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": [1.0, 2.0, 3.0, 4.0]})
    est = nb.CategoricalNB()
    est.fit(np.array([[0, 1], [1, 2], [0, 3], [1, 4]]), [0, 1, 0, 1])
    est.feature_names_in_ = np.array(["a", "b"], dtype=object)
    with pytest.raises(ExportError, match="string column 'a'"):
        exporters.export(est, tmp_path / "m", sample=X)


def test_gaussian_nb_fitted_on_float32_is_refused(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    est = nb.GaussianNB().fit(X, (X[:, 0] > 0).astype(int))
    with pytest.raises(ExportError, match="GaussianNB was fitted on float32 data"):
        exporters.export(est, tmp_path / "b")
