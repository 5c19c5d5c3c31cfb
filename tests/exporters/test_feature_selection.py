"""Feature selectors and FeatureUnion: original == kernel == reference, through bundles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import (
    RFE,
    RFECV,
    SelectFromModel,
    SelectKBest,
    SelectPercentile,
    VarianceThreshold,
    f_regression,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

import exporters
import scorer
from scorer.errors import ExportError, InputError, UnsupportedEstimatorError
from tests.datasets import sklearn_dataset, synthetic
from tests.parity import assert_parity


def _missing_regression() -> tuple[np.ndarray, np.ndarray]:
    X = synthetic(300, 6, seed=1, nan=True)
    X[:, 2] /= 1e6
    X[:, 3] = np.clip(X[:, 3], -5, 5)
    y = np.nan_to_num(X[:, 0]) - 2 * np.nan_to_num(X[:, 3]) + np.nan_to_num(X[:, 4])
    return X, y


SELECTORS = [
    lambda: SelectKBest(k=4),
    lambda: SelectPercentile(percentile=30),
    lambda: SelectFromModel(LogisticRegression(max_iter=2000), max_features=5),
    lambda: VarianceThreshold(threshold=0.5),
    lambda: RFE(LogisticRegression(max_iter=2000), n_features_to_select=4, step=3),
]


@pytest.mark.parametrize("make", SELECTORS)
@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_selector_in_pipeline(make, ds, tmp_path):
    X, y = sklearn_dataset(ds)
    est = make_pipeline(StandardScaler(), make(), LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    selector = est[1]
    n_kept = int(selector.get_support().sum())
    assert len(model.bundle.steps[1].inputs) == n_kept  # the linear step reads the kept ones


@pytest.mark.parametrize("make", [
    *SELECTORS[:2], lambda: SelectFromModel(Lasso(alpha=0.1)),
    lambda: RFE(Ridge(), n_features_to_select=3)])
def test_selector_with_imputer_on_missing_values(make, tmp_path):
    X, y = _missing_regression()
    if isinstance(make(), SelectKBest | SelectPercentile):
        make_sel = lambda: make().set_params(score_func=f_regression)  # noqa: E731
    else:
        make_sel = make
    est = make_pipeline(SimpleImputer(), make_sel(), Ridge()).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)


def test_selector_as_last_step_is_a_transform(tmp_path):
    X, y = sklearn_dataset("wine")
    est = SelectKBest(k=5).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.bundle.task == "transform" and len(model.bundle.outputs) == 5


def test_variance_threshold_accepts_nan_like_sklearn(tmp_path):
    X = synthetic(200, 6, seed=2, nan=True)
    est = VarianceThreshold(0.5).fit(X)
    model = assert_parity(est, X, tmp_path / "m")
    assert all(f.missing == "allow" for f in model.bundle.inputs)


def test_select_k_best_refuses_nan_like_sklearn(tmp_path):
    X, y = sklearn_dataset("wine")
    est = SelectKBest(k=3).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    bad = X[:2].copy()
    bad[0, 5] = np.nan  # a dropped column: scikit-learn's check_array refuses it all the same
    with pytest.raises(ValueError):
        est.transform(bad)
    with pytest.raises(InputError):
        scorer.load(tmp_path / "m").score_arrays(bad)


def test_select_from_model_over_an_unsupported_estimator_still_selects(tmp_path):
    """The selection is the fitted mask: the inner estimator is never scored."""
    X, y = sklearn_dataset("breast_cancer")
    est = make_pipeline(StandardScaler(), SelectFromModel(
        RandomForestClassifier(n_estimators=5, random_state=0), max_features=6),
        LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert len(model.bundle.steps[1].inputs) == 6


def test_rfe_last_step_predicts_and_rfecv_too(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = make_pipeline(StandardScaler(), RFE(LogisticRegression(max_iter=2000),
                                              n_features_to_select=6, step=4)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "a")
    assert [o.name for o in model.bundle.outputs][-1] == "label"
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    cv = make_pipeline(StandardScaler(), RFECV(LogisticRegression(max_iter=2000), step=6,
                                               cv=2)).fit(X, y)
    model = assert_parity(cv, X, tmp_path / "b")
    np.testing.assert_array_equal(model.predict(X), cv.predict(X))


def test_rfe_over_an_unsupported_estimator_is_refused_by_name(tmp_path):
    """As the last step RFE predicts with its estimator: one tablescore cannot score is
    refused naming it; inside a pipeline (selection only) the same RFE exports."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = sklearn_dataset("iris")
    rfe = RFE(LinearDiscriminantAnalysis(), n_features_to_select=2)
    with pytest.raises(UnsupportedEstimatorError, match=r"sklearn\.LinearDiscriminantAnalysis"):
        exporters.build_bundle(rfe.fit(X, y), sample=X)
    est = make_pipeline(rfe, LogisticRegression(max_iter=1000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


def test_unfitted_prefit_selector_is_refused():
    X, y = sklearn_dataset("iris")
    sel = SelectFromModel(LogisticRegression(), prefit=True)
    with pytest.raises(ExportError, match="SelectFromModel: cannot read the selected"):
        exporters.build_bundle(make_pipeline(sel, LogisticRegression().fit(X, y)), sample=X)


# --- FeatureUnion ----------------------------------------------------------------------------
@pytest.mark.parametrize("ds", ["breast_cancer", "wine"])
def test_feature_union_weights_drop_passthrough(ds, tmp_path):
    from sklearn.decomposition import PCA

    X, y = sklearn_dataset(ds)
    union = FeatureUnion([("pca", PCA(3)), ("k", SelectKBest(k=2)), ("gone", "drop"),
                          ("raw", "passthrough")],
                         transformer_weights={"pca": 0.5, "raw": 3})
    est = make_pipeline(StandardScaler(), union, LogisticRegression(max_iter=3000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    # the union alone, as a transform: every column equal to scikit-learn's
    t = make_pipeline(StandardScaler(), union).fit(X, y)
    model = assert_parity(t, X, tmp_path / "t")
    assert len(model.bundle.outputs) == 3 + 2 + X.shape[1]


def test_feature_union_with_imputer_on_missing_values(tmp_path):
    X, y = _missing_regression()
    union = FeatureUnion([("imp", make_pipeline(SimpleImputer(), StandardScaler())),
                          ("ind", SimpleImputer(strategy="constant", fill_value=0.0,
                                                add_indicator=True))],
                         transformer_weights={"ind": 2.0})
    est = make_pipeline(union, Ridge()).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    np.testing.assert_allclose(model.predict(X), est.predict(X), rtol=1e-12, atol=1e-12)


def test_supported_lists_rfecv():
    """RFECV is exported through RFE's exporter; supported() lists it by its own name."""
    import exporters

    assert {"sklearn.RFE", "sklearn.RFECV"} <= set(exporters.supported())
