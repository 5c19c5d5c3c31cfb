"""Parity of the XGBoost exporters with XGBoost: bit-exact margins (float32 comparisons and
float32 accumulation), every supported objective, missing / infinite / huge inputs, split
ties, categorical splits, early stopping, dart, and the refusals."""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

xgb = pytest.importorskip("xgboost")

import exporters  # noqa: E402
import scorer  # noqa: E402
from exporters import build_bundle  # noqa: E402
from exporters.xgboost import parse_f32  # noqa: E402
from scorer.errors import ExportError, UnknownCategoryError  # noqa: E402
from scorer.model import Model  # noqa: E402
from tests.datasets import (  # noqa: E402
    audit_categorical,
    hostile_blocks,
    sklearn_dataset,
    synthetic,
    with_ties,
)
from tests.parity import assert_parity, tree_step  # noqa: E402

SMALL = {"n_estimators": 20, "max_depth": 3, "n_jobs": 1, "random_state": 0}


def margins(model: Model, X: Any) -> np.ndarray:
    """The scorer's raw margin columns (the ``tree_ensemble`` outputs) for ``X``."""
    cols = [c for s in model.bundle.steps if s.op == "tree_ensemble" for c in s.outputs]
    return model.columns(X, cols)


def assert_margins_exact(model: Model, est: Any, X: Any) -> None:
    """Leaf selection and float32 accumulation reproduce ``output_margin=True`` bit for bit."""
    want = np.asarray(est.predict(X, output_margin=True), dtype=np.float64).reshape(len(X), -1)
    got = margins(model, X)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def hostile(X: np.ndarray) -> np.ndarray:
    return hostile_blocks(X)


def audit(na: bool) -> tuple[pd.DataFrame, np.ndarray]:
    return audit_categorical(na)


# --- unit tests of the table construction ---------------------------------------------------
def test_parse_f32_rounds_the_decimal_not_the_double() -> None:
    # a decimal just above the float32 midpoint 1 + 2**-24 reads as that midpoint in float64;
    # rounding that double again would give 1.0 (ties to even), the decimal itself gives 1 + 2**-23
    text = "1.00000005960464488"
    assert float(text) == 1.0 + 2.0**-24
    assert parse_f32(text) == 1.0 + 2.0**-23
    assert parse_f32("1.0000000596046447") == 1.0  # just below: rounds down
    for text in ("1.6461702E1", "-2.3826551E0", "1E-45", "3.4028235E38", "0E0"):
        f = parse_f32(text)
        assert f == float(np.float32(f)) == float(np.float32(text))
    assert Fraction("1.00000005960464488") > Fraction(1.0 + 2.0**-24)


@pytest.fixture(scope="module")
def binary() -> tuple[Any, np.ndarray]:
    X, y = sklearn_dataset("breast_cancer")
    return xgb.XGBClassifier(**SMALL).fit(X, y), X


def test_tables_follow_the_spec(binary: tuple[Any, np.ndarray]) -> None:
    est, _ = binary
    step = tree_step(build_bundle(est))
    assert step.params == {"n_outputs": 1, "leaf_width": 1, "aggregation": "sum",
                           "base_score": step.params["base_score"],
                           "accumulate_dtype": "float32", "compare_dtype": "float32",
                           "split_operator": "<"}
    nodes, trees = step.tables["nodes"], step.tables["trees"]
    assert len(trees["root"]) == SMALL["n_estimators"]
    split = nodes["feature"] >= 0
    # thresholds and leaf values are float32 values
    for col in (nodes["threshold"], nodes["value_0"]):
        np.testing.assert_array_equal(col, col.astype(np.float32).astype(np.float64))
    assert (nodes["left"][~split] == -1).all() and (nodes["left"][split] >= 0).all()
    # base_score of a logistic model is a float32 margin: logit of the stored probability
    config = json.loads(est.get_booster().save_config())
    p = float(config["learner"]["learner_model_param"]["base_score"].strip("[]"))
    assert step.params["base_score"][0] == pytest.approx(np.log(p / (1 - p)), rel=1e-6)
    assert "categories" not in step.tables


# --- parity ---------------------------------------------------------------------------------------
def test_binary(binary: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    est, X = binary
    model = assert_parity(est, X, tmp_path / "m")
    assert model.output_names == ["probability(0)", "probability(1)", "label"]
    assert_margins_exact(model, est, X)
    assert model.bundle.verification.abs_tol == 1e-6  # the "xgboost" tolerance was recorded


@pytest.mark.parametrize("name", ["iris", "wine", "digits"])
def test_multiclass(name: str, tmp_path: Path) -> None:
    X, y = sklearn_dataset(name)
    est = xgb.XGBClassifier(**{**SMALL, "n_estimators": 10 if name == "digits" else 20}).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)
    # XGBoost 3 starts softmax models from per-class margins (centred log priors)
    assert len(tree_step(model.bundle).params["base_score"]) == len(est.classes_)


def test_multi_softmax(tmp_path: Path) -> None:
    X, y = sklearn_dataset("wine")
    est = xgb.XGBClassifier(**SMALL, objective="multi:softmax").fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)


@pytest.mark.parametrize("objective", [
    "reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror",
    "reg:logistic", "count:poisson", "reg:gamma", "reg:tweedie"])
def test_regression_objectives(objective: str, tmp_path: Path) -> None:
    X, y = sklearn_dataset("diabetes")
    if objective == "reg:logistic":
        y = (y - y.min()) / (y.max() - y.min())
    est = xgb.XGBRegressor(**SMALL, objective=objective).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)


def test_quantile_regression_several_targets(tmp_path: Path) -> None:
    X, y = sklearn_dataset("diabetes")
    est = xgb.XGBRegressor(**SMALL, objective="reg:quantileerror",
                           quantile_alpha=[0.2, 0.8]).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.output_names == ["value(0)", "value(1)"]
    assert_margins_exact(model, est, X)


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_multi_output_trees(name: str, tmp_path: Path) -> None:
    X, y = sklearn_dataset(name)
    kw = {"objective": "reg:quantileerror", "quantile_alpha": [0.2, 0.8]}
    cls = xgb.XGBRegressor if name == "diabetes" else xgb.XGBClassifier
    est = cls(**SMALL, multi_strategy="multi_output_tree", tree_method="hist",
              **(kw if name == "diabetes" else {})).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    step = tree_step(model.bundle)
    assert step.params["leaf_width"] == step.params["n_outputs"] > 1  # vector leaves
    assert_margins_exact(model, est, X)


def test_logitraw_label_is_margin_above_one_half(tmp_path: Path) -> None:
    X, y = sklearn_dataset("breast_cancer")
    est = xgb.XGBClassifier(**SMALL, objective="binary:logitraw").fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.output_names == ["label"]
    assert_margins_exact(model, est, X)
    label = model.bundle.outputs[0]
    assert (label.rule, label.threshold) == ("threshold", 0.5)  # XGBoost: margin > 0.5


@pytest.fixture(scope="module")
def synthetic_model() -> tuple[Any, np.ndarray]:
    X = synthetic(600, 8, nan=True)
    # XGBoost refuses to train on values beyond float32; it scores them (as +/-inf)
    X[np.abs(X) > 1e30] = np.nan
    y = ((np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) + np.nan_to_num(X[:, 2]) / 1e6) > 2)
    est = xgb.XGBClassifier(**{**SMALL, "n_estimators": 30, "max_depth": 5}).fit(X, y)
    return est, synthetic(600, 8, nan=True, inf=True)


def test_nan_inf_huge_tiny(synthetic_model: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    est, X = synthetic_model
    X = hostile(X)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)
    assert all(f.missing == "allow" and f.infinite == "allow" for f in model.bundle.inputs)


def test_split_ties(synthetic_model: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    est, X = synthetic_model
    nodes = tree_step(build_bundle(est)).tables["nodes"]
    split = nodes["feature"] >= 0
    X = with_ties(X, nodes["threshold"][split], nodes["feature"][split])
    # float64 neighbours of float32 thresholds round onto them: "<" must see the tie
    for r, (t, f) in enumerate(zip(nodes["threshold"][split][:100],
                                   nodes["feature"][split][:100], strict=True)):
        X[200 + r, f] = np.nextafter(t, np.inf if r % 2 else -np.inf)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)


def test_audit_numeric_with_missing_values(tmp_path: Path) -> None:
    df, y = audit(na=True)
    X = df[["Age", "Income", "Deductions", "Hours"]]
    est = xgb.XGBClassifier(**SMALL).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert model.input_names == ["Age", "Income", "Deductions", "Hours"]
    assert_margins_exact(model, est, X)


@pytest.mark.parametrize("onehot", [1, 64], ids=["partition", "onehot"])
def test_audit_categorical(onehot: int, tmp_path: Path) -> None:
    df, y = audit(na=True)
    est = xgb.XGBClassifier(**SMALL, enable_categorical=True,
                            max_cat_to_onehot=onehot).fit(df, y)
    model = assert_parity(est, df, tmp_path / "m")
    assert_margins_exact(model, est, df)
    step = tree_step(model.bundle)
    assert "categories" in step.tables and (step.tables["nodes"]["kind"] == 1).any()
    field = model.bundle.field("Education")
    assert field.categories == list(df["Education"].cat.categories)
    # a frame whose categories are ordered differently scores the same (matched by name)
    shuffled = df.copy()
    shuffled["Education"] = shuffled["Education"].cat.reorder_categories(
        list(reversed(df["Education"].cat.categories)))
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(df))
    # XGBoost refuses a category it never saw; so does the bundle
    with pytest.raises(UnknownCategoryError):
        model.predict({**df.iloc[0].to_dict(), "Education": "Kindergarten"})


def test_audit_categorical_complete_data(tmp_path: Path) -> None:
    df, y = audit(na=False)
    est = xgb.XGBClassifier(**SMALL, enable_categorical=True).fit(df, y)
    model = assert_parity(est, df, tmp_path / "m")
    assert_margins_exact(model, est, df)


def test_early_stopping_uses_best_iteration(tmp_path: Path) -> None:
    X, y = sklearn_dataset("breast_cancer")
    est = xgb.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.5,
                            early_stopping_rounds=3, n_jobs=1)
    est.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])], verbose=False)
    assert est.best_iteration + 1 < est.get_booster().num_boosted_rounds()
    model = assert_parity(est, X, tmp_path / "m")
    assert len(tree_step(model.bundle).tables["trees"]["root"]) == est.best_iteration + 1
    assert_margins_exact(model, est, X)


def test_random_forest_and_parallel_trees(tmp_path: Path) -> None:
    X, y = sklearn_dataset("iris")
    est = xgb.XGBRFClassifier(n_estimators=8, max_depth=3, n_jobs=1, random_state=0).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    assert_margins_exact(model, est, X)


@pytest.mark.parametrize("name", ["breast_cancer", "wine"])
def test_dart(name: str, tmp_path: Path) -> None:
    X, y = sklearn_dataset(name)
    est = xgb.XGBClassifier(**SMALL, booster="dart", rate_drop=0.3, skip_drop=0.0).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    scales = tree_step(model.bundle).tables["trees"]["scale"]
    assert (scales != 1.0).any()
    # in-place prediction (the scikit-learn API) adds (float32(base + leaf) - base) * w
    assert_margins_exact(model, est, X)


@pytest.mark.parametrize("booster_type", ["gbtree", "dart"])
def test_raw_booster(booster_type: str) -> None:
    X, y = sklearn_dataset("wine")
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1,
              "booster": booster_type, **({"rate_drop": 0.3} if booster_type == "dart" else {})}
    booster = xgb.train(params, xgb.DMatrix(X, y), 10)
    bundle = build_bundle(booster, feature_names=[f"f{i}" for i in range(X.shape[1])])
    model = Model(bundle)
    # Booster.predict(DMatrix): margins bit-exact, probabilities in float32 precision
    step = tree_step(bundle)
    got = model.columns(X, step.outputs)
    want = booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_array_equal(got, want)
    proba = booster.predict(xgb.DMatrix(X))
    for j in range(3):
        np.testing.assert_allclose(model.score_arrays(X)[f"value({j})"], proba[:, j],
                                   rtol=1e-6, atol=1e-6)
    # a DMatrix refuses inf and values beyond float32; so does the bundle
    for bad in (np.inf, 1e300):
        Xb = X[:3].copy()
        Xb[1, 2] = bad
        with pytest.raises(xgb.core.XGBoostError):
            booster.predict(xgb.DMatrix(Xb))
        with pytest.raises(scorer.errors.InputError):
            model.predict(Xb)


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["binary:hinge", "survival:cox"])
def test_unsupported_objective_is_named(objective: str) -> None:
    X, y = sklearn_dataset("breast_cancer")
    cls = xgb.XGBClassifier if objective.startswith("binary") else xgb.XGBRegressor
    est = cls(n_estimators=2, max_depth=2, n_jobs=1, objective=objective).fit(
        X, y if objective.startswith("binary") else y + 1)
    with pytest.raises(ExportError, match=objective):
        build_bundle(est)


def test_unsupported_booster_and_missing() -> None:
    X, y = sklearn_dataset("diabetes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = xgb.XGBRegressor(n_estimators=2, booster="gblinear").fit(X, y)
    with pytest.raises(ExportError, match="gblinear"):
        build_bundle(est)
    est = xgb.XGBRegressor(n_estimators=2, max_depth=2, missing=0.0).fit(X, y)
    with pytest.raises(ExportError, match="missing"):
        build_bundle(est)


def test_non_string_categories_are_refused() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": pd.Categorical(rng.integers(0, 5, 300) * 10),
                       "b": rng.normal(size=300)})
    est = xgb.XGBClassifier(n_estimators=2, max_depth=2, enable_categorical=True).fit(
        df, (df["a"].astype(int) > 20).astype(int))
    with pytest.raises(ExportError, match="non-string categories"):
        build_bundle(est, sample=df)


def test_export_round_trip_through_registry(binary: tuple[Any, np.ndarray],
                                            tmp_path: Path) -> None:
    est, X = binary
    assert "xgboost.XGBClassifier" in exporters.supported()
    exporters.export(est, tmp_path / "m", sample=X[:10])
    np.testing.assert_array_equal(scorer.load(tmp_path / "m").predict(X), est.predict(X))


def test_raw_booster_exports_with_verification_rows(tmp_path) -> None:
    import exporters

    X, y = sklearn_dataset("breast_cancer")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, y), 10)
    exporters.export(booster, tmp_path / "b", sample=X,
                     feature_names=[f"f{i}" for i in range(X.shape[1])])
    model = scorer.load(tmp_path / "b")  # re-checks the recorded Booster.predict outputs
    assert model.bundle.verification is not None
    np.testing.assert_allclose(model.predict(X), booster.predict(xgb.DMatrix(X)),
                               rtol=1e-6, atol=1e-6)


def test_raw_booster_on_pandas_category_columns(tmp_path) -> None:
    """A Booster trained with enable_categorical on a category column: exported (computing
    its reference outputs needed a DMatrix that allows categories) and scoring as it does."""
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"n": rng.normal(size=600),
                       "s": pd.Categorical(rng.choice(["a", "b", "c", "d"], 600))})
    df.loc[df.index[::17], "s"] = np.nan
    y = ((df["n"] > 0) ^ (df["s"] == "b")).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(df, y, enable_categorical=True), 15)
    exporters.export(booster, tmp_path / "b", sample=df)
    model = scorer.load(tmp_path / "b")
    np.testing.assert_allclose(model.predict(df),
                               booster.predict(xgb.DMatrix(df, enable_categorical=True)),
                               rtol=1e-6, atol=1e-6)


def test_a_logistic_base_score_is_clamped_as_xgboost_clamps_it(tmp_path: Path) -> None:
    X, y = sklearn_dataset("breast_cancer")
    for k, (cls, bs) in enumerate(((xgb.XGBClassifier, 1e-8), (xgb.XGBRegressor, 0.9999999))):
        kw = {"objective": "reg:logistic"} if cls is xgb.XGBRegressor else {}
        est = cls(base_score=bs, **SMALL, **kw).fit(X, y)
        # without a sample too: the margin of 1e-8 was logit(1e-8), 4.6 below XGBoost's
        exporters.export(est, tmp_path / f"b{k}")
        model = scorer.load(tmp_path / f"b{k}")
        assert_margins_exact(model, est, X)


def test_integer_categories_refuse_what_xgboost_did_not_see(tmp_path: Path) -> None:
    from scorer.errors import InputError

    rng = np.random.default_rng(17)
    df = pd.DataFrame({"num": rng.normal(size=400),
                       "c": pd.Categorical(rng.choice([0, 1, 2, 3, 4, 5], 400))})
    y = df["num"].to_numpy() + (df["c"].astype(int).to_numpy() % 3)
    est = xgb.XGBRegressor(enable_categorical=True, tree_method="hist", **SMALL).fit(df, y)
    model = assert_parity(est, df, tmp_path / "b")
    q = pd.DataFrame({"num": [0.1, 0.1], "c": pd.Categorical([1, 9])})
    with pytest.raises(ValueError, match="category not in the training set"):
        est.predict(q)
    for bad in (9, -1, 2.5):
        with pytest.raises(InputError, match="row 1: XGBoost: 'c' holds a category the model "
                                             "did not see in training"):
            model.predict({"num": np.array([0.1, 0.1]), "c": np.array([1.0, bad])})
    # missing follows the default branch, as in XGBoost
    got = model.predict({"num": np.array([0.1]), "c": np.array([np.nan])})
    want = est.predict(pd.DataFrame({"num": [0.1], "c": pd.Categorical([np.nan],
                                                                       categories=range(6))}))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_models_without_trees_are_refused_and_float32_nan_missing_is_nan() -> None:
    X, y = sklearn_dataset("breast_cancer")
    with pytest.raises(ExportError, match="without trees"):
        build_bundle(xgb.XGBClassifier(n_estimators=0).fit(X, y))
    est = xgb.XGBClassifier(missing=np.float32("nan"), **SMALL).fit(X, y)
    build_bundle(est, sample=X[:20])  # (refused as 'only missing=NaN')


def test_a_raw_booster_takes_its_own_feature_names_not_the_samples_order(tmp_path) -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    y = df["a"] * 3 - df["c"]
    bst = xgb.train({"max_depth": 3}, xgb.DMatrix(df, label=y), num_boost_round=10)
    exporters.export(bst, tmp_path / "b", sample=df[["c", "b", "a"]])
    model = scorer.load(tmp_path / "b")
    assert [f.name for f in model.bundle.inputs] == ["a", "b", "c"]
    np.testing.assert_allclose(model.predict(df), bst.predict(xgb.DMatrix(df)), rtol=1e-6)
