"""Built-in functions of PMML expressions (scorer/pmml/expressions.py): the spec's missing
value rules, scored end to end (kernels and reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.scorer.pmml.test_reader import schema, score

X = [2.5, -2.5, 3.5, math.nan, 0.0, math.nan]
Z = [-1.5, 0.5, math.nan, 2.0, -0.0, math.nan]


def _derived(apply: str) -> tuple[str, str]:
    extra = ('<TransformationDictionary><DerivedField name="d" optype="continuous" '
             f'dataType="double">{apply}</DerivedField></TransformationDictionary>')
    model = f"""<RegressionModel functionName="regression">{schema("y", "x", "z")}
      <Output><OutputField name="out" feature="transformedValue"><FieldRef field="d"/>
      </OutputField></Output>
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="0"/>
      </RegressionTable></RegressionModel>"""
    return model, extra


def _nan_equal(got, want) -> None:
    np.testing.assert_array_equal(np.asarray(got, dtype=float), np.asarray(want, dtype=float))


@pytest.mark.parametrize("fn,want", [
    # "Missing values in the input to an aggregate function are simply ignored" (avg divides
    # by the number present); none present: missing
    ("min", [-1.5, -2.5, 3.5, 2.0, 0.0, math.nan]),
    ("max", [2.5, 0.5, 3.5, 2.0, 0.0, math.nan]),
    ("sum", [1.0, -2.0, 3.5, 2.0, 0.0, math.nan]),
    ("product", [-3.75, -1.25, 3.5, 2.0, -0.0, math.nan]),
    ("avg", [0.5, -1.0, 3.5, 2.0, 0.0, math.nan]),
])
def test_aggregate_functions_ignore_missing_arguments(fn, want) -> None:
    model, extra = _derived(f'<Apply function="{fn}"><FieldRef field="x"/>'
                            '<FieldRef field="z"/></Apply>')
    _nan_equal(score(model, {"x": X, "z": Z}, extra)["out"], want)


def test_aggregate_arguments_that_are_expressions_are_computed_once() -> None:
    # arguments of their own (an Apply, a constant, a field with mapMissingTo), three of
    # them missing in a row
    model, extra = _derived(
        '<Apply function="avg"><Apply function="*"><FieldRef field="x"/><Constant>2'
        '</Constant></Apply><FieldRef field="z"/><Apply function="ln"><FieldRef field="x"/>'
        '</Apply><FieldRef field="z" mapMissingTo="10"/></Apply>')
    got = score(model, {"x": X, "z": Z}, extra)["out"]
    ln = [math.log(v) if v > 0 else -math.inf if v == 0 else math.nan for v in X]
    want = []
    for x, z, lx in zip(X, Z, ln, strict=True):
        vals = [v for v in (2 * x, z, lx, 10.0 if math.isnan(z) else z) if not math.isnan(v)]
        want.append(sum(vals) / len(vals))
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_map_missing_to_is_for_missing_inputs_and_default_value_for_missing_results() -> None:
    model, extra = _derived('<Apply function="sqrt" defaultValue="-7" mapMissingTo="5">'
                            '<FieldRef field="x"/></Apply>')
    # x = -2.5: present, sqrt is missing -> defaultValue; x missing -> mapMissingTo
    _nan_equal(score(model, {"x": X, "z": Z}, extra)["out"],
               [math.sqrt(2.5), -7.0, math.sqrt(3.5), 5.0, 0.0, 5.0])
    model, extra = _derived('<Apply function="/" mapMissingTo="5"><FieldRef field="x"/>'
                            '<FieldRef field="z"/></Apply>')
    # mapMissingTo alone: a missing result of present inputs stays missing (x / 0 is
    # infinite, 0 / 0 missing)
    _nan_equal(score(model, {"x": X, "z": Z}, extra)["out"],
               [2.5 / -1.5, -5.0, 5.0, 5.0, math.nan, 5.0])


def _ordinal_tree(optype: str, value: str, treatment: str = "") -> bytes:
    return f"""<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
      <DataDictionary><DataField name="s" optype="{optype}" dataType="string">
      <Value value="low"/><Value value="mid"/><Value value="high"/></DataField>
      <DataField name="y" optype="continuous" dataType="double"/></DataDictionary>
      <TreeModel functionName="regression" missingValueStrategy="nullPrediction"
       noTrueChildStrategy="returnLastPrediction">
      <MiningSchema><MiningField name="s" {treatment}/>
      <MiningField name="y" usageType="target"/></MiningSchema>
      <Node score="0"><True/>
      <Node score="1"><SimplePredicate field="s" operator="lessThan" value="{value}"/></Node>
      <Node score="2"><SimplePredicate field="s" operator="greaterOrEqual" value="{value}"/>
      </Node></Node></TreeModel></PMML>""".encode()


def test_ordinal_fields_compare_in_their_declared_order() -> None:
    from scorer.model import Model
    from scorer.pmml import PMMLError, read_pmml_bytes

    m = Model(read_pmml_bytes(_ordinal_tree("ordinal", "mid")))
    s = np.array(["low", "mid", "high", None], dtype=object)
    _nan_equal(m.predict({"s": s}), [1.0, 2.0, 2.0, math.nan])
    # an undeclared value let through (asIs) is unknown, not below every declared one
    lax = Model(read_pmml_bytes(_ordinal_tree("ordinal", "mid",
                                              'invalidValueTreatment="asIs"')))
    _nan_equal(lax.predict({"s": np.array(["zzz", "high"], dtype=object)}), [math.nan, 2.0])
    with pytest.raises(PMMLError, match="ordering comparisons need an ordinal field"):
        read_pmml_bytes(_ordinal_tree("categorical", "mid"))
    with pytest.raises(PMMLError, match="the value 'top' is not one of its declared values"):
        read_pmml_bytes(_ordinal_tree("ordinal", "top"))


def test_an_aggregate_in_a_function_called_twice_reads_each_calls_arguments() -> None:
    # one Apply element, two scopes (one per call): each gets its own argument column,
    # and an aggregate argument under mapMissingTo is computed by one step only
    from scorer.pmml import read_pmml_bytes
    from tests.scorer.pmml.test_reader import pmml

    fn = ('<DefineFunction name="f" dataType="double" optype="continuous">'
          '<ParameterField name="v"/><Apply function="max" mapMissingTo="-1">'
          '<Apply function="*"><FieldRef field="v"/><Constant>2</Constant></Apply>'
          '<Constant>0</Constant></Apply></DefineFunction>')
    extra = (f'<TransformationDictionary>{fn}<DerivedField name="d" optype="continuous" '
             'dataType="double"><Apply function="+"><Apply function="f"><FieldRef field="x"/>'
             '</Apply><Apply function="*"><Constant>100</Constant><Apply function="f">'
             '<FieldRef field="z"/></Apply></Apply></Apply></DerivedField>'
             '</TransformationDictionary>')
    model, _ = _derived("")
    got = score(model, {"x": X, "z": Z}, extra)["out"]
    f = [-1.0 if math.isnan(v) else max(2 * v, 0.0) for v in (*X, *Z)]
    _nan_equal(got, [a + 100 * b for a, b in zip(f[:6], f[6:], strict=True)])
    steps = [s.name for s in read_pmml_bytes(pmml(model, extra)).steps]
    # v * 2 and the constant, once per call (compiled twice each: for mapMissingTo, for max)
    assert sum("aggregate_arg" in n for n in steps) == 4, steps
