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


def test_brute_force_ties_as_scikit_learn(tmp_path):
    """Integer data: every distance is exact (also scikit-learn's GEMM expansion), so many
    training rows tie at the k-th distance; the bundle replays scikit-learn's ArgKmin heap
    (``search="heap"``) and keeps the same ones (a stable sort would not: checked below)."""
    from tests.parity import assert_parity

    rng = np.random.default_rng(5)
    # > 15 features: brute force; at most 256 training rows: scikit-learn's search then runs
    # over one chunk of them, in order, whatever its thread count
    X = rng.integers(0, 3, size=(250, 18)).astype(np.float64)
    y = rng.integers(0, 3, 250)
    Xt = rng.integers(0, 3, size=(200, 18)).astype(np.float64)
    est = KNeighborsClassifier(5).fit(X, y)
    assert est._fit_method == "brute"
    assert_parity(est, Xt, tmp_path / "m")
    # the heap matters here: training order on ties would change some probabilities
    d = ((Xt[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    stable = np.argsort(d, axis=1, kind="stable")[:, :5]
    votes = np.stack([(y[stable] == c).sum(axis=1) for c in range(3)], axis=1) / 5.0
    assert (votes != est.predict_proba(Xt)).any()


def test_overflowing_rows_refused(tmp_path):
    import scorer
    from scorer.errors import InputError

    X, y, Xt = _split("diabetes_classes")
    for algorithm in ("kd_tree", "brute"):
        est = KNeighborsClassifier(5, algorithm=algorithm).fit(X, y)
        exporters.export(est, tmp_path / algorithm, sample=X[:5])
        model = scorer.load(tmp_path / algorithm)
        bad = Xt[:3].copy()
        bad[1, 2] = 1e300  # squared distances overflow: no nearest neighbours
        _, ind = est.kneighbors(bad[1:2])
        assert (ind == ind[0, 0]).all()  # scikit-learn: one arbitrary row k times
        with pytest.raises(InputError, match=r"row 1: fewer than k=5 .* overflow to inf"):
            model.predict(bad)
        np.testing.assert_array_equal(model.predict(bad[[0, 2]]), est.predict(bad[[0, 2]]))


def test_conformance_reports_refusal_disagreements_apart(tmp_path):
    """The matrix drops rows only tablescore refuses from the value check and reports them in
    their own cell (``known`` for the listed KNN overflow rows)."""
    import scorer
    from conformance.matrix import Dataset, _refusals, known_bundle_issue

    X, y, Xt = _split("diabetes_classes")
    est = KNeighborsClassifier(5).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X[:5])
    rows = Xt[:4].copy()
    rows[2, 0] = -1e300
    kept, disagree = _refusals(est, scorer.load(tmp_path / "m"), rows)
    assert disagree == [2] and len(kept) == 3
    ds = Dataset("synthetic_binary", "binary", X, y)
    assert "overflows to inf" in known_bundle_issue("KNeighbors", ds, refusals=True)
    assert known_bundle_issue("KNeighbors", ds) is None


def test_neighbors_fitted_on_float32_are_refused(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    with pytest.raises(ExportError, match="KNeighborsRegressor was fitted on float32 data"):
        exporters.export(KNeighborsRegressor().fit(X, X[:, 0]), tmp_path / "b")
