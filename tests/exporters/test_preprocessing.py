"""Family ``preprocessing``: scalers and SimpleImputer, bit-exact with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

import exporters
import scorer
from tests.datasets import shared_csv, sklearn_dataset, synthetic

SCALERS = {
    "standard": StandardScaler,
    "standard_nomean": lambda: StandardScaler(with_mean=False),
    "minmax": MinMaxScaler,
    "minmax_clip": lambda: MinMaxScaler(feature_range=(-1, 2), clip=True),
    "maxabs": MaxAbsScaler,
    "robust": RobustScaler,
    "robust_nocenter": lambda: RobustScaler(with_centering=False, quantile_range=(10, 90)),
}


@pytest.mark.parametrize("name", sorted(SCALERS))
def test_scalers_are_bit_exact(tmp_path, name):
    X = synthetic(300, 6, seed=1, nan=True)
    est = SCALERS[name]().fit(X[:200])
    exporters.export(est, tmp_path / "m", sample=X[:200])
    model = scorer.load(tmp_path / "m")
    want = est.transform(X)
    got = model.score(X).to_numpy()
    np.testing.assert_array_equal(got, want)  # same operations in the same order
    np.testing.assert_array_equal(model.score(X, reference=True).to_numpy(), want)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
@pytest.mark.parametrize("indicator", [False, True])
def test_imputer(tmp_path, strategy, indicator):
    X = synthetic(300, 5, seed=2, nan=True)
    X[:, 4] = np.nan  # a feature never observed: dropped unless strategy == "constant"
    X[5, 4] = np.nan
    est = SimpleImputer(strategy=strategy, add_indicator=indicator, fill_value=-7.0)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
            want = est.transform(X)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    got = model.score(X).to_numpy()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.score(X, reference=True).to_numpy(), want)


def test_imputer_with_numeric_marker(tmp_path):
    X = np.array([[1.0, -1.0], [-1.0, 4.0], [3.0, 5.0], [np.nan, 2.0]])
    est = SimpleImputer(missing_values=-1.0, strategy="mean").fit(X[:3])
    exporters.export(est, tmp_path / "m", sample=X[:3])
    model = scorer.load(tmp_path / "m")
    np.testing.assert_array_equal(model.score(X[:3]).to_numpy(), est.transform(X[:3]))


def test_imputer_then_model_on_shared_table(tmp_path):
    df = shared_csv("HousingNA.csv")
    X = df.drop(columns=["MEDV"])
    est = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler(),
                        Ridge()).fit(X, df["MEDV"])
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)
    assert {f.missing for f in model.bundle.inputs} == {"allow"}


def test_scaler_on_diabetes_then_ridge(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = make_pipeline(MinMaxScaler(), RobustScaler(), Ridge()).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    np.testing.assert_allclose(scorer.load(tmp_path / "m").predict(X), est.predict(X),
                               rtol=1e-12, atol=1e-12)
