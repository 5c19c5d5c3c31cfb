"""Family ``linear``: every supported scikit-learn linear model, original == kernel == reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import linear_model as lm
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR

from scorer.errors import UnsupportedEstimatorError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity

CLASSIFIERS = {
    "logreg": lambda: lm.LogisticRegression(max_iter=2000),
    "logreg_l1": lambda: lm.LogisticRegression(l1_ratio=1.0, solver="saga", max_iter=3000),
    "sgd_log": lambda: lm.SGDClassifier(loss="log_loss", random_state=0),
    "sgd_hinge": lambda: lm.SGDClassifier(random_state=0),
    "linear_svc": lambda: LinearSVC(random_state=0),
    "ridge_clf": lambda: lm.RidgeClassifier(),
    "perceptron": lambda: lm.Perceptron(random_state=0),
}
REGRESSORS = {
    "ols": lm.LinearRegression,
    "ridge": lm.Ridge,
    "lasso": lambda: lm.Lasso(alpha=0.01),
    "enet": lambda: lm.ElasticNet(alpha=0.01),
    "sgd": lambda: lm.SGDRegressor(random_state=0),
    "linear_svr": lambda: LinearSVR(random_state=0, max_iter=5000),
    "huber": lambda: lm.HuberRegressor(max_iter=1000),
    "poisson": lambda: lm.PoissonRegressor(max_iter=1000),
}


# saga (logreg_l1) on digits takes seconds to converge; logreg covers that multinomial path.
CLASSIFIER_CASES = [(name, ds) for name in sorted(CLASSIFIERS)
                    for ds in ("iris", "breast_cancer", "wine", "digits")
                    if (name, ds) != ("logreg_l1", "digits")]


@pytest.mark.parametrize(("name", "dataset"), CLASSIFIER_CASES)
def test_classifiers(tmp_path, name, dataset):
    X, y = sklearn_dataset(dataset)
    est = make_pipeline(StandardScaler(), CLASSIFIERS[name]()).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


@pytest.mark.parametrize("dataset", ["diabetes"])
@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressors(tmp_path, name, dataset):
    X, y = sklearn_dataset(dataset)
    if name == "poisson":
        y = np.abs(y)
    est = make_pipeline(StandardScaler(), REGRESSORS[name]()).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_multi_target_regression(tmp_path):
    X, y = sklearn_dataset("diabetes")
    Y = np.column_stack([y, -2 * y + 1])
    est = lm.Ridge().fit(X, Y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.output_names == ["value(0)", "value(1)"]


def test_string_labels_and_extreme_values(tmp_path):
    X = synthetic(400, 6, seed=3)
    y = np.where(X[:, 4] + X[:, 5] > 0, "yes", "no")
    est = lm.LogisticRegression(max_iter=1000).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert set(model.predict(X[:20])) <= {"yes", "no"}


def test_unsupported_estimator_names_class_and_lists_supported(tmp_path):
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    import exporters

    X, y = sklearn_dataset("iris")
    with pytest.raises(UnsupportedEstimatorError,
                       match=r"no exporter for sklearn.QuadraticDiscriminantAnalysis; "
                             r"supported: .*sklearn.LogisticRegression"):
        exporters.export(QuadraticDiscriminantAnalysis().fit(X, y), tmp_path / "m", sample=X)


@pytest.mark.parametrize("cls", [lm.RidgeClassifier, lm.RidgeClassifierCV])
def test_multilabel_ridge_classifier_is_refused(tmp_path, cls):
    import exporters
    from scorer.errors import ExportError

    X = np.random.default_rng(1).normal(size=(60, 4))
    Y = (X[:, :2] > 0).astype(int)  # two labels: predict gives an indicator per label
    est = cls().fit(X, Y)
    assert est.predict(X[:3]).shape == (3, 2)
    # refused with and without a sample (without one, the bundle gave one label per row)
    for sample in (X[:10], None):
        with pytest.raises(ExportError, match="multilabel target"):
            exporters.export(est, tmp_path / f"b{sample is None}", sample=sample)


def test_a_target_of_shape_n_by_1_keeps_its_shape(tmp_path):
    from sklearn.neighbors import KNeighborsRegressor

    X = np.random.default_rng(2).normal(size=(60, 3))
    y = X[:, :1] * 2 + 1  # (60, 1)
    for k, est in enumerate((lm.LinearRegression(), KNeighborsRegressor(3))):
        est.fit(X, y)
        assert est.predict(X[:4]).shape == (4, 1)
        model = assert_parity(est, X, tmp_path / f"b{k}")
        got = model.predict(X[:4])
        assert got.shape == (4, 1)
        np.testing.assert_allclose(got, est.predict(X[:4]), rtol=1e-12, atol=1e-12)
        assert model.predict(X[0]).shape == (1, 1)  # one row too
    one = lm.Ridge().fit(X, y)  # Ridge ravels: (n,)
    assert assert_parity(one, X, tmp_path / "r").predict(X[:4]).shape == (4,)
