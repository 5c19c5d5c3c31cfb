"""PowerTransformer (Yeo-Johnson, Box-Cox; standardize or not): bundle == scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PowerTransformer

import scorer
from scorer.errors import InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _transform(model: scorer.Model, X: np.ndarray, *, reference: bool = False) -> np.ndarray:
    res = model.score_arrays(X, reference=reference)
    return np.column_stack([res[o.name] for o in model.bundle.outputs])


def _data(ds: str) -> np.ndarray:
    if ds == "synthetic_nan":  # NaN cells, tied columns (the 1e6 / 1e300 columns dropped:
        # SciPy's lambda search fails on them)
        return np.delete(synthetic(400, 8, seed=3, nan=True), [2, 3], axis=1)
    return sklearn_dataset(ds)[0]


@pytest.mark.parametrize("method", ["yeo-johnson", "box-cox"])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("ds", ["breast_cancer", "wine", "synthetic_nan"])
def test_power_transformer_parity(method, standardize, ds, tmp_path):
    X = _data(ds)
    if method == "box-cox":
        X = np.abs(X) + 1e-3
    est = PowerTransformer(method=method, standardize=standardize).fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    want = est.transform(X)
    got = _transform(model, X)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    if method == "box-cox":  # scipy.special.boxcox calls libm: bit-exact
        np.testing.assert_array_equal(got, want)
    else:  # NumPy's (SIMD) log1p / expm1 vs libm's: measured <= 1.8e-14
        assert np.nanmax(np.abs(got - want)) <= 1e-12


def test_lambda_zero_and_two_branches(tmp_path):
    X = np.random.default_rng(1).normal(size=(300, 3))
    est = PowerTransformer(standardize=False).fit(X)
    est.lambdas_ = np.array([0.0, 2.0, 1e-17])
    model = assert_parity(est, X, tmp_path / "m")
    assert np.nanmax(np.abs(_transform(model, X) - est.transform(X))) <= 1e-12


def test_box_cox_refuses_non_positive_rows(tmp_path):
    X = np.abs(sklearn_dataset("wine")[0]) + 1.0
    est = PowerTransformer(method="box-cox").fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    bad = X[:3].copy()
    bad[1, 2] = 0.0
    with pytest.raises(ValueError):
        est.transform(bad)
    with pytest.raises(InputError, match="strictly positive"):
        model.score_arrays(bad)


def test_in_a_pipeline(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = make_pipeline(PowerTransformer(), LogisticRegression(max_iter=500)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_overflow_to_inf(tmp_path):
    """Yeo-Johnson of -1e300 overflows to -inf: returned as the last step, refused before
    an estimator (whose check_array refuses inf)."""
    X, y = sklearn_dataset("breast_cancer")
    X = X[:, :4]
    big = X[:2].copy()
    big[1, 0] = -1e300
    alone = PowerTransformer(standardize=False).fit(X)
    model = assert_parity(alone, X, tmp_path / "a")
    want = alone.transform(big)
    assert np.isinf(want[1, 0])
    got = _transform(model, big)
    assert got[1, 0] == -np.inf
    ok = np.isfinite(want)
    assert ok.sum() == 7 and np.abs(got[ok] - want[ok]).max() <= 1e-12  # NumPy's SIMD log1p
    pipe = make_pipeline(PowerTransformer(), LogisticRegression()).fit(X, y)
    model = assert_parity(pipe, X, tmp_path / "p")
    with pytest.raises(ValueError):
        pipe.predict(big)
    with pytest.raises(InputError, match="overflows to inf"):
        model.score_arrays(big)
