"""The reader compiles the common shapes sklearn2pmml writes to the fast ops (affine, linear,
link, one tree_ensemble per forest) instead of the ``expression`` interpreter, and scores
exactly (bit for bit) what the general compilation scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import scorer
from scorer.model import Model
from scorer.pmml import fastpath, read_pmml, read_pmml_bytes
from scorer.pmml.program import Program


def _data(n: int = 400, d: int = 6, seed: int = 0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=d, n_informative=4, random_state=seed)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(d)]), y


def _to_pmml(est, X, y, tmp_path_factory, name: str):
    from exporters import ExportError, to_pmml

    est.fit(X, y)
    try:
        return to_pmml(est, tmp_path_factory.mktemp("fast") / f"{name}.pmml", sample=X,
                       target_name="y")
    except ExportError as exc:  # no Java / sklearn2pmml here
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def logreg_pmml(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data()
    return _to_pmml(make_pipeline(StandardScaler(), LogisticRegression()), X, y,
                    tmp_path_factory, "logreg")


@pytest.fixture(scope="module")
def forest_pmml(tmp_path_factory):
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data()
    return _to_pmml(RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0), X, y,
                    tmp_path_factory, "forest")


@pytest.fixture(scope="module")
def gbm_pmml(tmp_path_factory):
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = _data()
    return _to_pmml(GradientBoostingClassifier(n_estimators=20, random_state=0), X, y,
                    tmp_path_factory, "gbm")


def _rows(n: int = 3000, d: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d)) * 2
    X[rng.random(X.shape) < 0.05] = np.nan
    X[0] = 1e300  # rounds to inf in float32
    X[1] = -0.0
    return {f"x{j}": X[:, j].copy() for j in range(d)}


def _assert_same_as_general(path, monkeypatch, *, trees: bool = False) -> None:
    from scorer.pmml import trees as trees_mod

    monkeypatch.setattr(fastpath, "ENABLED", True)
    monkeypatch.setattr(trees_mod, "FAST_PATH", True)
    fast = Model(read_pmml(path), verify=False)
    monkeypatch.setattr(fastpath, "ENABLED", False)
    if trees:  # the general predicate walk too (missing values: guard nodes vs PMML rules)
        monkeypatch.setattr(trees_mod, "FAST_PATH", False)
        assert "tree_ensemble" not in {s.op for s in read_pmml(path).steps}
    slow = Model(read_pmml(path), verify=False)
    X = _rows()
    a, b = fast.score_arrays(X), slow.score_arrays(X)
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype.kind == "f":  # bit for bit, NaN where NaN
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert list(a[k]) == list(b[k]), k


def _ops(path) -> list[str]:
    return [s.op for s in scorer.load(path).bundle.steps]


def test_standard_scaler_logreg_compiles_to_affine_linear_link(logreg_pmml, monkeypatch):
    ops = _ops(logreg_pmml)
    assert "expression" not in ops
    assert ops.count("affine") == 1  # the scaler's per-field Apply("/", Apply("-")) merged
    assert set(ops) == {"affine", "linear", "link"}
    _assert_same_as_general(logreg_pmml, monkeypatch)


def test_random_forest_compiles_to_one_tree_ensemble(forest_pmml, monkeypatch):
    steps = scorer.load(forest_pmml).bundle.steps
    assert [s.op for s in steps] == ["tree_ensemble"]
    assert steps[0].params["compare_dtype"] == "float32"
    assert steps[0].params["aggregation"] == "average"
    _assert_same_as_general(forest_pmml, monkeypatch)
    _assert_same_as_general(forest_pmml, monkeypatch, trees=True)


def test_gradient_boosting_has_no_expression_steps(gbm_pmml, monkeypatch):
    ops = _ops(gbm_pmml)
    assert "expression" not in ops
    assert ops.count("tree_ensemble") == 1
    _assert_same_as_general(gbm_pmml, monkeypatch)
    _assert_same_as_general(gbm_pmml, monkeypatch, trees=True)


def test_multinomial_logreg_compiles_to_linear_softmax(tmp_path_factory, monkeypatch):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    X = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)])
    path = _to_pmml(make_pipeline(StandardScaler(), LogisticRegression()), X, y,
                    tmp_path_factory, "multinomial")
    steps = scorer.load(path).bundle.steps
    assert "expression" not in {s.op for s in steps}
    assert [s.params["function"] for s in steps if s.op == "link"] == ["softmax"]
    _assert_same_as_general(path, monkeypatch)


def test_general_path_is_what_the_flag_turns_off(logreg_pmml, monkeypatch):
    monkeypatch.setattr(fastpath, "ENABLED", False)
    assert "expression" in _ops(logreg_pmml)


# --- affine_terms ----------------------------------------------------------------------------
def _prog(*ops) -> Program:
    p = Program()
    p.load("x")
    for o in ops:
        if isinstance(o, str):
            p.emit(o)
        else:
            p.const(o)
    p.emit("STORE", 0)
    return p


@pytest.mark.parametrize(("ops", "terms"), [
    ((2.0, "SUB", 4.0, "DIV"), (2.0, 4.0, 1.0, -0.0)),  # StandardScaler
    ((3.0, "MUL", 1.5, "ADD"), (0.0, 1.0, 3.0, 1.5)),  # MinMaxScaler
    ((1.5, "ADD",), (-1.5, 1.0, 1.0, -0.0)),
    ((2.0, "DIV", 1.0, "SUB"), (0.0, 2.0, 1.0, -1.0)),
    ((2.0, "SUB", 4.0, "DIV", 3.0, "MUL", 1.0, "ADD"), (2.0, 4.0, 3.0, 1.0)),
    ((2.0, "MUL", 1.0, "DIV", 1.0, "MUL"), (0.0, 1.0, 2.0, -0.0)),  # x / 1, x * 1 dropped
    ((0.0, "SUB", 2.0, "DIV"), (0.0, 2.0, 1.0, -0.0)),
])
def test_affine_terms(ops, terms):
    assert fastpath.affine_terms(_prog(*ops)) == terms


@pytest.mark.parametrize("ops", [
    (2.0, "DIV", 1.0, "SUB", 3.0, "MUL"),  # multiply after the add: not affine's order
    (2.0, "MUL", 3.0, "DIV"),
    (2.0, "SUB", 1.0, "SUB", 1.0, "SUB"),
    (-0.0, "SUB", 2.0, "MUL", 3.0, "DIV"),  # multiplies before it divides
    ("EXP",),
    (math.nan, "SUB"),
    ("F32",),
])
def test_not_affine(ops):
    assert fastpath.affine_terms(_prog(*ops)) is None


def _norm_continuous(n0, o0, a, b) -> Program:  # n0 + (x - o0) * a / b, as the reader emits
    p = Program()
    p.const(n0)
    p.load("x")
    for c, o in ((o0, "SUB"), (a, "MUL"), (b, "DIV")):
        p.const(c)
        p.emit(o)
    p.emit("ADD")
    p.emit("STORE", 0)
    return p


def test_norm_continuous_affine_when_exact():
    assert fastpath.affine_terms(_norm_continuous(0.5, 2.0, 1.0, 4.0)) == (2.0, 4.0, 1.0, 0.5)
    assert fastpath.affine_terms(_norm_continuous(0.5, 2.0, 3.0, 1.0)) == (2.0, 1.0, 3.0, 0.5)
    # (x - o) * a / b rounds differently from ((x - o) / b) * a: stays an expression
    assert fastpath.affine_terms(_norm_continuous(0.5, 2.0, 3.0, 4.0)) is None


def test_affine_matches_expression_bit_for_bit():
    x = np.array([-0.0, 0.0, 1e-310, 3.3, -7.1e8, np.inf, -np.inf, np.nan, 1e308])
    doc = b"""<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
    <DataDictionary><DataField name="x" optype="continuous" dataType="double"/>
    <DataField name="y" optype="continuous" dataType="double"/></DataDictionary>
    <TransformationDictionary>
    <DerivedField name="a" optype="continuous" dataType="double"><Apply function="+">
    <Apply function="*"><FieldRef field="x"/><Constant>0.1</Constant></Apply>
    <Constant>-0.3</Constant></Apply></DerivedField>
    <DerivedField name="b" optype="continuous" dataType="double"><Apply function="/">
    <Apply function="-"><FieldRef field="x"/><Constant>1e-3</Constant></Apply>
    <Constant>3.7</Constant></Apply></DerivedField></TransformationDictionary>
    <RegressionModel functionName="regression"><MiningSchema>
    <MiningField name="x"/><MiningField name="y" usageType="target"/></MiningSchema>
    <RegressionTable intercept="0.25"><NumericPredictor name="a" coefficient="1.7"/>
    <NumericPredictor name="b" coefficient="-2.9"/></RegressionTable>
    </RegressionModel></PMML>"""
    fast = Model(read_pmml_bytes(doc), verify=False)
    assert "expression" not in {s.op for s in fast.bundle.steps}
    fastpath.ENABLED = False
    try:
        slow = Model(read_pmml_bytes(doc), verify=False)
    finally:
        fastpath.ENABLED = True
    assert "expression" in {s.op for s in slow.bundle.steps}
    np.testing.assert_array_equal(fast.score_arrays({"x": x})["y"],
                                  slow.score_arrays({"x": x})["y"])
