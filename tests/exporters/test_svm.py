"""Family ``svm``: scikit-learn's libsvm estimators, original == kernel == reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

import exporters
from scorer.errors import ExportError, InputError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

KERNELS = ["linear", "poly", "rbf", "sigmoid"]


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = sklearn_dataset(name)
    return StandardScaler().fit_transform(X), y


def _kw(kernel: str) -> dict:
    # a small gamma keeps the sigmoid kernel out of saturation (a fit of all-equal votes)
    return {"kernel": kernel, "gamma": 0.05} if kernel == "sigmoid" else {"kernel": kernel}


@pytest.mark.parametrize("kernel", KERNELS)
def test_svc_multiclass_ovr(kernel, tmp_path):
    X, y = _data("iris")
    est = SVC(**_kw(kernel)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert [s.op for s in model.bundle.steps] == ["svm", "svm_vote", "svm_vote"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_svc_break_ties_and_nusvc(kernel, tmp_path):
    X, y = _data("wine")
    assert_parity(SVC(break_ties=True, C=0.5, **_kw(kernel)).fit(X, y), X, tmp_path / "a")
    assert_parity(NuSVC(nu=0.3, **_kw(kernel)).fit(X, y), X, tmp_path / "b")


@pytest.mark.parametrize("kernel", KERNELS)
def test_binary_svc(kernel, tmp_path):
    X, y = _data("breast_cancer")
    est = SVC(degree=2, coef0=1.0, **_kw(kernel)).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_ovo_shape_exports_the_label(tmp_path):
    X, y = _data("wine")
    est = SVC(decision_function_shape="ovo").fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert [o.kind for o in model.bundle.outputs] == ["label"]


PROBA_CASES = [
    ("breast_cancer", SVC, {}),                                   # binary
    ("breast_cancer", NuSVC, {"kernel": "sigmoid", "gamma": 0.05, "nu": 0.3}),
    ("iris", SVC, {}),                                            # 3 classes, ovr
    ("iris", SVC, {"kernel": "poly", "decision_function_shape": "ovo"}),
    ("wine", NuSVC, {"kernel": "linear"}),
    ("digits", SVC, {"kernel": "rbf"}),                           # 10 classes, 45 machines
]


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated")
@pytest.mark.parametrize(("dataset", "cls", "kw"), PROBA_CASES,
                         ids=[f"{d}-{c.__name__}-{kw.get('kernel', 'rbf')}"
                              for d, c, kw in PROBA_CASES])
def test_probability_models_export_predict_proba(dataset, cls, kw, tmp_path):
    """libsvm's Platt sigmoids + pairwise coupling: predict_proba within 1e-12 of the
    original (rounding of the decisions only), labels identical, and the bundle's own
    verification rows hold the probabilities."""
    X, y = _data(dataset)
    if dataset == "digits":
        X, y = X[:600], y[:600]
    est = cls(probability=True, random_state=0, **kw).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    import scorer

    model = scorer.load(tmp_path / "m")
    probs = [o for o in model.bundle.outputs if o.kind == "probability"]
    assert [o.class_label for o in probs] == est.classes_.tolist()
    assert set(model.bundle.verification.expected) >= {o.name for o in probs}
    want = est.predict_proba(X)
    for reference in (False, True):
        got = model.predict_proba(X, reference=reference)
        assert np.abs(got - want).max() <= 1e-12
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated")
def test_models_without_probability_have_no_probability_outputs(tmp_path):
    X, y = _data("iris")
    model = assert_parity(SVC().fit(X, y), X, tmp_path / "m")
    assert not [o for o in model.bundle.outputs if o.kind == "probability"]
    assert not [s for s in model.bundle.steps if s.op == "svm_probability"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_regressors(kernel, tmp_path):
    X, y = _data("wine")
    target = X[:, 0] * 3 + y  # a continuous target
    assert_parity(SVR(C=3.0, **_kw(kernel)).fit(X[:, 1:], target), X[:, 1:], tmp_path / "a")
    Xs = synthetic(300, 3, seed=kernel.__len__())
    Xs = StandardScaler().fit_transform(Xs)
    ys = Xs[:, 0] - 2 * Xs[:, 1] ** 2
    assert_parity(NuSVR(nu=0.4, degree=3, **_kw(kernel)).fit(Xs, ys), Xs, tmp_path / "b")


@pytest.mark.parametrize("kernel", KERNELS)
def test_one_class_svm(kernel, tmp_path):
    X, _ = _data("iris")
    est = OneClassSVM(nu=0.2, **_kw(kernel)).fit(X)
    assert_parity(est, X, tmp_path / "m")


def test_sparse_fit_scores_like_dense(tmp_path):
    from scipy import sparse

    X, y = _data("iris")
    est = SVC().fit(sparse.csr_matrix(X), y)
    assert_parity(est, X, tmp_path / "m")


def test_vote_ties_go_to_the_lowest_class(tmp_path):
    # a 3-class model where some rows split the vote 1-1-1: libsvm picks the lowest index,
    # which is not the argmax of the ovr decision (what break_ties=True picks)
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.9]])
    X = np.concatenate([c + 0.45 * rng.normal(size=(60, 2)) for c in centers])
    y = np.repeat([0, 1, 2], 60)
    est = SVC(kernel="rbf", C=1.0).fit(X, y)
    grid = np.array([[a, b] for a in np.linspace(-1, 2, 61) for b in np.linspace(-1, 2, 61)])
    dec = est.decision_function(grid)
    tied = (np.floor(dec + 0.5) == 1).all(axis=1)
    assert tied.any() and (np.argmax(dec[tied], axis=1) != 0).any(), "need 1-1-1 ties"
    model = assert_parity(est, grid, tmp_path / "m")
    assert (model.score_arrays(grid[tied])["label"] == 0).all()
    est.set_params(break_ties=True)
    model = assert_parity(est, grid, tmp_path / "b")
    assert (model.score_arrays(grid[tied])["label"] == np.argmax(dec[tied], axis=1)).all()


def test_refusals(tmp_path):
    X, y = _data("iris")
    with pytest.raises(ExportError, match="precomputed"):
        exporters.export(SVC(kernel="precomputed").fit(X @ X.T, y), tmp_path / "a",
                         sample=X @ X.T)
    with pytest.raises(ExportError, match="kernel="):
        exporters.export(SVC(kernel=lambda a, b: a @ b.T).fit(X, y), tmp_path / "b", sample=X)
    bundle_path = tmp_path / "c"
    exporters.export(SVC().fit(X, y), bundle_path, sample=X)
    import scorer

    model = scorer.load(bundle_path)
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(InputError):
        model.score_arrays(bad)
