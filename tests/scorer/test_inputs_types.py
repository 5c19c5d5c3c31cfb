"""A value is read by its field's declared type, the same way in every input form: numbers
sent as text follow XML Schema's xs:double (as PMML documents do), and a number that is
exactly an integer names the integer's category in a string field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scorer.errors import FieldTypeError, UnknownCategoryError
from scorer.model import Model
from scorer.pmml import read_pmml_bytes


def _model(cat_type: str) -> Model:
    """y = 1 for category 8, 2 for 4, 0 otherwise; + 10 * x. Field ``c`` of ``cat_type``
    (string or integer) with declared values 3, 4, 5, 6, 8, refused otherwise."""
    vals = "".join(f'<Value value="{v}"/>' for v in (3, 4, 5, 6, 8))
    return Model(read_pmml_bytes(f"""<PMML version="4.4"><Header/><DataDictionary>
<DataField name="c" optype="categorical" dataType="{cat_type}">{vals}</DataField>
<DataField name="x" optype="continuous" dataType="double"/>
<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>
<RegressionModel functionName="regression"><MiningSchema><MiningField name="y"
usageType="target"/><MiningField name="c"/><MiningField name="x"/></MiningSchema>
<RegressionTable intercept="0"><CategoricalPredictor name="c" value="8" coefficient="1"/>
<CategoricalPredictor name="c" value="4" coefficient="2"/>
<NumericPredictor name="x" coefficient="10"/></RegressionTable></RegressionModel>
</PMML>""".encode()))


#: every input form the scorer takes, from columns {name: list of values}
FORMS: dict[str, Callable[[dict[str, list]], Any]] = {
    "dataframe": lambda cols: pd.DataFrame(cols),
    "dict of arrays": lambda cols: {k: np.array(v, dtype=object) for k, v in cols.items()},
    "dict of lists": lambda cols: dict(cols),
    "list of dicts": lambda cols: [dict(zip(cols, r, strict=True))
                                   for r in zip(*cols.values(), strict=True)],
    "object array": lambda cols: np.array(list(zip(*cols.values(), strict=True)),
                                          dtype=object),
}


def _score(model: Model, form: str, cols: dict[str, list]) -> list[float]:
    return list(model.score_arrays(FORMS[form](cols))["y"])


def _one_row(model: Model, row: dict[str, Any]) -> float:
    return float(model.score_arrays(row)["y"][0])


@pytest.mark.parametrize("form", FORMS)
def test_a_float_that_is_an_integer_names_the_integer_category(form):
    """'unknown category 8.0': pandas makes an integer column holding a missing value a
    float column; 8.0 is the category "8" (PMML's conversion of a double to a string)."""
    model = _model("string")
    assert model.bundle.inputs[0].type == "string"
    got = _score(model, form, {"c": [8.0, np.float64(4.0), 3, None], "x": [0.0] * 4})
    # (missing: the categorical predictors are ignored, as JPMML does)
    assert got == [1.0, 2.0, 0.0, 0.0]
    assert _one_row(model, {"c": np.float32(8.0), "x": 0.0}) == 1.0
    # not an integer, or not a category: unknown, and this field refuses unknown values
    for bad in (8.5, 7.0, math.inf, True):
        with pytest.raises(UnknownCategoryError, match="unknown category"):
            _score(model, form, {"c": [bad], "x": [0.0]})


def test_a_pandas_integer_column_with_a_missing_value():
    model = _model("string")
    df = pd.DataFrame({"c": [8, 4, None], "x": [0.0, 0.0, 0.0]})
    assert df["c"].dtype == np.float64
    got = list(model.score_arrays(df)["y"])
    assert got == [1.0, 2.0, 0.0]  # (missing: the categorical predictors are ignored)


@pytest.mark.parametrize("form", FORMS)
def test_text_for_an_integer_field_is_read_as_the_declared_type(form):
    """The field is declared integer, so the text "8" is the integer 8 (scikit-learn would
    compare by Python type and call it unknown; the schema decides here, as in PMML)."""
    model = _model("integer")
    assert model.bundle.inputs[0].type != "string"
    assert _score(model, form, {"c": ["8", " 4 ", 8.0, 4], "x": ["1", "0", "1e-1", 0]}) == \
        [11.0, 2.0, 2.0, 2.0]


NOT_NUMBERS = ["1_000", "\u0661\u0662", "0x10", "1 0", "inf", "infinity", "+-1", "1e",
               "\uff11", "\u00a01"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_numbers_as_text_follow_xs_double(form, text):
    """Python's float() read '1_000' as 1000 (and Arabic-Indic digits, 'inf', hex-free
    spellings with odd spaces): a BYTES tensor or a string column carried them in."""
    model = _model("integer")
    with pytest.raises(FieldTypeError, match=r"field 'x' expects numbers \(double\), got"):
        _score(model, form, {"c": [8], "x": [text]})


def test_numbers_as_text_in_one_row_and_special_values():
    model = _model("integer")
    with pytest.raises(FieldTypeError, match="'1_000'"):
        _one_row(model, {"c": 8, "x": "1_000"})
    assert _one_row(model, {"c": 8, "x": "1000"}) == 10001.0
    assert _one_row(model, {"c": 8, "x": "INF"}) == math.inf
    assert math.isnan(_one_row(model, {"c": 8, "x": "NaN"}))  # a missing-value marker


def test_a_bytes_matrix_over_grpc_follows_the_same_rule():
    """The gRPC codec hands a BYTES matrix's text to the input encoder unconverted: the
    same rule applies (1000 is a number, 1_000 is refused, "8" is category 8)."""
    from tritonclient.grpc import service_pb2

    from scorer.server.codec import ModelSchema, decode_request

    model = _model("integer")
    schema = ModelSchema(model)

    def score(rows: list[list[str]]) -> list[float]:
        req = service_pb2.ModelInferRequest(model_name="m")
        t = req.inputs.add(name="rows", datatype="BYTES", shape=[len(rows), 2])
        t.contents.bytes_contents.extend(v.encode() for r in rows for v in r)
        dec = decode_request(req, schema, max_rows=100)
        return list(model.score_arrays(dec.inputs)["y"])

    assert score([["8", "1000"], ["4", "0"]]) == [10001.0, 2.0]
    with pytest.raises(FieldTypeError, match="'1_000'"):
        score([["8", "1_000"]])
