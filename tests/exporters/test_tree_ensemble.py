"""Family ``tree_ensemble``: scikit-learn trees, forests and gradient boosting, original ==
kernel == reference, on bundled, shared and hostile synthetic data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import ensemble, tree
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

import exporters
import scorer
from scorer.errors import ExportError, FieldTypeError, MissingValueError
from tests.datasets import shared_csv, sklearn_dataset, synthetic, with_ties
from tests.parity import assert_parity

# Hostile inputs (1e300, inf) make numpy and scikit-learn warn about overflow; expected here.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")



@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    """HistGradientBoosting fits with OpenMP; on a busy 2-core runner its spinning threads
    make a 0.1 s fit take seconds. One thread keeps these small fits fast and steady."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


SMALL = {"random_state": 0}
FOREST = {"n_estimators": 20, "max_depth": 6, "random_state": 0}
BOOST = {"n_estimators": 20, "max_depth": 3, "random_state": 0}
HIST = {"max_iter": 20, "random_state": 0}

CLASSIFIERS = {
    "dt": lambda: tree.DecisionTreeClassifier(max_depth=8, **SMALL),
    "et1": lambda: tree.ExtraTreeClassifier(max_depth=8, **SMALL),
    "rf": lambda: ensemble.RandomForestClassifier(**FOREST),
    "et": lambda: ensemble.ExtraTreesClassifier(**FOREST),
    "gb": lambda: ensemble.GradientBoostingClassifier(**BOOST),
    "hgb": lambda: ensemble.HistGradientBoostingClassifier(**HIST),
}
REGRESSORS = {
    "dt": lambda: tree.DecisionTreeRegressor(max_depth=8, **SMALL),
    "et1": lambda: tree.ExtraTreeRegressor(max_depth=8, **SMALL),
    "rf": lambda: ensemble.RandomForestRegressor(**FOREST),
    "et": lambda: ensemble.ExtraTreesRegressor(**FOREST),
    "gb": lambda: ensemble.GradientBoostingRegressor(**BOOST),
    "gb_huber": lambda: ensemble.GradientBoostingRegressor(loss="huber", **BOOST),
    "hgb": lambda: ensemble.HistGradientBoostingRegressor(**HIST),
    "hgb_poisson": lambda: ensemble.HistGradientBoostingRegressor(loss="poisson", **HIST),
}
# digits has 10 classes: GradientBoosting fits 10 trees per stage; keep it to a few stages
DATASETS = ("iris", "wine", "breast_cancer", "digits")


def _ties(t, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows of ``X`` moved onto the split thresholds of ``t`` (a ``tree_``). A split that only
    separates missing values has threshold +inf, which scikit-learn refuses as input."""
    ok = (t.children_left >= 0) & np.isfinite(t.threshold)
    return with_ties(X, t.threshold[ok], t.feature[ok], seed=seed)


def _tie_rows(est, X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` moved onto the split thresholds of the estimator's first tree."""
    first = np.ravel(getattr(est, "estimators_", [est]))[0]
    return _ties(first.tree_, X)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifiers(tmp_path, name, dataset):
    X, y = sklearn_dataset(dataset)
    est = CLASSIFIERS[name]()
    if name == "gb" and dataset == "digits":
        est.set_params(n_estimators=5)
    est.fit(X, y)
    if name != "hgb":
        X = np.vstack([X, _tie_rows(est, X[:200])])
    assert_parity(est, X, tmp_path / "m")


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressors(tmp_path, name):
    X, y = sklearn_dataset("diabetes")
    est = REGRESSORS[name]().fit(X, y)
    if not name.startswith("hgb"):
        X = np.vstack([X, _tie_rows(est, X)])
    assert_parity(est, X, tmp_path / "m")


def test_gradient_boosting_exponential_loss(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = ensemble.GradientBoostingClassifier(loss="exponential", **BOOST).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_gradient_boosting_init_zero_and_subsample(tmp_path):
    X, y = sklearn_dataset("wine")
    est = ensemble.GradientBoostingClassifier(init="zero", subsample=0.7, **BOOST).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


# --- exact leaf selection --------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_xy():
    X = synthetic(600, 8, nan=True)
    X[np.abs(X) > 1e30] = 1e30  # scikit-learn's trees refuse values beyond float32
    rng = np.random.default_rng(0)
    y = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 1]) + rng.normal(size=len(X))
    return X, y


def test_decision_tree_regressor_is_exact(tmp_path, synthetic_xy):
    """Every leaf holds a distinct value, so equal outputs mean the same leaf."""
    X, y = synthetic_xy
    est = tree.DecisionTreeRegressor(min_samples_leaf=1, random_state=0).fit(X, y)
    Xt = np.vstack([X, _tie_rows(est, X)])
    model = assert_parity(est, Xt, tmp_path / "m")
    leaf_values = est.tree_.value[:, 0, 0][est.apply(Xt)]
    np.testing.assert_array_equal(model.predict(Xt), leaf_values)
    np.testing.assert_array_equal(model.predict(Xt, reference=True), leaf_values)
    np.testing.assert_array_equal(model.predict(Xt), est.predict(Xt))


@pytest.mark.parametrize("name", ["dt", "rf", "et", "et1", "hgb"])
def test_missing_values(tmp_path, synthetic_xy, name):
    X, y = synthetic_xy
    est = REGRESSORS[name]().fit(X, y)
    Xt = X.copy()
    Xt[::3, :] = np.nan  # whole rows missing, and features never missing in training
    assert_parity(est, np.vstack([X, Xt]), tmp_path / "m")


@pytest.mark.parametrize("name", ["dt", "rf", "gb", "hgb"])
def test_classifier_on_hostile_values(tmp_path, synthetic_xy, name):
    X, _ = synthetic_xy
    y = (np.nan_to_num(X[:, 0]) > 2).astype(int) + (np.nan_to_num(X[:, 2]) > 0)
    if name == "gb":
        X = np.nan_to_num(X)
    est = CLASSIFIERS[name]().fit(X, y)
    assert_parity(est, X, tmp_path / "m")


def test_forest_with_ties_in_every_tree(tmp_path, synthetic_xy):
    X, y = synthetic_xy
    est = ensemble.RandomForestRegressor(**FOREST).fit(X, y)
    parts = [X]
    for t in est.estimators_[:5]:
        parts.append(_ties(t.tree_, X, seed=1))
    model = assert_parity(est, np.vstack(parts), tmp_path / "m")
    # float64 accumulation in tree order: bit-identical to scikit-learn, not just close
    np.testing.assert_array_equal(model.predict(np.vstack(parts)), est.predict(np.vstack(parts)))


# --- what the original refuses, the scorer refuses -------------------------------------------
@pytest.mark.parametrize("name", ["dt", "rf", "gb"])
def test_trees_refuse_inf_and_float32_overflow(tmp_path, name):
    X, y = sklearn_dataset("diabetes")
    est = REGRESSORS[name]().fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    for bad, error in ((np.inf, FieldTypeError), (-np.inf, FieldTypeError),
                       (1e300, FieldTypeError), (-3.5e38, FieldTypeError)):
        Xb = X[:5].copy()
        Xb[3, 2] = bad
        with pytest.raises(ValueError, match="infinity or a value too large"):
            est.predict(Xb)
        with pytest.raises(error, match="row 3"):
            model.predict(Xb)
    Xb = X[:5].copy()
    Xb[3, 2] = 3e38  # still a float32: both accept
    np.testing.assert_array_equal(model.predict(Xb), est.predict(Xb))


def test_gradient_boosting_refuses_nan(tmp_path):
    X, y = sklearn_dataset("diabetes")
    est = ensemble.GradientBoostingRegressor(**BOOST).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    Xb = X[:3].copy()
    Xb[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(Xb)
    with pytest.raises(MissingValueError):
        model.predict(Xb)


def test_hist_gradient_boosting_accepts_inf_and_huge(tmp_path):
    X = synthetic(400, 6, nan=True, inf=True)
    y = np.nan_to_num(X[:, 0], posinf=5, neginf=-5) + np.nan_to_num(X[:, 2] / 1e6)
    est = ensemble.HistGradientBoostingRegressor(**HIST).fit(X, y)
    assert_parity(est, X, tmp_path / "m")


# --- label rules -----------------------------------------------------------------------------
def test_binary_label_rules_at_zero_margin(tmp_path):
    """GradientBoosting predicts classes_[raw >= 0], HistGradientBoosting classes_[raw > 0]."""
    X = np.zeros((4, 1))
    y = np.array(["a", "b", "a", "b"])
    gb = ensemble.GradientBoostingClassifier(init="zero", n_estimators=2).fit(X, y)
    hgb = ensemble.HistGradientBoostingClassifier(max_iter=2).fit(X, y)
    for est, want in ((gb, "b"), (hgb, "a")):
        assert est.decision_function(X[:1])[0] == 0.0
        assert est.predict(X[:1])[0] == want
        model = assert_parity(est, X, tmp_path / type(est).__name__)
        assert model.predict(X[:1])[0] == want


# --- shared data -----------------------------------------------------------------------------
AUDIT_NUMERIC = ["Age", "Income", "Hours"]


def test_audit_forest_and_boosting(tmp_path):
    df = shared_csv("Audit.csv")
    X = df[AUDIT_NUMERIC].astype(float)
    y = df["Adjusted"]
    for i, est in enumerate((ensemble.RandomForestClassifier(**FOREST),
                             ensemble.GradientBoostingClassifier(**BOOST))):
        est.fit(X, y)
        assert_parity(est, X, tmp_path / f"m{i}")


def test_audit_na_imputed_forest_and_native_missing(tmp_path):
    df = shared_csv("AuditNA.csv")
    X = df[AUDIT_NUMERIC].astype(float)  # about 5% missing per column
    y = df["Adjusted"]
    pipe = make_pipeline(SimpleImputer(strategy="median"),
                         ensemble.ExtraTreesClassifier(**FOREST)).fit(X, y)
    assert_parity(pipe, X, tmp_path / "pipe")
    hgb = ensemble.HistGradientBoostingClassifier(**HIST).fit(X, y)
    assert_parity(hgb, X, tmp_path / "hgb")


def test_audit_na_native_categorical_from_dtype(tmp_path):
    """pandas ``category`` columns with missing values: HistGradientBoosting's native splits."""
    df = shared_csv("AuditNA.csv")
    cats = ["Employment", "Education", "Marital", "Occupation", "Gender"]
    X = df[[*cats, "Age", "Income", "Hours"]].copy()
    for c in cats:
        X[c] = X[c].astype("category")
    y = df["Adjusted"]
    est = ensemble.HistGradientBoostingClassifier(**HIST).fit(X, y)
    assert est.is_categorical_.sum() == len(cats)
    model = assert_parity(est, X, tmp_path / "m")
    # an unseen category is treated as missing by scikit-learn and by the bundle
    Xu = X.iloc[:20].copy()
    for c in cats:
        Xu[c] = Xu[c].cat.add_categories(["never seen"])
        Xu.loc[Xu.index[::2], c] = "never seen"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = est.predict_proba(Xu)
    np.testing.assert_allclose(model.predict_proba(Xu), want, rtol=1e-12, atol=1e-12)


def test_audit_na_ordinal_encoded_categories_in_a_pipeline(tmp_path):
    """OrdinalEncoder codes into HistGradientBoosting's integer-coded categorical splits."""
    df = shared_csv("AuditNA.csv")
    cats = ["Employment", "Education", "Marital", "Occupation", "Gender"]
    X = df[[*cats, "Age", "Income", "Hours"]]
    encode = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value",
                                                       unknown_value=np.nan), cats)],
                               remainder="passthrough")
    pipe = make_pipeline(encode, ensemble.HistGradientBoostingClassifier(
        categorical_features=list(range(len(cats))), **HIST)).fit(X, df["Adjusted"])
    assert_parity(pipe, X, tmp_path / "m")


def test_housing_regression(tmp_path):
    df = shared_csv("Housing.csv")
    X, y = df.drop(columns="MEDV"), df["MEDV"]
    for i, est in enumerate((ensemble.RandomForestRegressor(**FOREST),
                             ensemble.HistGradientBoostingRegressor(**HIST))):
        est.fit(X, y)
        assert_parity(est, X, tmp_path / f"m{i}")


# --- native categorical splits, integer-coded --------------------------------------------------
@pytest.fixture(scope="module")
def categorical_xy():
    rng = np.random.default_rng(1)
    n = 1500
    X = synthetic(n, 7, nan=True)
    X[:, 3] = np.clip(X[:, 3], -1e6, 1e6)
    X[:, 5] = rng.integers(0, 12, n)
    X[rng.random(n) < 0.05, 5] = np.nan
    X[:, 6] = rng.choice([0, 3, 7, 40, 100, 250], n)
    y = ((np.nan_to_num(X[:, 5]) % 3 == 0) ^ (X[:, 6] > 5)
         ^ (np.nan_to_num(X[:, 0]) > 2)).astype(int)
    return X, y


@pytest.mark.parametrize("kind", ["classifier", "regressor", "multiclass"])
def test_hist_gradient_boosting_integer_categories(tmp_path, categorical_xy, kind):
    X, y = categorical_xy
    if kind == "classifier":
        est = ensemble.HistGradientBoostingClassifier(categorical_features=[5, 6], **HIST)
    elif kind == "multiclass":
        y = y + (np.nan_to_num(X[:, 5]) > 8)
        est = ensemble.HistGradientBoostingClassifier(categorical_features=[5, 6], **HIST)
    else:
        y = y * 3.0 + np.nan_to_num(X[:, 1])
        est = ensemble.HistGradientBoostingRegressor(categorical_features=[5, 6], **HIST)
    est.fit(X, y)
    Xt = X[:40].copy()
    # unseen, negative, fractional and huge categories go where a missing value goes
    Xt[:, 5] = [-1, 13, 50, 2, np.nan, 1e300, -1e300, 0, 11, 12, 2.5, 0.25, -0.0, 3] * 2 + [
        7, 4, 9, 10, 1, 2.0000001, 5, 6, 8, 11, 12, 3]
    Xt[:, 6] = [1, 2, 3, 4, 5, 6, 0, 7, -3, 99] * 4
    assert_parity(est, np.vstack([X, Xt]), tmp_path / "m")


def test_hist_gradient_boosting_categorical_refuses_inf(tmp_path, categorical_xy):
    X, y = categorical_xy
    est = ensemble.HistGradientBoostingClassifier(categorical_features=[5], **HIST).fit(X, y)
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    Xb = X[:3].copy()
    Xb[1, 5] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.predict(Xb)
    with pytest.raises(FieldTypeError):
        model.predict(Xb)
    Xb = X[:3].copy()
    Xb[1, 0] = np.inf  # a numeric column: both accept
    np.testing.assert_array_equal(model.predict(Xb), est.predict(Xb))


# --- unsupported -----------------------------------------------------------------------------
def test_multi_output_is_refused(tmp_path):
    X, y = sklearn_dataset("diabetes")
    Y = np.column_stack([y, -y])
    for est in (tree.DecisionTreeRegressor(max_depth=3), ensemble.RandomForestRegressor(3)):
        est.fit(X, Y)
        with pytest.raises(ExportError, match=rf"{type(est).__name__} .*multi-output"):
            exporters.export(est, tmp_path / "m", sample=X)


def test_custom_init_estimator_is_refused(tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = sklearn_dataset("diabetes")
    est = ensemble.GradientBoostingRegressor(init=LinearRegression(), n_estimators=3).fit(X, y)
    with pytest.raises(ExportError, match="GradientBoostingRegressor with init=LinearRegression"):
        exporters.export(est, tmp_path / "m", sample=X)


def test_string_column_into_a_tree_is_refused(tmp_path):
    df = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": [1.0, 2.0, 3.0, 4.0]})
    est = tree.DecisionTreeRegressor().fit(df[["b"]], [1, 2, 3, 4])
    est.feature_names_in_ = np.array(["a"], dtype=object)
    with pytest.raises(ExportError, match="string column 'a'"):
        exporters.export(est, tmp_path / "m", sample=df[["a"]])


# --- random trees (hypothesis) ---------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), depth=st.integers(1, 12),
       n_features=st.integers(1, 5), nan=st.booleans(),
       splitter=st.sampled_from(["best", "random"]))
def test_random_decision_trees(tmp_path_factory, seed, depth, n_features, nan, splitter):
    rng = np.random.default_rng(seed)
    n = 200
    X = np.round(rng.normal(size=(n, n_features)) * 3, 1)  # one decimal: ties everywhere
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.normal(size=n)
    est = tree.DecisionTreeRegressor(max_depth=depth, splitter=splitter,
                                     random_state=seed).fit(X, y)
    Xt = np.vstack([X, _ties(est.tree_, X, seed=seed)])
    model = assert_parity(est, Xt, tmp_path_factory.mktemp("dt") / "m", check_single_rows=2)
    np.testing.assert_array_equal(model.predict(Xt), est.predict(Xt))
