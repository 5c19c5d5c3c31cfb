"""Numbers in PMML documents are read as XML Schema reads them (one strict parser), model
parameters must be finite, and derived fields that refer to each other in a cycle are
refused with the line."""

from __future__ import annotations

import math

import pytest

from scorer.pmml import PMMLError, read_pmml_bytes
from scorer.pmml.fields import xs_double, xs_integer

#: spellings Python's float() / int() accept but xs:double / xs:integer do not
NOT_XS = ["", " ", "1_000", "\u0661\u0662", "0x10", "1 000", "1e", ".", "+-1", "infinity",
          "inf", "nan", "-nan", "\u00a01", "1\u2009", "\uff11", "1.0f", "1d"]


@pytest.mark.parametrize("text", NOT_XS)
def test_xs_double_refuses_what_python_float_accepts(text):
    with pytest.raises(ValueError, match="not a number"):
        xs_double(text)


@pytest.mark.parametrize("text,want", [
    ("1", 1.0), ("-1.5", -1.5), ("+.5", 0.5), ("5.", 5.0), ("1E3", 1000.0), ("1e-3", 0.001),
    (" \t2.5\n", 2.5), ("INF", math.inf), ("-INF", -math.inf), ("Infinity", math.inf),
    ("-Infinity", -math.inf), ("1e309", math.inf), ("-0", -0.0),
])
def test_xs_double_reads_the_lexical_space(text, want):
    assert xs_double(text) == want
    assert math.isnan(xs_double("NaN"))


def test_xs_integer():
    assert xs_integer(" -12 ") == -12
    for bad in ["1.0", "1_0", "\u0661", "0x1", "1e2", ""]:
        with pytest.raises(ValueError, match="not an integer"):
            xs_integer(bad)


def regression(coefficient: str = "2", intercept: str = "0.5", td: str = "",
               predictor: str = "x") -> bytes:
    return f"""<PMML version="4.4"><Header/>
<DataDictionary>
  <DataField name="x" optype="continuous" dataType="double"/>
  <DataField name="y" optype="continuous" dataType="double"/>
</DataDictionary>{td}
<RegressionModel functionName="regression">
  <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/></MiningSchema>
  <RegressionTable intercept="{intercept}">
    <NumericPredictor name="{predictor}" coefficient="{coefficient}"/>
  </RegressionTable></RegressionModel></PMML>""".encode()


@pytest.mark.parametrize("text", ["", "0x10", "1_000", "\u0661", "1 0", " nan "])
@pytest.mark.parametrize("attr", ["coefficient", "intercept"])
def test_parameters_that_are_not_numbers_are_refused_with_the_line(attr, text):
    doc = regression(**{attr: text})
    line = 8 if attr == "intercept" else 9
    with pytest.raises(PMMLError, match=rf"PMML line {line}, .*{attr}='{text}' is not a "
                       "number"):
        read_pmml_bytes(doc)


@pytest.mark.parametrize("text", ["NaN", "INF", "-INF", "Infinity", "1e309", "-1e400"])
@pytest.mark.parametrize("attr", ["coefficient", "intercept"])
def test_non_finite_parameters_are_refused(attr, text):
    """A coefficient of NaN / inf loaded and then made every row NaN or inf."""
    with pytest.raises(PMMLError, match=f"{attr}='{text}' is not a finite number"):
        read_pmml_bytes(regression(**{attr: text}))


def test_well_formed_parameters_still_load():
    assert read_pmml_bytes(regression("  1E0 ", "-.5")).steps


@pytest.mark.parametrize("doc,msg", [
    # a tree score, a Target rescale, an Array entry, a count attribute
    (b'<TreeModel functionName="regression"><MiningSchema><MiningField name="y" '
     b'usageType="target"/><MiningField name="x"/></MiningSchema><Node score="0"><True/>'
     b'<Node score="1_0"><True/></Node></Node></TreeModel>', "score='1_0' is not a number"),
    (b'<TreeModel functionName="regression"><MiningSchema><MiningField name="y" '
     b'usageType="target"/><MiningField name="x"/></MiningSchema><Targets><Target field="y" '
     b'rescaleFactor="NaN"/></Targets><Node score="0"><True/></Node></TreeModel>',
     "rescaleFactor='NaN' is not a finite number"),
])
def test_other_numbers_use_the_same_rule(doc, msg):
    full = regression().split(b"<RegressionModel")[0] + doc + b"</PMML>"
    with pytest.raises(PMMLError, match=msg):
        read_pmml_bytes(full)


def test_comparison_constants_may_be_infinite_but_not_lenient():
    """A split value or Constant is compared with inputs: INF is a value there; '1_0' is not."""
    td = ('<TransformationDictionary><DerivedField name="d" dataType="double" '
          'optype="continuous"><Apply function="min"><FieldRef field="x"/><Constant '
          'dataType="double">{}</Constant></Apply></DerivedField></TransformationDictionary>')
    assert read_pmml_bytes(regression(td=td.format("INF"), predictor="d")).steps
    with pytest.raises(PMMLError, match=r"line 5, .*'1_0' is not a number"):
        read_pmml_bytes(regression(td=td.format("1_0"), predictor="d"))
    with pytest.raises(PMMLError, match=r"line 5, .*'' is not a number"):
        read_pmml_bytes(regression(td=td.format(""), predictor="d"))


def test_a_cycle_of_derived_fields_is_refused_with_the_line():
    """It failed with AttributeError: 'NoneType' object has no attribute 'column'."""
    td = """
<TransformationDictionary>
  <DerivedField name="a" dataType="double" optype="continuous">
    <Apply function="+"><FieldRef field="b"/><Constant>1</Constant></Apply></DerivedField>
  <DerivedField name="b" dataType="double" optype="continuous">
    <Apply function="*"><FieldRef field="a"/><FieldRef field="x"/></Apply></DerivedField>
  <DerivedField name="c" dataType="double" optype="continuous">
    <FieldRef field="c"/></DerivedField>
</TransformationDictionary>"""
    with pytest.raises(PMMLError, match=r"PMML line 7, column 3: <DerivedField>: derived "
                       r"fields refer to each other in a cycle: 'a' -> 'b' -> 'a'"):
        read_pmml_bytes(regression(td=td, predictor="a"))
    with pytest.raises(PMMLError, match=r"line 11, column 3: <DerivedField>: .* cycle: 'c' -> 'c'"):
        read_pmml_bytes(regression(td=td, predictor="c"))
