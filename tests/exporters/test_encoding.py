"""Parity of the ``encoding`` exporters with scikit-learn: OneHotEncoder, OrdinalEncoder and
KBinsDiscretizer, alone and inside pipelines, on known and unseen categories."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

import exporters
import scorer
from exporters.encoding import export_kbins_discretizer, export_ordinal_encoder
from exporters.outputs import expected_outputs
from scorer.build.graph import Graph
from scorer.bundle import read_bundle, write_bundle
from scorer.errors import ExportError, MissingValueError, UnknownCategoryError
from scorer.ir import Field, Verification
from scorer.model import Model, check_close
from tests.datasets import shared_csv
from tests.parity import assert_parity

CAT = ["Employment", "Education", "Marital", "Occupation", "Gender"]
NUM = ["Age", "Income", "Hours"]

pytestmark = pytest.mark.filterwarnings(
    "ignore:Found unknown categories", "ignore:Bins whose width", "ignore:Feature .* constant")


def audit(na: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    d = shared_csv("AuditNA.csv" if na else "Audit.csv")
    return d[CAT + NUM], d["Adjusted"]


def unseen(X: pd.DataFrame, *, missing: bool = True) -> pd.DataFrame:
    """Rows of ``X`` with categories no encoder saw in training (and missing strings)."""
    Z = X.iloc[:12].copy()
    Z.loc[Z.index[0], "Employment"] = "Astronaut"
    Z.loc[Z.index[1], "Occupation"] = "Pirate"
    Z.loc[Z.index[2], ["Education", "Gender"]] = ["Kindergarten", "Other"]
    Z.loc[Z.index[3], "Occupation"] = "Military"  # rare: infrequent under grouping
    if missing:
        Z.loc[Z.index[4], "Marital"] = np.nan
    return Z


def original_outputs(est: Any, X: Any, model: Model) -> dict[str, np.ndarray]:
    """The original's outputs; a sparse ``transform`` result is densified first."""
    outputs = model.bundle.outputs
    if all(o.kind == "transformed" for o in outputs):
        t = est.transform(X)
        t = np.asarray(t.toarray() if hasattr(t, "toarray") else t)
        return {o.name: t[:, j] for j, o in enumerate(outputs)}
    return expected_outputs(est, X, outputs)


def compare(model: Model, est: Any, X: Any) -> None:
    """Model (Numba and reference) == original on ``X``, which the export did not see."""
    v = model.bundle.verification
    want = original_outputs(est, X, model)
    for reference in (False, True):
        got = model.score_arrays(X, reference=reference)
        for name, expected in want.items():
            check_close(got[name], np.asarray(expected), abs_tol=v.abs_tol, rel_tol=v.rel_tol,
                        what=f"reference={reference}", column=name)


def ct(ohe: Any, *, na: bool = False) -> ColumnTransformer:
    cat = make_pipeline(SimpleImputer(strategy="most_frequent"), ohe) if na else ohe
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()) if na else (
        StandardScaler())
    return ColumnTransformer([("cat", cat, CAT), ("num", num, NUM)])


# --- OneHotEncoder in pipelines --------------------------------------------------------------
@pytest.mark.parametrize("handle_unknown", ["error", "ignore", "infrequent_if_exist", "warn"])
def test_audit_logistic_handle_unknown(tmp_path: Path, handle_unknown: str) -> None:
    X, y = audit()
    ohe = OneHotEncoder(handle_unknown=handle_unknown, min_frequency=30)
    est = make_pipeline(ct(ohe), LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b")
    Z = unseen(X, missing=False)
    if handle_unknown == "error":
        with pytest.raises(UnknownCategoryError, match=r"'Astronaut'.*'Employment'"):
            model.predict_proba(Z)
        with pytest.raises(ValueError):
            est.predict_proba(Z)
        # a missing value was never seen in training: refused like scikit-learn
        with pytest.raises(MissingValueError, match="Marital"):
            model.predict_proba(unseen(X).iloc[4:5])
        assert model.bundle.field("Employment").unknown == "error"
    else:
        compare(model, est, Z)
        compare(model, est, unseen(X))


def test_audit_na_ridge(tmp_path: Path) -> None:
    X, y = audit(na=True)
    ohe = OneHotEncoder(handle_unknown="ignore", drop="if_binary")
    est = make_pipeline(ct(ohe, na=True), Ridge(alpha=0.5)).fit(X, y.astype(float))
    model = assert_parity(est, X, tmp_path / "b")
    compare(model, est, unseen(X))
    # every category the encoders know is in the field's vocabulary
    field = model.bundle.field("Occupation")
    assert set(est[0].named_transformers_["cat"][-1].categories_[3]) <= set(field.categories)


def test_audit_na_missing_as_category(tmp_path: Path) -> None:
    # no imputer: NaN is a category of every string column
    X, y = audit(na=True)
    X = X[CAT]
    ohe = OneHotEncoder(handle_unknown="error", sparse_output=False)
    est = make_pipeline(ohe, LogisticRegression(max_iter=2000)).fit(X, y)
    assert all(isinstance(c[-1], float) and math.isnan(c[-1]) for c in ohe.categories_)
    model = assert_parity(est, X, tmp_path / "b")
    Z = X.iloc[:20].copy()
    Z.loc[Z.index[:5], "Gender"] = None
    compare(model, est, Z)
    with pytest.raises(UnknownCategoryError, match="'Astronaut'"):
        model.predict(unseen(X))


@pytest.mark.parametrize("drop", ["first", "if_binary", "explicit"])
@pytest.mark.parametrize("grouping", [{}, {"min_frequency": 100}, {"max_categories": 4},
                                      {"min_frequency": 0.05, "max_categories": 6}])
@pytest.mark.parametrize("handle_unknown", ["ignore", "infrequent_if_exist"])
def test_one_hot_drop_and_infrequent(tmp_path: Path, drop: str, grouping: dict,
                                     handle_unknown: str) -> None:
    X, _ = audit()
    X = X[CAT]
    if drop == "explicit":
        # frequent categories only: dropping an infrequent one is an error in scikit-learn
        drop = ["Private", "HSgrad", "Married", "Executive", "Male"]
    ohe = OneHotEncoder(drop=drop, handle_unknown=handle_unknown, sparse_output=False,
                        **grouping).fit(X)
    model = assert_parity(ohe, X, tmp_path / "b")
    assert model.output_names == [f"x{j}" for j in range(len(ohe.get_feature_names_out()))]
    compare(model, ohe, unseen(X))


def test_one_hot_all_infrequent_and_dropped(tmp_path: Path) -> None:
    # max_categories=1: the only output is the infrequent one ...
    X, y = audit()
    ohe = OneHotEncoder(max_categories=1, handle_unknown="infrequent_if_exist",
                        sparse_output=False).fit(X[CAT])
    model = assert_parity(ohe, X[CAT], tmp_path / "b")
    compare(model, ohe, unseen(X[CAT]))
    # ... and drop='first' removes it: the encoder has no output at all
    ohe = OneHotEncoder(max_categories=1, drop="first", handle_unknown="infrequent_if_exist")
    est = make_pipeline(ct(ohe), LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b2")
    compare(model, est, unseen(X))


def test_one_hot_explicit_categories(tmp_path: Path) -> None:
    X, _ = audit()
    cats = [[*sorted(X[c].unique()), "NeverSeen"] for c in CAT]
    ohe = OneHotEncoder(categories=cats, handle_unknown="ignore", sparse_output=False)
    ohe.fit(X[CAT])
    model = assert_parity(ohe, X[CAT], tmp_path / "b")
    Z = unseen(X[CAT])
    Z.loc[Z.index[5], "Employment"] = "NeverSeen"
    compare(model, ohe, Z)
    assert "NeverSeen" in model.bundle.field("Employment").categories


# --- integer (numeric) categories ------------------------------------------------------------
@pytest.mark.parametrize("handle_unknown", ["error", "ignore"])
def test_integer_categories(tmp_path: Path, handle_unknown: str) -> None:
    d = shared_csv("Auto.csv")
    X, y = d[["cylinders", "origin", "model_year", "weight"]], d["mpg"]
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown=handle_unknown, drop="first"),
         ["cylinders", "origin", "model_year"]),
        ("num", StandardScaler(), ["weight"])])
    est = make_pipeline(pre, Ridge()).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b")
    assert model.bundle.field("cylinders").type == "integer"
    Z = X.iloc[:6].copy()
    Z.loc[Z.index[1], "cylinders"] = 7
    if handle_unknown == "error":
        with pytest.raises(UnknownCategoryError, match=r"7\.0.*'cylinders'.*row 1"):
            model.predict(Z)
        with pytest.raises(UnknownCategoryError, match=r"7\.0.*'cylinders'.*row 1"):
            model.predict(Z, reference=True)
    else:
        compare(model, est, Z)


def test_integer_categories_with_missing(tmp_path: Path) -> None:
    d = shared_csv("AutoNA.csv")
    X, y = d[["cylinders", "origin"]], d["mpg"]
    ohe = OneHotEncoder(handle_unknown="error", min_frequency=20)
    est = make_pipeline(ohe, Ridge()).fit(X, y)
    assert math.isnan(ohe.categories_[0][-1])
    model = assert_parity(est, X, tmp_path / "b")
    compare(model, est, pd.DataFrame({"cylinders": [np.nan, 3.0, 8.0],
                                      "origin": [1.0, np.nan, 2.0]}))
    # numbers: inf is refused as scikit-learn's check_array does
    assert model.bundle.field("cylinders").infinite == "error"


def test_numeric_nan_unseen(tmp_path: Path) -> None:
    d = shared_csv("Auto.csv")
    X = d[["cylinders", "origin"]].astype(float)
    Z = pd.DataFrame({"cylinders": [np.nan, 4.0], "origin": [1.0, 5.0]})
    ignore = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(X)
    model = assert_parity(ignore, X, tmp_path / "ignore")
    compare(model, ignore, Z)
    assert not model.score_arrays(Z)["x0"][0]
    error = OneHotEncoder(handle_unknown="error", sparse_output=False).fit(X)
    model = assert_parity(error, X, tmp_path / "error")
    assert model.bundle.field("cylinders").missing == "error"
    with pytest.raises(MissingValueError, match="cylinders"):
        model.score_arrays(Z)


# --- OrdinalEncoder --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"handle_unknown": "use_encoded_value", "unknown_value": -1},
    {"handle_unknown": "use_encoded_value", "unknown_value": np.nan,
     "encoded_missing_value": -2},
    {"handle_unknown": "use_encoded_value", "unknown_value": 99, "max_categories": 5,
     "encoded_missing_value": -1, "dtype": np.int64},
    {"handle_unknown": "use_encoded_value", "unknown_value": -5, "min_frequency": 0.1,
     "dtype": np.float32},
    {"handle_unknown": "error"},
])
def test_ordinal_encoder(tmp_path: Path, kwargs: dict) -> None:
    X, _ = audit(na=True)
    X = X[CAT]
    enc = OrdinalEncoder(**kwargs).fit(X)
    model = assert_parity(enc, X, tmp_path / "b")
    if kwargs["handle_unknown"] == "error":
        with pytest.raises(UnknownCategoryError, match="'Pirate' for field 'Occupation' in row 0"):
            model.score_arrays(unseen(X).iloc[1:2])
        compare(model, enc, X.iloc[:20])
    else:
        compare(model, enc, unseen(X))


def test_ordinal_encoder_pipeline(tmp_path: Path) -> None:
    X, y = audit()
    pre = ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), CAT),
        ("num", StandardScaler(), NUM)])
    est = make_pipeline(pre, LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b")
    compare(model, est, unseen(X, missing=False))


def test_ordinal_integer_categories(tmp_path: Path) -> None:
    d = shared_csv("AutoNA.csv")
    X = d[["cylinders", "origin"]]
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                         encoded_missing_value=-7).fit(X)
    model = assert_parity(enc, X, tmp_path / "b")
    compare(model, enc, pd.DataFrame({"cylinders": [np.nan, 7.0, 8.0],
                                      "origin": [1.0, 2.0, -3.0]}))


@pytest.mark.parametrize("kwargs, nan_out", [
    ({}, True),                                           # encoded_missing_value NaN
    ({"encoded_missing_value": -2}, False),
    ({"handle_unknown": "use_encoded_value", "unknown_value": np.nan,
      "encoded_missing_value": -2}, False),
])
def test_ordinal_nan_provenance(kwargs: dict, nan_out: bool) -> None:
    # a consumer refusing NaN (a linear model) must refuse missing inputs exactly when the
    # encoder turns them into NaN
    X = pd.DataFrame({"s": np.array(["a", "b", None, "a"], dtype=object)})
    enc = OrdinalEncoder(**kwargs).fit(X)
    g = Graph([Field("s", "string")])
    (out,) = export_ordinal_encoder(enc, g, ["s"])
    assert g.nan_src[out] == (frozenset({"s"}) if nan_out else frozenset())
    g.require([out], nan=False, inf=False)
    assert g.fields["s"].missing == ("error" if nan_out else "allow")


# --- KBinsDiscretizer ------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["uniform", "quantile", "kmeans"])
@pytest.mark.parametrize("encode", ["ordinal", "onehot", "onehot-dense"])
def test_kbins(tmp_path: Path, strategy: str, encode: str) -> None:
    X, _ = audit()
    X = X[NUM].astype(float)
    kb = KBinsDiscretizer(n_bins=[3, 7, 5], strategy=strategy, encode=encode,
                          quantile_method="averaged_inverted_cdf"
                          if strategy == "quantile" else "linear", random_state=0).fit(X)
    if encode == "onehot":
        # sparse output: the export's own verification cannot read it yet (see
        # exporters.outputs.expected_outputs), so compare with the densified result here
        bundle = exporters.build_bundle(kb, sample=X, verification_rows=0)
        bundle.verification = Verification(inputs={}, expected={}, abs_tol=0.0, rel_tol=0.0)
        write_bundle(bundle, tmp_path / "b")
        model = Model(read_bundle(tmp_path / "b"))
        compare(model, kb, X)
    else:
        model = assert_parity(kb, X, tmp_path / "b")
    # every edge exactly, just below it, and far outside the training range
    rows = []
    for j, edges in enumerate(kb.bin_edges_):
        for e in edges:
            for v in (e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)):
                r = X.iloc[0].to_numpy().copy()
                r[j] = v
                rows.append(r)
    rows.append(np.array([-1e300, 1e300, -5.0]))
    compare(model, kb, pd.DataFrame(np.array(rows), columns=NUM))
    assert all(model.bundle.field(c).missing == "error" for c in NUM)
    with pytest.raises(MissingValueError):
        model.score_arrays(pd.DataFrame({"Age": [np.nan], "Income": [1.0], "Hours": [1.0]}))


def test_kbins_float32_and_constant(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300).round(3), "c": np.full(300, 2.5)})
    kb = KBinsDiscretizer(n_bins=6, encode="onehot-dense", strategy="uniform",
                          dtype=np.float32).fit(X)
    model = assert_parity(kb, X, tmp_path / "b")
    probe = np.concatenate([kb.bin_edges_[0], kb.bin_edges_[0] + 1e-9,
                            kb.bin_edges_[0] - 1e-9])
    compare(model, kb, pd.DataFrame({"a": probe, "c": np.linspace(-3, 3, len(probe))}))


def test_kbins_in_pipeline(tmp_path: Path) -> None:
    X, y = audit(na=True)
    pre = ColumnTransformer([
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), CAT),
        ("num", make_pipeline(SimpleImputer(strategy="median"),
                              KBinsDiscretizer(n_bins=4, strategy="quantile",
                                               quantile_method="linear")), NUM)])
    est = make_pipeline(pre, LogisticRegression(max_iter=2000)).fit(X, y)
    model = assert_parity(est, X, tmp_path / "b")
    compare(model, est, unseen(X))
    # imputed first: missing numbers are accepted
    assert model.bundle.field("Age").missing == "allow"


def test_kbins_refuses_code_column() -> None:
    kb = KBinsDiscretizer(n_bins=2, encode="ordinal").fit(np.array([[0.0], [1.0], [2.0]]))
    g = Graph([Field("s", "string")])
    with pytest.raises(ExportError, match="string column 's'"):
        export_kbins_discretizer(kb, g, ["s"])


def test_bundle_round_trip_tables(tmp_path: Path) -> None:
    X, _ = audit(na=True)
    ohe = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=5,
                        sparse_output=False).fit(X[CAT + NUM])
    exporters.export(ohe, tmp_path / "b", sample=X)
    model = scorer.load(tmp_path / "b")
    (step,) = model.bundle.steps
    assert step.op == "one_hot" and step.op_version == 1
    t = step.tables["categories"]
    assert {k: v.dtype.kind for k, v in t.items()} == {
        "input": "i", "category": "O", "number": "f", "missing": "b", "output": "i"}
    # unknown values go to the infrequent output where a column has one, else nowhere
    assert list(step.tables["inputs"]["handle_unknown"]) == [
        "ignore" if i is None else "infrequent" for i in ohe.infrequent_categories_]
    assert "ignore" in list(step.tables["inputs"]["handle_unknown"])  # Gender: 3 categories
    assert model.bundle.field("Age").type == "double"
    compare(model, ohe, unseen(X[CAT + NUM]))


# --- property tests --------------------------------------------------------------------------
_STR = st.sampled_from(["a", "b", "c", "d", "e", "f", None])
_INT = st.sampled_from([0.0, 1.0, 2.0, 5.0, -3.0, np.nan])


@st.composite
def category_frame(draw, n_min: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = draw(st.integers(n_min, 40))
    fit = {"s": draw(st.lists(_STR, min_size=n, max_size=n)),
           "x": draw(st.lists(_INT, min_size=n, max_size=n))}
    new = {"s": draw(st.lists(st.one_of(_STR, st.just("zz")), min_size=10, max_size=10)),
           "x": draw(st.lists(st.one_of(_INT, st.just(9.0)), min_size=10, max_size=10))}
    return (pd.DataFrame({"s": np.array(fit["s"], dtype=object), "x": fit["x"]}),
            pd.DataFrame({"s": np.array(new["s"], dtype=object), "x": new["x"]}))


def _parity_in_memory(est: Any, X: pd.DataFrame, Z: pd.DataFrame) -> None:
    bundle = exporters.build_bundle(est, sample=X)
    model = Model(bundle)
    compare(model, est, pd.concat([X, Z], ignore_index=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(category_frame(),
       st.sampled_from([None, "first", "if_binary"]),
       st.sampled_from(["ignore", "infrequent_if_exist"]),
       st.sampled_from([{}, {"min_frequency": 3}, {"max_categories": 3},
                        {"min_frequency": 0.2, "max_categories": 4}]))
def test_one_hot_property(frames, drop, handle_unknown, grouping) -> None:
    X, Z = frames
    assume(X["s"].notna().any() and X["x"].notna().any())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ohe = OneHotEncoder(drop=drop, handle_unknown=handle_unknown, sparse_output=False,
                            **grouping).fit(X)
        _parity_in_memory(ohe, X, Z)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(category_frame(),
       st.sampled_from([-1, np.nan]),
       st.sampled_from([np.nan, -2]),
       st.sampled_from([{}, {"min_frequency": 3}, {"max_categories": 2}]))
def test_ordinal_property(frames, unknown_value, encoded_missing_value, grouping) -> None:
    X, Z = frames
    assume(X["s"].notna().any() and X["x"].notna().any())
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=unknown_value,
                         encoded_missing_value=encoded_missing_value, **grouping)
    try:
        enc.fit(X)
    except ValueError:  # e.g. encoded_missing_value collides with a code
        assume(False)
    _parity_in_memory(enc, X, Z)


@settings(max_examples=25, deadline=None)
@given(category_frame())
def test_one_hot_error_property(frames) -> None:
    X, Z = frames
    assume(X["s"].notna().any() and X["x"].notna().any())
    ohe = OneHotEncoder(handle_unknown="error", sparse_output=False).fit(X)
    model = Model(exporters.build_bundle(ohe, sample=X))
    compare(model, ohe, X)
    for i in range(len(Z)):
        row = Z.iloc[i: i + 1]
        try:
            want = ohe.transform(row)
        except ValueError:
            with pytest.raises((UnknownCategoryError, MissingValueError)):
                model.score_arrays(row)
            continue
        got = model.score_arrays(row)
        np.testing.assert_array_equal(np.column_stack([got[o] for o in model.output_names]),
                                      want)


def test_small_mixed_frame(tmp_path: Path) -> None:
    X = pd.DataFrame({"s": ["a", "b", "a"], "x": [1, 2, 3], "f": [True, False, True]})
    ohe = OneHotEncoder(sparse_output=False).fit(X)
    model = assert_parity(ohe, X, tmp_path / "b")
    assert [f.type for f in model.bundle.inputs] == ["string", "integer", "boolean"]
