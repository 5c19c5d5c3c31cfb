"""Family ``clustering``: scikit-learn KMeans / MiniBatchKMeans, original == kernel ==
reference (predict and transform)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import exporters
import scorer
from scorer.errors import ExportError, InputError
from tests.datasets import sklearn_dataset
from tests.parity import assert_parity


@pytest.mark.parametrize("make", [
    lambda: KMeans(4, n_init=2, random_state=0),
    lambda: MiniBatchKMeans(3, n_init=2, random_state=0),
    lambda: make_pipeline(StandardScaler(), KMeans(5, n_init=2, random_state=0)),
])
@pytest.mark.parametrize("ds", ["iris", "wine"])
def test_kmeans_parity(make, ds, tmp_path):
    X, _ = sklearn_dataset(ds)
    est = make().fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.bundle.steps[-2].params == {"measure": "euclidean", "expansion": True}
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_kmeans_near_ties_follow_sklearn(tmp_path):
    """Points a hair (1e-7) off the bisector of two centers pick scikit-learn's center.
    Closer than scikit-learn's own rounding noise (~1e-16 * |x|^2 in the squared distance:
    BLAS dot products) the pick is a coin toss neither formula reproduces bit for bit."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * 10 + 100
    est = KMeans(2, n_init=1, random_state=0).fit(X)
    c0, c1 = est.cluster_centers_
    t = rng.uniform(-3, 3, size=(300, 1))
    mid = (c0 + c1) / 2 + t * np.cross(c1 - c0, [1.0, 0.0, 0.0])
    mid += rng.normal(size=mid.shape) * 1e-7
    model = assert_parity(est, mid, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(mid), est.predict(mid))


def test_kmeans_refuses_nan_and_float32(tmp_path):
    X, _ = sklearn_dataset("iris")
    est = KMeans(3, n_init=1, random_state=0).fit(X)
    exporters.export(est, tmp_path / "m", sample=X[:10])
    model = scorer.load(tmp_path / "m")
    bad = X[:2].copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError):
        model.predict(bad)
    est32 = KMeans(3, n_init=1, random_state=0).fit(X.astype(np.float32))
    with pytest.raises(ExportError, match="float32"):
        exporters.export(est32, tmp_path / "m32", sample=X[:10])
