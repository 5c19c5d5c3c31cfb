"""Normalizer / Binarizer / PolynomialFeatures: original == kernel == reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, Normalizer, PolynomialFeatures, StandardScaler

import exporters
import scorer
from scorer.errors import InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _transform(model: scorer.Model, X: np.ndarray, *, reference: bool = False) -> np.ndarray:
    res = model.score_arrays(X, reference=reference)
    return np.column_stack([res[o.name] for o in model.bundle.outputs])


EXACT = [
    lambda: Normalizer("l1"),
    lambda: Normalizer("max"),
    lambda: Binarizer(threshold=3.5),
    lambda: PolynomialFeatures(2),
    lambda: PolynomialFeatures(3, interaction_only=True, include_bias=False),
    lambda: PolynomialFeatures((2, 3)),
    lambda: PolynomialFeatures((2, 2), include_bias=False),
    lambda: PolynomialFeatures(0),
]


@pytest.mark.parametrize("make", EXACT)
@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_bit_exact_transforms(make, ds, tmp_path):
    X, _ = sklearn_dataset(ds)
    X = np.ascontiguousarray(X[:, :7]) if "Polynomial" in repr(make()) else X
    est = make().fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    want = est.transform(X)
    np.testing.assert_array_equal(_transform(model, X), want)
    np.testing.assert_array_equal(_transform(model, X, reference=True), want)


def test_polynomial_column_order_is_powers(tmp_path):
    X = np.random.default_rng(0).uniform(1, 2, size=(20, 3))
    est = PolynomialFeatures(3).fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    got = _transform(model, X)
    np.testing.assert_array_equal(got, est.transform(X))
    # column j is prod_f x_f ** powers_[j, f] (computed here another way: a few ulp)
    np.testing.assert_allclose(got, np.prod(X[:, None, :] ** est.powers_[None], axis=2),
                               rtol=1e-15, atol=0)


@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_normalizer_l2(ds, tmp_path):
    X, _ = sklearn_dataset(ds)
    est = Normalizer().fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    # einsum's SIMD summation order is not reproducible: a few ulp (measured <= 4.8e-16)
    np.testing.assert_allclose(_transform(model, X), est.transform(X), rtol=1e-15, atol=0)


def test_normalizer_zero_rows_divide_by_one(tmp_path):
    X = np.array([[0.0, 0.0, 0.0], [1e-300, 0.0, -1e-300], [3.0, -4.0, 0.0]])
    for norm in ("l1", "l2", "max"):
        est = Normalizer(norm).fit(X)
        model = assert_parity(est, X, tmp_path / norm)
        np.testing.assert_array_equal(_transform(model, X), est.transform(X))


def test_behind_imputer_on_missing_values(tmp_path):
    X = synthetic(300, 5, seed=4, nan=True)
    X[:, 2] /= 1e6
    X[:, 3] = np.clip(X[:, 3], -3, 3)
    y = np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 4])
    est = make_pipeline(SimpleImputer(), StandardScaler(), PolynomialFeatures(2), Ridge(),
                        ).fit(X, y)
    model = assert_parity(est, X, tmp_path / "a")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)
    yc = (y > 0).astype(int)
    est = make_pipeline(SimpleImputer(), Normalizer("l1"), Binarizer(threshold=0.1),
                        LogisticRegression()).fit(X, yc)
    model = assert_parity(est, X, tmp_path / "b")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


@pytest.mark.parametrize("make", [Normalizer, Binarizer, PolynomialFeatures])
def test_refuse_nan_like_sklearn(make, tmp_path):
    X, _ = sklearn_dataset("iris")
    est = make().fit(X)
    exporters.export(est, tmp_path / "m", sample=X)
    bad = X[:1].copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError):
        est.transform(bad)
    with pytest.raises(InputError):
        scorer.load(tmp_path / "m").score_arrays(bad)
