"""Hand-written PMML documents, one or two per supported element, scored end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer.errors import InputError, UnknownCategoryError, VerificationError
from scorer.model import Model
from scorer.pmml import PMMLError, read_pmml_bytes

DD = """<DataDictionary>
  <DataField name="x" optype="continuous" dataType="double"/>
  <DataField name="z" optype="continuous" dataType="double"/>
  <DataField name="f" optype="continuous" dataType="float"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="a"/><Value value="b"/><Value value="c"/></DataField>
  <DataField name="y" optype="continuous" dataType="double"/>
  <DataField name="k" optype="categorical" dataType="string">
    <Value value="no"/><Value value="yes"/></DataField>
  <DataField name="s" optype="categorical" dataType="string">
    <Value value="u"/><Value value="v"/><Value value="w"/></DataField>
</DataDictionary>"""


def pmml(model: str, extra: str = "") -> bytes:
    return (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}{extra}'
            f"{model}</PMML>").encode()


def schema(target: str, *fields: str, extra: str = "") -> str:
    act = "".join(f'<MiningField name="{f}"/>' for f in fields)
    return f'<MiningSchema><MiningField name="{target}" usageType="target"/>{act}{extra}' \
           "</MiningSchema>"


def load(model: str, extra: str = "") -> Model:
    return Model(read_pmml_bytes(pmml(model, extra)))


def score(model: str, X: dict, extra: str = "") -> dict:
    m = load(model, extra)
    X = {k: np.asarray(v, dtype=object if isinstance(v[0], str) or v[0] is None else float)
         for k, v in X.items()}
    fast = m.score_arrays(X)
    ref = m.score_arrays(X, reference=True)
    for k in fast:  # the Numba kernels and the reference implementations agree
        a, b = np.asarray(fast[k]), np.asarray(ref[k])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=0, equal_nan=True)
        else:
            assert list(a) == list(b)
    return fast


def ops(model: str, extra: str = "") -> list[str]:
    return [s.op for s in read_pmml_bytes(pmml(model, extra)).steps]


# --- RegressionModel -------------------------------------------------------------------------
def test_regression_model_terms_and_targets():
    m = f"""<RegressionModel functionName="regression">{schema("y", "x", "z", "c")}
      <Targets><Target field="y" rescaleFactor="2" rescaleConstant="1"/></Targets>
      <RegressionTable intercept="0.5">
        <NumericPredictor name="x" coefficient="3"/>
        <NumericPredictor name="z" exponent="2" coefficient="-1"/>
        <CategoricalPredictor name="c" value="b" coefficient="10"/>
        <PredictorTerm coefficient="0.25"><FieldRef field="x"/><FieldRef field="z"/></PredictorTerm>
      </RegressionTable></RegressionModel>"""
    got = score(m, {"x": [1.0, 2.0, math.nan], "z": [2.0, 0.5, 1.0], "c": ["b", "a", "b"]})
    raw = [0.5 + 3 - 4 + 10 + 0.5, 0.5 + 6 - 0.25 + 0 + 0.25]
    np.testing.assert_allclose(got["y"][:2], [2 * r + 1 for r in raw], rtol=1e-15)
    assert math.isnan(got["y"][2])


@pytest.mark.parametrize("norm,fn", [
    ("logit", lambda v: 1 / (1 + math.exp(-v))),
    ("probit", lambda v: 0.5 * math.erfc(-v / math.sqrt(2))),
    ("cloglog", lambda v: 1 - math.exp(-math.exp(v))),
    ("loglog", lambda v: math.exp(-math.exp(-v))),
    ("cauchit", lambda v: 0.5 + math.atan(v) / math.pi),
])
def test_binary_classification_normalizations(norm, fn):
    m = f"""<RegressionModel functionName="classification" normalizationMethod="{norm}">
      {schema("k", "x")}
      <Output><OutputField name="p_yes" feature="probability" value="yes"/>
        <OutputField name="p_no" feature="probability" value="no"/></Output>
      <RegressionTable intercept="-1" targetCategory="yes">
        <NumericPredictor name="x" coefficient="2"/></RegressionTable>
      <RegressionTable intercept="0" targetCategory="no"/></RegressionModel>"""
    got = score(m, {"x": [0.0, 1.0, 3.0]})
    p = np.array([fn(2 * v - 1) for v in (0.0, 1.0, 3.0)])
    np.testing.assert_allclose(got["p_yes"], p, rtol=1e-14)
    np.testing.assert_allclose(got["p_no"], 1 - p, rtol=1e-14)
    assert list(got["k"]) == ["yes" if v > 0.5 else "no" for v in p]


def test_softmax_classification():
    tables = "".join(
        f'<RegressionTable intercept="{b}" targetCategory="{c}">'
        f'<NumericPredictor name="x" coefficient="{w}"/></RegressionTable>'
        for c, b, w in (("u", 0, 1), ("v", 1, -1), ("w", 0.5, 0)))
    m = f"""<RegressionModel functionName="classification" normalizationMethod="softmax">
      {schema("s", "x")}<Output><OutputField name="pv" feature="probability" value="v"/>
      <OutputField name="best" feature="probability"/></Output>{tables}</RegressionModel>"""
    got = score(m, {"x": [-2.0, 0.0, 2.0]})
    for i, x in enumerate((-2.0, 0.0, 2.0)):
        e = np.exp([x, 1 - x, 0.5])
        p = e / e.sum()
        assert got["pv"][i] == pytest.approx(p[1], rel=1e-14)
        assert got["best"][i] == pytest.approx(p.max(), rel=1e-14)
        assert got["s"][i] == "uvw"[int(np.argmax(p))]


def test_a_missing_categorical_predictor_is_ignored():
    m = f"""<RegressionModel functionName="regression">{schema("y", "x", "c")}
      <RegressionTable intercept="1"><NumericPredictor name="x" coefficient="2"/>
      <CategoricalPredictor name="c" value="a" coefficient="10"/></RegressionTable>
      </RegressionModel>"""
    got = score(m, {"x": [1.0, 1.0, math.nan], "c": ["a", None, "b"]})
    np.testing.assert_array_equal(got["y"][:2], [13.0, 3.0])  # (JPMML: 13, 3)
    assert math.isnan(got["y"][2])  # a missing numeric predictor is missing


def test_three_classes_without_normalization_take_one_minus_the_others_for_the_last():
    tables = "".join(
        f'<RegressionTable intercept="{b}" targetCategory="{c}">'
        f'<NumericPredictor name="x" coefficient="{w}"/></RegressionTable>'
        for c, b, w in (("u", -0.2, 1), ("v", 0.1, 0), ("w", 0.4, 0)))
    m = f"""<RegressionModel functionName="classification" normalizationMethod="none">
      {schema("s", "x")}<Output><OutputField name="pu" feature="probability" value="u"/>
      <OutputField name="pv" feature="probability" value="v"/>
      <OutputField name="pw" feature="probability" value="w"/></Output>{tables}
      </RegressionModel>"""
    got = score(m, {"x": [0.0, 0.5]})
    np.testing.assert_allclose(got["pu"], [-0.2, 0.3], rtol=1e-15)
    np.testing.assert_allclose(got["pv"], [0.1, 0.1], rtol=1e-15)
    np.testing.assert_allclose(got["pw"], [1 - (-0.2 + 0.1), 1 - (0.3 + 0.1)], rtol=1e-15)
    assert list(got["s"]) == ["w", "w"]


def test_exp_normalization_of_two_classes_is_refused():
    m = f"""<RegressionModel functionName="classification" normalizationMethod="exp">
      {schema("k", "x")}<RegressionTable intercept="-1" targetCategory="yes">
        <NumericPredictor name="x" coefficient="2"/></RegressionTable>
      <RegressionTable intercept="0" targetCategory="no"/></RegressionModel>"""
    with pytest.raises(PMMLError, match="normalizationMethod='exp' does not give "
                                        "probabilities of two classes"):
        load(m)


# --- TreeModel -------------------------------------------------------------------------------
SIMPLE_TREE = """<TreeModel functionName="regression" missingValueStrategy="{ms}"
    noTrueChildStrategy="returnLastPrediction">{schema}
  <Node score="0" id="r"{dc}><True/>
    <Node score="1" id="l"><SimplePredicate field="x" operator="lessOrEqual" value="1.5"/></Node>
    <Node score="2" id="h"><SimplePredicate field="x" operator="greaterThan" value="1.5"/>
      <Node score="3"><SimplePredicate field="f" operator="lessThan" value="0.1"/></Node>
      <Node score="4"><SimplePredicate field="f" operator="greaterOrEqual" value="0.1"/></Node>
    </Node>
  </Node></TreeModel>"""


@pytest.mark.parametrize("ms,dc,missing_x", [
    ("nullPrediction", "", math.nan), ("lastPrediction", "", 0.0),
    ("defaultChild", ' defaultChild="l"', 1.0)])
def test_threshold_tree_uses_tree_ensemble(ms, dc, missing_x):
    m = SIMPLE_TREE.format(ms=ms, dc=dc, schema=schema("y", "x", "f"))
    if ms == "defaultChild":  # every split needs its default child
        m = m.replace('<Node score="2" id="h">', '<Node score="2" id="h" defaultChild="h4">')
        m = m.replace('<Node score="4">', '<Node score="4" id="h4">')
    assert "tree_ensemble" in ops(m) and "predicate_tree" not in ops(m)
    # f is a float field: 0.1 as float32 is not 0.1 as float64, and PMML compares in float32
    got = score(m, {"x": [1.0, 2.0, 2.0, math.nan, 1.5],
                    "f": [0.0, 0.1, 0.09, 0.5, 0.0]})
    np.testing.assert_array_equal(got["y"][[0, 1, 2, 4]], [1, 4, 3, 1])
    assert got["y"][3] == missing_x or (math.isnan(missing_x) and math.isnan(got["y"][3]))


def test_general_predicates_use_predicate_tree():
    m = f"""<TreeModel functionName="classification" missingValueStrategy="none"
        noTrueChildStrategy="returnNullPrediction">{schema("k", "x", "c")}
      <Node score="no"><True/>
        <Node score="yes"><CompoundPredicate booleanOperator="and">
            <SimpleSetPredicate field="c" booleanOperator="isIn"><Array type="string">a "b"</Array>
            </SimpleSetPredicate>
            <SimplePredicate field="x" operator="greaterThan" value="0"/></CompoundPredicate>
          <ScoreDistribution value="yes" recordCount="3"/>
          <ScoreDistribution value="no" recordCount="1"/>
        </Node>
        <Node score="no"><CompoundPredicate booleanOperator="surrogate">
            <SimplePredicate field="x" operator="lessOrEqual" value="0"/>
            <SimplePredicate field="c" operator="equal" value="c"/></CompoundPredicate>
          <ScoreDistribution value="yes" recordCount="0"/>
          <ScoreDistribution value="no" recordCount="5"/>
        </Node>
      </Node></TreeModel>"""
    assert "predicate_tree" in ops(m)
    m = m.replace("<TreeModel", '<Output><OutputField name="py" feature="probability" '
                  'value="yes"/></Output><TreeModel', 0)
    m = m.replace("</MiningSchema>", '</MiningSchema><Output><OutputField name="py" '
                  'feature="probability" value="yes"/></Output>', 1)
    got = score(m, {"x": [1.0, -1.0, math.nan, math.nan, 1.0],
                    "c": ["a", "a", "c", "a", "c"]})
    assert list(got["k"][:3]) == ["yes", "no", "no"]
    # row 2: and(false, unknown) is false; surrogate(unknown, c == "c") is true
    np.testing.assert_array_equal(got["py"][:3], [0.75, 0.0, 0.0])
    # row 3: and(true, unknown) is unknown (false under "none"), surrogate(unknown, false) is
    # false; row 4: both false -> no true child -> null prediction
    assert math.isnan(got["py"][3]) and math.isnan(got["py"][4])


# --- MiningModel -----------------------------------------------------------------------------
def _seg_tree(score_lo: float, score_hi: float) -> str:
    return f"""<Segment><True/><TreeModel functionName="regression"
        missingValueStrategy="defaultChild">{schema("y", "x")}<Node score="0" defaultChild="a">
      <True/><Node id="a" score="{score_lo}">
      <SimplePredicate field="x" operator="lessThan" value="0"/>
      </Node><Node score="{score_hi}"><SimplePredicate field="x" operator="greaterOrEqual"
      value="0"/></Node></Node></TreeModel></Segment>"""


@pytest.mark.parametrize("method,expect", [
    ("sum", [3.0, 30.0]), ("average", [1.5, 15.0]), ("weightedAverage", [1.0, 10.0])])
def test_segmentation_of_trees(method, expect):
    segs = _seg_tree(1, 10) + _seg_tree(2, 20).replace("<Segment>", '<Segment weight="0">')
    if method != "weightedAverage":
        segs = segs.replace(' weight="0"', "")
    m = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="{method}">{segs}</Segmentation></MiningModel>"""
    assert "tree_ensemble" in ops(m)
    got = score(m, {"x": [-1.0, 1.0]})
    np.testing.assert_allclose(got["y"], expect, rtol=1e-15)


def test_model_chain_and_select_first():
    first = f"""<Segment><True/><RegressionModel functionName="regression">{schema("y", "x")}
      <Output><OutputField name="twice" feature="predictedValue" isFinalResult="false"/></Output>
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="2"/>
      </RegressionTable></RegressionModel></Segment>"""
    second = """<Segment><True/><RegressionModel functionName="regression">
      <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="twice"/>
      </MiningSchema><RegressionTable intercept="1"><NumericPredictor name="twice"
      coefficient="1"/></RegressionTable></RegressionModel></Segment>"""
    chain = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="modelChain">{first}{second}</Segmentation>
      </MiningModel>"""
    np.testing.assert_allclose(score(chain, {"x": [1.0, 2.0]})["y"], [3.0, 5.0])
    guarded = second.replace("<Segment><True/>", '<Segment><SimplePredicate field="x" '
                             'operator="greaterThan" value="1.5"/>')
    plain = first.replace("twice", "dbl")
    sel = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="selectFirst">{guarded.replace("twice", "x")}{plain}
      </Segmentation></MiningModel>"""
    np.testing.assert_allclose(score(sel, {"x": [1.0, 2.0]})["y"], [2.0, 3.0])


def test_majority_vote():
    def tree(label_lo: str, label_hi: str) -> str:
        return f"""<Segment><True/><TreeModel functionName="classification"
          missingValueStrategy="defaultChild">{schema("k", "x")}<Node score="no" defaultChild="a">
          <True/><Node id="a" score="{label_lo}"><SimplePredicate field="x" operator="lessThan"
          value="0"/></Node><Node score="{label_hi}"><SimplePredicate field="x"
          operator="greaterOrEqual" value="0"/></Node></Node></TreeModel></Segment>"""
    m = f"""<MiningModel functionName="classification">{schema("k", "x")}
      <Output><OutputField name="pyes" feature="probability" value="yes"/></Output>
      <Segmentation multipleModelMethod="majorityVote">{tree("no", "yes")}{tree("yes", "yes")}
      {tree("no", "no")}</Segmentation></MiningModel>"""
    got = score(m, {"x": [-1.0, 1.0]})
    assert list(got["k"]) == ["no", "yes"]
    np.testing.assert_allclose(got["pyes"], [1 / 3, 2 / 3])


# --- transformations -------------------------------------------------------------------------
TRANSFORMS = """<TransformationDictionary>
  <DefineFunction name="plus1" dataType="double" optype="continuous">
    <ParameterField name="v"/><Apply function="+"><FieldRef field="v"/><Constant>1</Constant>
    </Apply></DefineFunction>
  <DerivedField name="nc" dataType="double" optype="continuous">
    <NormContinuous field="x" outliers="asExtremeValues"><LinearNorm orig="0" norm="0"/>
    <LinearNorm orig="10" norm="1"/><LinearNorm orig="20" norm="3"/></NormContinuous>
  </DerivedField>
  <DerivedField name="nd" dataType="double" optype="continuous">
    <NormDiscrete field="c" value="b"/></DerivedField>
  <DerivedField name="bin" dataType="string" optype="categorical">
    <Discretize field="x" defaultValue="mid" mapMissingTo="none">
      <DiscretizeBin binValue="low"><Interval closure="openClosed" rightMargin="0"/></DiscretizeBin>
      <DiscretizeBin binValue="high"><Interval closure="closedOpen" leftMargin="10"/>
      </DiscretizeBin>
    </Discretize></DerivedField>
  <DerivedField name="mv" dataType="double" optype="continuous">
    <MapValues outputColumn="out" defaultValue="-1" mapMissingTo="-9">
      <FieldColumnPair field="bin" column="in"/><InlineTable>
        <row><in>low</in><out>1</out></row><row><in>high</in><out>2</out></row>
      </InlineTable></MapValues></DerivedField>
  <DerivedField name="ap" dataType="double" optype="continuous">
    <Apply function="if"><Apply function="isIn"><FieldRef field="c"/><Constant>a</Constant>
      <Constant>c</Constant></Apply><Apply function="plus1"><Apply function="pow">
      <FieldRef field="x"/><Constant>2</Constant></Apply></Apply>
      <Apply function="max"><FieldRef field="x"/><Apply function="abs"><FieldRef field="z"/>
      </Apply><Constant>0.5</Constant></Apply></Apply></DerivedField>
</TransformationDictionary>"""


def test_derived_fields():
    outs = "".join(f'<NumericPredictor name="{n}" coefficient="{10 ** i}"/>'
                   for i, n in enumerate(("nc", "nd", "mv", "ap")))
    m = f"""<RegressionModel functionName="regression">{schema("y", "x", "z", "c")}
      <Output>{"".join(f'<OutputField name="o_{n}" feature="transformedValue">'
                       f'<FieldRef field="{n}"/></OutputField>' for n in ("nc", "nd", "mv", "ap"))}
      </Output>
      <RegressionTable intercept="0">{outs}</RegressionTable></RegressionModel>"""
    got = score(m, {"x": [-5.0, 5.0, 15.0, 30.0, math.nan], "z": [-3.0, 1.0, 0.0, 0.0, 0.0],
                    "c": ["a", "b", "c", "b", "b"]}, TRANSFORMS)
    np.testing.assert_allclose(got["o_nc"][:4], [0.0, 0.5, 2.0, 3.0])
    np.testing.assert_array_equal(got["o_nd"], [0, 1, 0, 1, 1])
    # x missing: Discretize maps it to "none", which MapValues does not list -> default
    np.testing.assert_array_equal(got["o_mv"], [1, -1, 2, 2, -1])
    np.testing.assert_allclose(got["o_ap"][:4], [26.0, 5.0, 226.0, 30.0])
    # x missing: max(x, abs(z), 0.5) ignores it (aggregate functions skip missing values)
    assert math.isnan(got["o_nc"][4]) and got["o_ap"][4] == 0.5


def _norm_model(points: list[tuple[float, float]], outliers: str, *, wrap: str = "") -> str:
    norms = "".join(f'<LinearNorm orig="{o!r}" norm="{n!r}"/>' for o, n in points)
    expr = f'<NormContinuous field="x" outliers="{outliers}">{norms}</NormContinuous>'
    if wrap:  # sklearn2pmml's QuantileTransformer: stdNormalIDF(clipQuantile(NormContinuous))
        expr = f'<Apply function="{wrap}"><Apply function="clipQuantile">{expr}</Apply></Apply>'
    return f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <LocalTransformations><DerivedField name="q" dataType="double" optype="continuous">
      {expr}</DerivedField></LocalTransformations>
      <RegressionTable intercept="0"><NumericPredictor name="q" coefficient="1"/>
      </RegressionTable></RegressionModel>"""


CLIP_QUANTILE = """<TransformationDictionary>
  <DefineFunction name="clipQuantile" optype="continuous" dataType="double">
    <ParameterField name="x"/><Apply function="min"><Apply function="max"><FieldRef field="x"/>
    <Constant dataType="double">1.0E-7</Constant></Apply>
    <Constant dataType="double">0.9999999</Constant></Apply></DefineFunction>
</TransformationDictionary>"""


def test_norm_continuous_tied_orig_values():
    # sklearn2pmml writes tied quantiles as repeated orig values, at the ends too: x at a tie
    # takes the norm of the last point with that orig (numpy.interp's rule); a zero-width
    # segment must never be evaluated (x == the tied last orig gave 0/0 = NaN, which an
    # imputer downstream then silently replaced)
    pts = [(1.0, 0.0), (1.0, 0.1), (2.0, 0.4), (2.0, 0.5), (2.0, 0.6), (3.0, 0.8), (3.0, 1.0)]
    x = [0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, math.nan]
    o, n = np.array(pts).T
    for outliers, low, high in (("asExtremeValues", 0.0, 1.0),
                                ("asMissingValues", math.nan, math.nan)):
        got = score(_norm_model(pts, outliers), {"x": x})["y"]
        want = [low, *np.interp(x[1:6], o, n), high, math.nan]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(want[1:6], [0.1, 0.25, 0.6, 0.7, 1.0], atol=1e-15)
    # the whole QuantileTransformer shape: no NaN at the tied extremes, scipy's ppf
    from scipy.stats import norm
    got = score(_norm_model(pts, "asExtremeValues", wrap="stdNormalIDF"), {"x": x},
                CLIP_QUANTILE)["y"]
    want = norm.ppf(np.clip(np.interp(x, o, n), 1e-7, 0.9999999))
    # x missing: max(missing, 1e-7) is 1e-7 (aggregate functions skip missing values, as
    # JPMML does), so the document itself maps a missing x to the lowest quantile
    want[-1] = norm.ppf(1e-7)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    assert np.isfinite(got).all()


def test_norm_continuous_refuses_undefined_extrapolation():
    with pytest.raises(PMMLError, match="zero width"):
        load(_norm_model([(0.0, 0.0), (1.0, 0.5), (1.0, 1.0)], "asIs"))
    with pytest.raises(PMMLError, match="ascending orig"):
        load(_norm_model([(0.0, 0.0), (2.0, 0.5), (1.0, 1.0)], "asIs"))


# --- MiningSchema ----------------------------------------------------------------------------
def test_missing_replacement_and_invalid_values():
    m = f"""<RegressionModel functionName="regression">
      {schema("y", extra='<MiningField name="x" missingValueReplacement="7"/>'
              '<MiningField name="c" invalidValueTreatment="asMissing"/>')}
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="1"/>
      <CategoricalPredictor name="c" value="a" coefficient="100"/></RegressionTable>
      </RegressionModel>"""
    got = score(m, {"x": [math.nan, 1.0, 1.0], "c": ["a", "b", "zzz"]})
    # invalid -> missing -> the categorical predictor is ignored (JPMML's rule)
    np.testing.assert_array_equal(got["y"], [107.0, 1.0, 1.0])
    strict = m.replace(' invalidValueTreatment="asMissing"', "")
    with pytest.raises(UnknownCategoryError):
        load(strict).score_arrays({"x": np.array([1.0]), "c": np.array(["zzz"], dtype=object)})


# --- GeneralRegressionModel ------------------------------------------------------------------
def test_general_regression_glm_and_multinomial():
    glm = f"""<GeneralRegressionModel modelType="generalizedLinear" functionName="regression"
        linkFunction="log">{schema("y", "x", "c")}
      <ParameterList><Parameter name="p0"/><Parameter name="p1"/><Parameter name="p2"/>
      </ParameterList><FactorList><Predictor name="c"/></FactorList>
      <CovariateList><Predictor name="x"/></CovariateList>
      <PPMatrix><PPCell value="1" predictorName="x" parameterName="p1"/>
        <PPCell value="b" predictorName="c" parameterName="p2"/></PPMatrix>
      <ParamMatrix><PCell parameterName="p0" beta="0.5"/><PCell parameterName="p1" beta="2"/>
        <PCell parameterName="p2" beta="-1"/></ParamMatrix></GeneralRegressionModel>"""
    got = score(glm, {"x": [0.0, 1.0], "c": ["b", "a"]})
    np.testing.assert_allclose(got["y"], np.exp([0.5 - 1, 2.5]), rtol=1e-15)
    mn = glm.replace('modelType="generalizedLinear" functionName="regression"',
                     'modelType="multinomialLogistic" functionName="classification"')
    mn = mn.replace(schema("y", "x", "c"), schema("s", "x", "c")).replace(
        '<PCell parameterName="p0" beta="0.5"/>', '<PCell targetCategory="u" parameterName="p0"'
        ' beta="0.5"/><PCell targetCategory="v" parameterName="p0" beta="-0.5"/>').replace(
        '<PCell parameterName="p1" beta="2"/>', '<PCell targetCategory="u" parameterName="p1"'
        ' beta="2"/>').replace('<PCell parameterName="p2" beta="-1"/>', "")
    mn = mn.replace("</MiningSchema>", '</MiningSchema><Output><OutputField name="pw" '
                    'feature="probability" value="w"/></Output>')
    got = score(mn, {"x": [0.0, 1.0], "c": ["b", "a"]})
    for i, x in enumerate((0.0, 1.0)):
        e = np.exp([0.5 + 2 * x, -0.5, 0.0])
        assert got["pw"][i] == pytest.approx(e[2] / e.sum(), rel=1e-14)


# --- refusals and verification ---------------------------------------------------------------
def test_unsupported_elements_are_refused_with_their_line():
    m = f"""<NaiveBayesModel functionName="classification">{schema("k", "x")}
      </NaiveBayesModel>"""
    with pytest.raises(PMMLError, match=r"line \d+.*<NaiveBayesModel>"):
        read_pmml_bytes(pmml(m))
    bad = f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="1"/>
      </RegressionTable></RegressionModel>"""
    ap = ('<TransformationDictionary><DerivedField name="t" dataType="string" '
          'optype="categorical"><Apply function="formatNumber"><FieldRef field="c"/></Apply>'
          "</DerivedField></TransformationDictionary>")
    m2 = bad.replace('name="x" coefficient', 'name="t" coefficient').replace(
        schema("y", "x"), schema("y", "c"))
    with pytest.raises(PMMLError, match="'formatNumber' not supported"):
        read_pmml_bytes(pmml(m2, ap))
    with pytest.raises(PMMLError, match="<Unknown>"):
        read_pmml_bytes(pmml(bad.replace("</RegressionTable>", "<Unknown/></RegressionTable>")))


def test_model_verification_is_checked_at_load():
    def model(expected: str) -> str:
        return f"""<RegressionModel functionName="regression">{schema("y", "x")}
          <ModelVerification><VerificationFields><VerificationField field="x" column="vx"/>
          <VerificationField field="y" column="vy" precision="1E-9" zeroThreshold="1E-12"/>
          </VerificationFields><InlineTable><row><vx>2</vx><vy>{expected}</vy></row>
          </InlineTable></ModelVerification>
          <RegressionTable intercept="1"><NumericPredictor name="x" coefficient="3"/>
          </RegressionTable></RegressionModel>"""
    assert load(model("7")).verify() == 1
    with pytest.raises(VerificationError, match="row 0"):
        load(model("7.5"))


def test_string_functions_are_evaluated_over_the_vocabulary():
    td = """<TransformationDictionary>
      <DerivedField name="up" dataType="string" optype="categorical">
        <Apply function="uppercase"><FieldRef field="c"/></Apply></DerivedField>
      <DerivedField name="cat" dataType="string" optype="categorical">
        <Apply function="concat"><FieldRef field="up"/><Constant>-</Constant>
        <FieldRef field="k"/></Apply></DerivedField>
    </TransformationDictionary>"""
    m = f"""<RegressionModel functionName="regression">{schema("y", "c", "k")}
      <RegressionTable intercept="0"><CategoricalPredictor name="cat" value="B-yes"
      coefficient="1"/><CategoricalPredictor name="up" value="A" coefficient="10"/>
      </RegressionTable></RegressionModel>"""
    got = score(m, {"c": ["b", "a", "b", None], "k": ["yes", "yes", "no", "yes"]}, td)
    # c missing: 'up' and 'cat' are missing, both categorical predictors ignored
    np.testing.assert_array_equal(got["y"], [1.0, 10.0, 0.0, 0.0])
    # a field that accepts undeclared values cannot be mapped category by category
    lax = m.replace(schema("y", "c", "k"), schema(
        "y", "k", extra='<MiningField name="c" invalidValueTreatment="asIs"/>'))
    with pytest.raises(PMMLError, match="values are all declared"):
        read_pmml_bytes(pmml(lax, td))


def test_number_to_text_dates_and_concat():
    dd = DD.replace("</DataDictionary>", '<DataField name="yr" optype="categorical" '
                    'dataType="integer"><Value value="70"/><Value value="71"/></DataField>'
                    "</DataDictionary>")
    td = """<TransformationDictionary>
      <DerivedField name="s" dataType="string" optype="categorical"><FieldRef field="yr"/>
      </DerivedField>
      <DerivedField name="iso" dataType="string" optype="categorical">
        <Apply function="concat"><Constant dataType="string">19</Constant><FieldRef field="s"/>
        <Constant dataType="string">-01-01</Constant></Apply></DerivedField>
      <DerivedField name="d" dataType="date" optype="ordinal"><FieldRef field="iso"/>
      </DerivedField>
      <DerivedField name="days" dataType="integer" optype="continuous">
        <Apply function="dateDaysSinceYear"><FieldRef field="d"/><Constant>1970</Constant>
        </Apply></DerivedField>
    </TransformationDictionary>"""
    m = f"""<RegressionModel functionName="regression">{schema("y", "yr")}
      <RegressionTable intercept="0"><NumericPredictor name="days" coefficient="1"/>
      </RegressionTable></RegressionModel>"""
    doc = pmml(m, td).replace(DD.encode(), dd.encode())
    model = Model(read_pmml_bytes(doc))
    got = model.score_arrays({"yr": np.array([70.0, 71.0, math.nan])})["y"]
    np.testing.assert_array_equal(got[:2], [0.0, 365.0])
    assert math.isnan(got[2])


def test_entity_id_median_and_multi_target_chain():
    tree = f"""<TreeModel functionName="regression" missingValueStrategy="nullPrediction">
      {schema("y", "x")}<Output><OutputField name="node" feature="entityId"/></Output>
      <Node id="1" score="0"><True/><Node id="2" score="5"><SimplePredicate field="x"
      operator="lessOrEqual" value="0"/></Node><Node id="3" score="7"><SimplePredicate
      field="x" operator="greaterThan" value="0"/></Node></Node></TreeModel>"""
    got = score(tree, {"x": [-1.0, 1.0, math.nan]})
    np.testing.assert_array_equal(got["node"][:2], [2.0, 3.0])
    assert math.isnan(got["node"][2]) and math.isnan(got["y"][2])

    def reg(target: str, b: float) -> str:
        return f"""<Segment weight="{b}"><True/><RegressionModel functionName="regression">
          {schema(target, "x")}<RegressionTable intercept="{b}"><NumericPredictor name="x"
          coefficient="1"/></RegressionTable></RegressionModel></Segment>"""
    med = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="weightedMedian">{reg("y", 1)}{reg("y", 2)}{reg("y", 4)}
      </Segmentation></MiningModel>"""
    np.testing.assert_array_equal(score(med, {"x": [0.0]})["y"], [4.0])
    multi = f"""<MiningModel functionName="regression"><MiningSchema>
      <MiningField name="y" usageType="target"/><MiningField name="z" usageType="target"/>
      <MiningField name="x"/></MiningSchema>
      <Segmentation multipleModelMethod="x-multiModelChain">{reg("y", 1)}{reg("z", 2)}
      </Segmentation></MiningModel>"""
    got = score(multi, {"x": [1.0]})
    assert (got["y"][0], got["z"][0]) == (2.0, 3.0)


def test_numeric_validity_from_intervals():
    dd = DD.replace('<DataField name="x" optype="continuous" dataType="double"/>',
                    '<DataField name="x" optype="continuous" dataType="double">'
                    '<Interval closure="closedOpen" leftMargin="0" rightMargin="10"/>'
                    "</DataField>")
    m = f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="2"/>
      </RegressionTable></RegressionModel>"""

    def model(treatment: str) -> Model:
        doc = pmml(m.replace('<MiningField name="x"/>',
                             f'<MiningField name="x" {treatment}/>')).replace(
            DD.encode(), dd.encode())
        return Model(read_pmml_bytes(doc))

    strict = model("")
    np.testing.assert_array_equal(strict.predict({"x": np.array([0.0, 9.5])}), [0.0, 19.0])
    assert math.isnan(strict.predict({"x": np.array([math.nan])})[0])  # missing is not invalid
    with pytest.raises(InputError, match="row 1: the value of 'x' is outside"):
        strict.predict({"x": np.array([1.0, 10.0])})
    lax = model('invalidValueTreatment="asMissing" missingValueReplacement="5"')
    np.testing.assert_array_equal(lax.predict({"x": np.array([1.0, 10.0, -1.0, math.nan])}),
                                  [2.0, 10.0, 10.0, 10.0])
    as_is = model('invalidValueTreatment="asIs"')
    assert as_is.predict({"x": np.array([10.0])})[0] == 20.0


def _x_declared(values: str) -> bytes:
    """A regression y = 2x with x declared by ``values`` (Interval / Value elements)."""
    dd = DD.replace('<DataField name="x" optype="continuous" dataType="double"/>',
                    f'<DataField name="x" optype="continuous" dataType="double">{values}'
                    "</DataField>")
    m = f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="2"/>
      </RegressionTable></RegressionModel>"""
    return pmml(m).replace(DD.encode(), dd.encode())


def test_a_value_declared_invalid_is_invalid_inside_an_interval_too():
    for values in ('<Interval closure="closedClosed" leftMargin="0" rightMargin="10"/>'
                   '<Value value="3" property="invalid"/>',
                   '<Value value="3" property="invalid"/>'):  # the only declaration
        doc = _x_declared(values)
        strict = Model(read_pmml_bytes(doc))
        np.testing.assert_array_equal(strict.predict({"x": np.array([2.0, 4.0])}), [4.0, 8.0])
        assert math.isnan(strict.predict({"x": np.array([math.nan])})[0])
        with pytest.raises(InputError, match="row 1: the value of 'x' is outside"):
            strict.predict({"x": np.array([2.0, 3.0])})
        lax = Model(read_pmml_bytes(doc.replace(
            b'<MiningField name="x"/>',
            b'<MiningField name="x" invalidValueTreatment="asMissing" '
            b'missingValueReplacement="5"/>')))
        np.testing.assert_array_equal(lax.predict({"x": np.array([3.0, 4.0, math.nan])}),
                                      [10.0, 8.0, 10.0])


def test_missing_value_treatment_return_invalid_refuses_a_missing_value():
    doc = _x_declared('<Interval closure="closedClosed" leftMargin="0" rightMargin="10"/>')
    m = Model(read_pmml_bytes(doc.replace(
        b'<MiningField name="x"/>',
        b'<MiningField name="x" missingValueTreatment="returnInvalid"/>')))
    assert m.predict({"x": np.array([1.0])})[0] == 2.0
    with pytest.raises(InputError, match="row 1: the value of 'x' is missing or outside"):
        m.predict({"x": np.array([1.0, math.nan])})
    with pytest.raises(InputError, match="row 0: the value of 'x' is missing or outside"):
        m.predict({"x": np.array([11.0])})
    # an invalid value made missing is refused as missing
    m = Model(read_pmml_bytes(doc.replace(
        b'<MiningField name="x"/>',
        b'<MiningField name="x" invalidValueTreatment="asMissing" '
        b'missingValueTreatment="returnInvalid"/>')))
    with pytest.raises(InputError, match=r"row 0: the value of 'x' is missing \("
                                         "missingValueTreatment='returnInvalid'"):
        m.predict({"x": np.array([11.0])})


def test_a_segment_treats_invalid_values_its_parent_kept():
    doc = _x_declared('<Interval closure="closedClosed" leftMargin="0" rightMargin="10"/>')
    seg = f"""<MiningModel functionName="regression">
      {schema("y", extra='<MiningField name="x" invalidValueTreatment="asIs"/>')}
      <Segmentation multipleModelMethod="sum"><Segment id="1"><True/>
      <RegressionModel functionName="regression">
      {schema("y", extra='<MiningField name="x" invalidValueTreatment="asMissing" '
              'missingValueReplacement="5"/>')}
      <RegressionTable intercept="1"><NumericPredictor name="x" coefficient="2"/>
      </RegressionTable></RegressionModel></Segment></Segmentation></MiningModel>"""
    start = doc.index(b"<RegressionModel")
    doc = doc[:start] + seg.encode() + doc[doc.index(b"</PMML>"):]
    m = Model(read_pmml_bytes(doc))
    # 50 is invalid: asIs above, asMissing (then 5) in the segment: 1 + 2 * 5
    np.testing.assert_array_equal(m.predict({"x": np.array([1.0, 50.0, math.nan])}),
                                  [3.0, 11.0, 11.0])


def test_pmml_bundles_round_trip_through_disk(tmp_path):
    from scorer.bundle import read_bundle, write_bundle

    m = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="sum">{_seg_tree(1, 10)}{_seg_tree(2, 20)}
      </Segmentation></MiningModel>"""
    tree = f"""<TreeModel functionName="regression">{schema("y", "x", "c")}<Node score="0">
      <True/><Node score="1"><SimpleSetPredicate field="c" booleanOperator="isNotIn">
      <Array type="string">a</Array></SimpleSetPredicate></Node></Node></TreeModel>"""
    for doc in (m, tree):
        b = read_pmml_bytes(pmml(doc, TRANSFORMS))
        write_bundle(b, tmp_path / "b", overwrite=True)
        X = {"x": np.array([-1.0, 2.0]), "c": np.array(["a", "b"], dtype=object)}
        X = {f.name: X[f.name] for f in b.inputs}
        a1 = Model(b).score_arrays(X)
        a2 = Model(read_bundle(tmp_path / "b")).score_arrays(X)
        for k in a1:
            np.testing.assert_array_equal(a1[k], a2[k])


# --- reader gaps: linear-tree leaves, decisions, segment outputs, ordinal targets ------------
def _linear_tree(weight: str = "", *, ms: str = "defaultChild") -> str:
    """Two trees over x; the first's leaves hold regressions over x and z (LightGBM-style)."""
    t1 = f"""<Segment id="1"{weight}><True/><TreeModel functionName="regression"
        missingValueStrategy="{ms}">{schema("y", "x", "z")}
      <Node id="0" score="100" defaultChild="1"><True/>
        <Node id="1" score="10"><SimplePredicate field="x" operator="lessOrEqual" value="1"/>
          <Regression functionName="regression"><RegressionTable intercept="0.5">
            <NumericPredictor name="x" coefficient="2"/>
            <NumericPredictor name="z" coefficient="-3"/>
          </RegressionTable></Regression></Node>
        <Node id="2" score="20"><SimplePredicate field="x" operator="greaterThan" value="1"/>
          <Regression functionName="regression"><RegressionTable intercept="-1">
            <NumericPredictor name="z" coefficient="4"/></RegressionTable></Regression></Node>
      </Node></TreeModel></Segment>"""
    t2 = f"""<Segment id="2"{weight}><True/><TreeModel functionName="regression">
        {schema("y", "x")}<Node score="0"><True/>
        <Node score="7"><SimplePredicate field="x" operator="lessOrEqual" value="3"/></Node>
        <Node score="8"><SimplePredicate field="x" operator="greaterThan" value="3"/></Node>
      </Node></TreeModel></Segment>"""
    method = "weightedSum" if weight else "sum"
    return f"""<MiningModel functionName="regression">{schema("y", "x", "z")}
      <Segmentation multipleModelMethod="{method}">{t1}{t2}</Segmentation></MiningModel>"""


def _linear_tree_expected(x: np.ndarray, z: np.ndarray, w: float = 1.0) -> np.ndarray:
    # a leaf's regression, or its score where a predictor is missing (LightGBM's fallback);
    # a missing x takes the default child (node 1)
    left = np.where(np.isnan(x) | (x <= 1), 0.5 + x * 2 + z * -3, -1 + z * 4)
    left_score = np.where(np.isnan(x) | (x <= 1), 10.0, 20.0)
    left = np.where(np.isnan(left), left_score, left)
    right = np.where(x <= 3, 7.0, np.where(x > 3, 8.0, np.nan))
    return w * left + w * right


@pytest.mark.parametrize("fast", [True, False])
def test_linear_tree_leaves(fast, monkeypatch):
    from scorer.pmml import trees

    monkeypatch.setattr(trees, "FAST_PATH", fast)
    from scorer.kernels.expression import OPCODES

    m = _linear_tree()
    assert ("tree_ensemble" in ops(m)) == fast
    steps = read_pmml_bytes(pmml(m)).steps
    # the node values are selected lazily: only the reached node's regression runs
    assert any(OPCODES["SKIP_UNLESS"] in s.tables["program"]["opcode"] for s in steps
               if s.op == "expression")
    x = np.array([0.0, 1.0, 2.5, 5.0, 0.5, 2.0])
    z = np.array([1.0, -2.0, 0.25, 3.0, math.nan, math.nan])
    got = score(m, {"x": x, "z": z})
    np.testing.assert_allclose(got["y"], _linear_tree_expected(x, z), rtol=1e-15,
                               equal_nan=True)


def test_linear_tree_leaves_weighted_and_refused_in_classification():
    x = np.array([0.0, 2.0, 4.0])
    z = np.array([1.0, math.nan, 2.0])
    got = score(_linear_tree(' weight="0.5"'), {"x": x, "z": z})
    np.testing.assert_allclose(got["y"], _linear_tree_expected(x, z, 0.5), rtol=1e-15)
    cls = """<TreeModel functionName="classification">{}<Node score="yes"><True/>
      <Node score="no"><SimplePredicate field="x" operator="lessOrEqual" value="1"/>
        <Regression functionName="regression"><RegressionTable intercept="1"/></Regression>
      </Node></Node></TreeModel>""".format(schema("k", "x"))
    with pytest.raises(PMMLError, match=r"line \d+.*<Regression>: .*regression trees only"):
        load(cls)
    two = _linear_tree().replace("</Regression></Node>",
                                 "</Regression><Regression/></Node>", 1)
    with pytest.raises(PMMLError, match="at most one Regression"):
        load(two)


def test_decision_output_is_a_boolean_label():
    m = f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <Output><OutputField name="score" feature="predictedValue"/>
        <OutputField name="outlier" optype="categorical" dataType="boolean" feature="decision">
          <Decisions><Decision value="true"/><Decision value="false"/></Decisions>
          <Apply function="lessOrEqual"><FieldRef field="score"/><Constant>0</Constant></Apply>
        </OutputField>
        <OutputField name="flag" dataType="integer" feature="transformedValue">
          <Apply function="if"><FieldRef field="outlier"/><Constant>-1</Constant>
            <Constant>1</Constant></Apply></OutputField></Output>
      <RegressionTable intercept="-1"><NumericPredictor name="x" coefficient="1"/>
      </RegressionTable></RegressionModel>"""
    x = [0.0, 1.0, 3.0]
    got = score(m, {"x": x})
    assert [bool(v) for v in got["outlier"]] == [v - 1 <= 0 for v in x]
    assert got["outlier"].dtype == np.bool_
    np.testing.assert_array_equal(got["flag"], [-1 if v - 1 <= 0 else 1 for v in x])


def test_segment_entity_id_output():
    tree = """<Segment id="{sid}"><True/><TreeModel functionName="regression">{schema}
      <Node id="0" score="0"><True/>
        <Node id="{a}" score="1"><SimplePredicate field="x" operator="lessThan" value="{t}"/></Node>
        <Node id="{b}" score="2"><SimplePredicate field="x" operator="greaterOrEqual"
          value="{t}"/></Node></Node></TreeModel></Segment>"""
    segs = "".join(tree.format(sid=i, schema=schema("y", "x"), a=10 * i + 1, b=10 * i + 2, t=t)
                   for i, t in ((1, 0), (2, 5)))
    m = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Output><OutputField name="n1" dataType="integer" feature="entityId" segmentId="1"/>
        <OutputField name="n2" dataType="integer" feature="entityId" segmentId="2"/></Output>
      <Segmentation multipleModelMethod="sum">{segs}</Segmentation></MiningModel>"""
    x = np.array([-1.0, 3.0, 7.0])
    got = score(m, {"x": x})
    np.testing.assert_array_equal(got["n1"], np.where(x < 0, 11, 12))
    np.testing.assert_array_equal(got["n2"], np.where(x < 5, 21, 22))
    bad = m.replace('segmentId="2"', 'segmentId="9"')
    with pytest.raises(PMMLError, match="segmentId '9' is not a segment"):
        load(bad)
    with pytest.raises(PMMLError, match="feature 'probability'"):
        load(m.replace('feature="entityId" segmentId="1"',
                       'feature="probability" segmentId="1"'))


def test_model_chain_result_is_missing_where_its_last_segment_is_skipped():
    # segment 1 (no target: an anomaly score) feeds segment 2's predicate; where segment 2
    # does not run, the chain has no prediction of y
    m = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="modelChain">
        <Segment id="1"><True/><RegressionModel functionName="regression">
          <MiningSchema><MiningField name="x"/></MiningSchema>
          <Output><OutputField name="a" feature="predictedValue"/></Output>
          <RegressionTable intercept="0"><NumericPredictor name="x" coefficient="1"/>
          </RegressionTable></RegressionModel></Segment>
        <Segment id="2"><SimplePredicate field="a" operator="lessThan" value="2"/>
          <RegressionModel functionName="regression">{schema("y", "x")}
          <RegressionTable intercept="10"><NumericPredictor name="x" coefficient="3"/>
          </RegressionTable></RegressionModel></Segment>
      </Segmentation></MiningModel>"""
    x = np.array([0.0, 1.0, 5.0])
    got = score(m, {"x": x})
    np.testing.assert_array_equal(got["y"], np.where(x < 2, 10 + 3 * x, np.nan))


def test_model_chain_later_output_field_shadows_an_earlier_one_of_the_same_name():
    # sklearn2pmml's StackingClassifier: a member segment and the final segment both expose
    # 'p'; the model's 'p' is the final segment's (it was the member's)
    def seg(intercept: str, out: str) -> str:
        return f"""<Segment><True/><RegressionModel functionName="regression">
          <MiningSchema><MiningField name="x"/></MiningSchema>
          <Output>{out}</Output><RegressionTable intercept="{intercept}">
          <NumericPredictor name="x" coefficient="1"/></RegressionTable></RegressionModel>
          </Segment>"""
    m = f"""<MiningModel functionName="regression">{schema("y", "x")}
      <Segmentation multipleModelMethod="modelChain">
        {seg("1", '<OutputField name="m" feature="predictedValue" isFinalResult="false"/>'
                  '<OutputField name="p" feature="predictedValue"/>')}
        {seg("100", '<OutputField name="p" feature="predictedValue"/>')}
      </Segmentation></MiningModel>"""
    got = score(m, {"x": [0.0, 2.0]})
    np.testing.assert_array_equal(got["p"], [100.0, 102.0])


@pytest.mark.parametrize("norm,fn", [
    ("none", lambda v: v), ("logit", lambda v: 1 / (1 + np.exp(-v))),
    ("probit", lambda v: 0.5 * np.vectorize(math.erfc)(-v / math.sqrt(2)))])
def test_ordinal_target_tables_are_cumulative(norm, fn):
    dd = ('<DataField name="o" optype="ordinal" dataType="string"><Value value="lo"/>'
          '<Value value="mid"/><Value value="hi"/></DataField>')
    m = f"""<RegressionModel functionName="classification" normalizationMethod="{norm}">
      {schema("o", "x")}<Output>{"".join(
        f'<OutputField name="p_{c}" feature="probability" value="{c}"/>'
        for c in ("lo", "mid", "hi"))}</Output>
      <RegressionTable intercept="0.2" targetCategory="lo">
        <NumericPredictor name="x" coefficient="0.1"/></RegressionTable>
      <RegressionTable intercept="0.6" targetCategory="mid">
        <NumericPredictor name="x" coefficient="0.1"/></RegressionTable>
      <RegressionTable intercept="1" targetCategory="hi"/></RegressionModel>"""
    doc = pmml(m).replace(b"</DataDictionary>", dd.encode() + b"</DataDictionary>")
    model = Model(read_pmml_bytes(doc))
    x = np.array([-1.0, 0.0, 2.0])
    got = model.score_arrays({"x": x})
    ref = model.score_arrays({"x": x}, reference=True)
    c1, c2 = fn(0.2 + 0.1 * x), fn(0.6 + 0.1 * x)
    for name, want in (("p_lo", c1), ("p_mid", c2 - c1), ("p_hi", 1 - c2)):
        np.testing.assert_allclose(got[name], want, rtol=1e-14, atol=1e-16)
        np.testing.assert_array_equal(got[name], ref[name])
    probs = np.stack([c1, c2 - c1, 1 - c2], axis=1)
    assert list(got["o"]) == [("lo", "mid", "hi")[i] for i in probs.argmax(axis=1)]


def test_model_without_inputs_scores_one_row_per_record():
    m = """<TreeModel functionName="regression"><MiningSchema>
      <MiningField name="y" usageType="target"/></MiningSchema>
      <Node score="4.5"><True/></Node>
      <ModelVerification><VerificationFields><VerificationField field="y" column="y"/>
      </VerificationFields><InlineTable><row><y>4.5</y></row><row><y>4.5</y></row>
      </InlineTable></ModelVerification></TreeModel>"""
    model = load(m)
    assert model.bundle.inputs == []
    assert model.verify() == 2  # the verification rows are scored, not skipped
    np.testing.assert_array_equal(model.score_arrays(np.empty((3, 0)))["y"], [4.5] * 3)
    bad = m.replace("<row><y>4.5</y></row><row>", "<row><y>4.25</y></row><row>")
    assert bad != m
    with pytest.raises(VerificationError):
        Model(read_pmml_bytes(pmml(bad))).verify()


_INT_DD = ('<DataField name="yr" optype="categorical" dataType="integer">'
           + "".join(f'<Value value="{v}"/>' for v in (70, 71, 72, 80)) + "</DataField>")


def _int_set_tree(treatment: str) -> bytes:
    """Equality / set tests on an integer field with declared values; node 3's default child
    is a False node, which only a missing x reaches (JPMML's HistGradientBoosting form)."""
    m = f"""<TreeModel functionName="regression" missingValueStrategy="defaultChild">
      <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>
        <MiningField name="yr"{treatment}/></MiningSchema>
      <Node id="0" score="0" defaultChild="1"><True/>
        <Node id="1" score="1"><SimplePredicate field="yr" operator="equal" value="70"/></Node>
        <Node id="2" score="2" defaultChild="3"><SimpleSetPredicate field="yr"
            booleanOperator="isIn"><Array type="int">72 80</Array></SimpleSetPredicate>
          <Node id="3" score="3" defaultChild="4"><SimplePredicate field="x"
              operator="lessOrEqual" value="0"/>
            <Node id="4" score="4"><False/></Node>
            <Node id="5" score="5"><SimplePredicate field="x" operator="lessOrEqual"
              value="-5"/></Node>
            <Node id="6" score="6"><SimplePredicate field="x" operator="greaterThan"
              value="-5"/></Node></Node>
          <Node id="7" score="7"><SimplePredicate field="x" operator="greaterThan" value="0"/>
          </Node></Node></Node></TreeModel>"""
    return pmml(m).replace(b"</DataDictionary>", _INT_DD.encode() + b"</DataDictionary>")


@pytest.mark.parametrize("treatment", ["", ' invalidValueTreatment="asMissing"'])
def test_integer_set_splits_use_tree_ensemble(treatment, monkeypatch):
    from scorer.pmml import trees

    doc = _int_set_tree(treatment)
    fast = Model(read_pmml_bytes(doc))
    assert "tree_ensemble" in {s.op for s in fast.bundle.steps}
    monkeypatch.setattr(trees, "FAST_PATH", False)
    slow = Model(read_pmml_bytes(doc))
    assert "tree_ensemble" not in {s.op for s in slow.bundle.steps}
    X = {"x": np.array([-1.0, -1.0, 1.0, -10.0, math.nan, -1.0, 0.0]),
         "yr": np.array([70.0, 72.0, 80.0, 80.0, 80.0, math.nan, 71.0])}
    # yr 70 -> 1; yr 72/80: x > 0 -> 7, x <= -5 -> 5, else 6, x missing -> 3's default
    # child, the False node 4; yr missing -> 0's default child 1; yr 71: no true child
    want = [1.0, 6.0, 7.0, 5.0, 4.0, 1.0, math.nan]
    for model in (fast, slow):
        np.testing.assert_array_equal(model.score_arrays(X)["y"], want)
        np.testing.assert_array_equal(model.score_arrays(X, reference=True)["y"], want)
    one = {"x": np.array([0.0]), "yr": np.array([70.5])}
    if not treatment:  # undeclared values are refused, so the set tests see only declared ones
        with pytest.raises(InputError):
            fast.score_arrays(one)
    else:  # an undeclared value is missing: node 0's default child
        np.testing.assert_array_equal(fast.score_arrays(one)["y"], [1.0])


@pytest.mark.parametrize("extra,expr,msg", [
    ('<TransformationDictionary><DefineFunction name="tf" dataType="integer">'
     '<ParameterField name="d"/><TextIndex textField="d"><Constant>w</Constant></TextIndex>'
     '</DefineFunction></TransformationDictionary>',
     '<Apply function="tf"><FieldRef field="c"/></Apply>', "<TextIndex>: term frequencies"),
    ("", '<Lag field="x" n="2"/>', "<Lag>: values of earlier records"),
    ("", '<Apply function="+"><Lag field="x"/><Constant>1</Constant></Apply>',
     "<Lag>: values of earlier records"),
])
def test_record_and_text_expressions_are_refused_with_the_reason(extra, expr, msg):
    m = f"""<RegressionModel functionName="regression">{schema("y", "x", "c")}
      <LocalTransformations><DerivedField name="d" dataType="double">{expr}</DerivedField>
      </LocalTransformations><RegressionTable intercept="0">
      <NumericPredictor name="d" coefficient="1"/></RegressionTable></RegressionModel>"""
    with pytest.raises(PMMLError, match=rf"line \d+.*{msg}"):
        load(m, extra)


def test_date_time_inputs_are_refused_with_the_reason():
    doc = pmml(f"""<RegressionModel functionName="regression">{schema("y", "x")}
      <RegressionTable intercept="0"/></RegressionModel>""").replace(
        b"</DataDictionary>",
        b'<DataField name="t" optype="continuous" dataType="dateTime"/></DataDictionary>')
    with pytest.raises(PMMLError, match=r"<DataField>: dataType 'dateTime' not supported \(date"):
        read_pmml_bytes(doc)


# --- missing predictions ---------------------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
def test_no_prediction_is_a_missing_label_not_the_first_class(fast, monkeypatch):
    """nullPrediction: a missing value at a split leaves the row without a prediction; its
    probabilities are NaN and its label is missing (None), never the first class."""
    from scorer.pmml import trees as trees_mod

    monkeypatch.setattr(trees_mod, "FAST_PATH", fast)
    m = f"""<TreeModel functionName="classification" missingValueStrategy="nullPrediction">
      {schema("k", "x")}
      <Node score="no"><True/>
        <Node score="no"><SimplePredicate field="x" operator="lessOrEqual" value="0"/>
          <ScoreDistribution value="no" recordCount="3"/>
          <ScoreDistribution value="yes" recordCount="1"/></Node>
        <Node score="yes"><SimplePredicate field="x" operator="greaterThan" value="0"/>
          <ScoreDistribution value="no" recordCount="1"/>
          <ScoreDistribution value="yes" recordCount="3"/></Node>
      </Node></TreeModel>"""
    assert ("tree_ensemble" in ops(m)) == fast
    model = load(m)
    got = model.score_arrays({"x": np.array([-1.0, math.nan, 2.0])})
    assert list(got["k"]) == ["no", None, "yes"]
    assert np.isnan(got["probability(no)"][1]) and got["probability(no)"][0] == 0.75
    assert list(model.predict({"x": np.array([math.nan])})) == [None]

