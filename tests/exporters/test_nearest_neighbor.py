"""Family ``nearest_neighbor``: scikit-learn KNeighborsClassifier / KNeighborsRegressor,
original == kernel == reference (predict, predict_proba)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

import exporters
from scorer.errors import ExportError
from tests.datasets import sklearn_dataset


def _split(ds: str):
    """Diabetes with its binary 'sex' column jittered: no two training rows at exactly equal
    distances (chebyshev would tie on it), whose order scikit-learn's searches do not
    define (see exporters.nearest_neighbor)."""
    X, y = sklearn_dataset("diabetes")
    if ds == "diabetes_classes":
        y = np.digitize(y, [100.0, 200.0])
    rng = np.random.default_rng(0)
    X = X + rng.normal(scale=1e-3, size=X.shape)
    idx = rng.permutation(len(X))
    return X[idx[:120]], y[idx[:120]], X[idx[120:180]]


CLASSIFIERS = {
    "uniform": lambda: KNeighborsClassifier(5),
    "distance_manhattan": lambda: KNeighborsClassifier(7, weights="distance", p=1),
    "brute": lambda: KNeighborsClassifier(4, algorithm="brute"),
    "chebyshev": lambda: KNeighborsClassifier(3, metric="chebyshev"),
    "minkowski3": lambda: KNeighborsClassifier(5, p=3, weights="distance"),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_parity(name, tmp_path):
    from tests.parity import assert_parity

    X, y, Xt = _split("diabetes_classes")
    est = CLASSIFIERS[name]().fit(X, y)
    # training rows too: distance 0 to themselves (weights='distance' zero rule)
    model = assert_parity(est, np.vstack([Xt, X[:20]]), tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


REGRESSORS = {
    "uniform": lambda: KNeighborsRegressor(5),
    "distance": lambda: KNeighborsRegressor(6, weights="distance"),
    "brute_distance": lambda: KNeighborsRegressor(5, algorithm="brute", weights="distance"),
    "manhattan": lambda: KNeighborsRegressor(9, metric="manhattan"),
}


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressor_parity(name, tmp_path):
    from tests.parity import assert_parity

    X, y, Xt = _split("diabetes")
    est = REGRESSORS[name]().fit(X, y)
    assert_parity(est, np.vstack([Xt, X[:20]]), tmp_path / "m")


def test_multi_output_regressor(tmp_path):
    from tests.parity import assert_parity

    X, _, Xt = _split("diabetes")
    est = KNeighborsRegressor(4).fit(X[:, :6], X[:, 6:8])
    model = assert_parity(est, Xt[:, :6], tmp_path / "m")
    assert model.output_names == ["value(0)", "value(1)"]


def test_refused(tmp_path):
    X, y, _ = _split("diabetes_classes")
    for est in (KNeighborsClassifier(3, metric="cosine", algorithm="brute").fit(X, y),
                KNeighborsClassifier(3, weights=lambda d: d).fit(X, y)):
        with pytest.raises(ExportError, match="not supported"):
            exporters.export(est, tmp_path / "m", sample=X[:5])
