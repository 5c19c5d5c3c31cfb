"""QuantileTransformer (uniform and normal output): bundle == scikit-learn, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer

import scorer
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _transform(model: scorer.Model, X: np.ndarray, *, reference: bool = False) -> np.ndarray:
    res = model.score_arrays(X, reference=reference)
    return np.column_stack([res[o.name] for o in model.bundle.outputs])


def _data(ds: str) -> np.ndarray:
    if ds == "synthetic_nan":  # NaN cells, integer-valued columns (repeated quantiles)
        X = synthetic(400, 6, seed=3, nan=True)
        return X
    return sklearn_dataset(ds)[0]


@pytest.mark.parametrize("output", ["uniform", "normal"])
@pytest.mark.parametrize("n_quantiles", [150, 37])
@pytest.mark.parametrize("ds", ["breast_cancer", "wine", "synthetic_nan"])
def test_quantile_transformer_bit_exact(output, n_quantiles, ds, tmp_path):
    X = _data(ds)
    est = QuantileTransformer(n_quantiles=n_quantiles, output_distribution=output,
                              random_state=0).fit(X)
    # also values outside the fitted range and exactly on quantiles
    Z = np.vstack([X, X.min(axis=0) - 1, np.nanmax(X, axis=0) + 1, est.quantiles_[::5]])
    model = assert_parity(est, Z, tmp_path / "m")
    want = est.transform(Z)
    np.testing.assert_array_equal(_transform(model, Z), want)
    np.testing.assert_array_equal(_transform(model, Z, reference=True), want)


def test_in_a_pipeline_with_classifier(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = make_pipeline(QuantileTransformer(output_distribution="normal", n_quantiles=100),
                        LogisticRegression(max_iter=500)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
