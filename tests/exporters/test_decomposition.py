"""PCA / IncrementalPCA / TruncatedSVD: original == kernel == reference, through bundles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA, IncrementalPCA, TruncatedSVD
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import exporters
import scorer
from scorer.errors import InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

MAKERS = [
    lambda: PCA(5),
    lambda: PCA(4, whiten=True),
    lambda: PCA(0.95, svd_solver="full"),
    lambda: PCA(3, svd_solver="randomized", random_state=0),
    lambda: IncrementalPCA(3, whiten=True),
    lambda: TruncatedSVD(3, random_state=0),
]


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("ds", ["breast_cancer", "wine", "diabetes"])
def test_transform_parity(make, ds, tmp_path):
    X, _ = sklearn_dataset(ds)
    est = make().fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    got = np.column_stack([model.score_arrays(X)[o.name] for o in model.bundle.outputs])
    want = est.transform(X)
    # the linear tolerance, as the bundle records it; measured <= 2e-12 abs on breast_cancer
    # (values up to 4e3): BLAS vs left-to-right summation of X @ components_.T
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_pca_in_classifier_pipeline(ds, tmp_path):
    X, y = sklearn_dataset(ds)
    est = make_pipeline(StandardScaler(), PCA(4, whiten=True),
                        LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_pca_after_imputer_on_missing_values(tmp_path):
    X = synthetic(300, 6, seed=3, nan=True)
    X[:, 2] /= 1e6
    X[:, 3] = np.clip(X[:, 3], -5, 5)  # no 1e300: scikit-learn's SVD overflows on them
    y = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 4])
    est = make_pipeline(SimpleImputer(), StandardScaler(), PCA(3), Ridge()).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)


def test_pca_arithmetic_order_is_sklearns(tmp_path):
    """The intercept is -(mean_ @ components_.T) exactly as scikit-learn computes it and the
    whitening divides by the eps-floored sqrt(explained_variance_)."""
    X, _ = sklearn_dataset("wine")
    est = PCA(3, whiten=True).fit(X)
    b = exporters.build_bundle(est, sample=X)
    lin, whiten = b.steps
    np.testing.assert_array_equal(lin.tables["intercepts"]["intercept"],
                                  -(est.mean_.reshape(1, -1) @ est.components_.T)[0])
    np.testing.assert_array_equal(whiten.tables["columns"]["div"],
                                  np.sqrt(est.explained_variance_))


def test_pca_refuses_nan_like_sklearn(tmp_path):
    X, _ = sklearn_dataset("wine")
    est = PCA(2).fit(X)
    exporters.export(est, tmp_path / "m", sample=X)
    bad = X[:1].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        est.transform(bad)
    with pytest.raises(InputError):
        scorer.load(tmp_path / "m").score_arrays(bad)
