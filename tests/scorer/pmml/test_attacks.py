"""A corpus of hostile PMML documents: each is refused with the right error, or loads safely,
at once. (DTDs and entities, size and depth caps: test_security.py; regular expressions:
test_regex.py, whose pathological patterns run in a child process with a timeout.)"""

from __future__ import annotations

import pytest

from scorer.errors import BundleFormatError
from scorer.pmml import PMMLError, PMMLSecurityError, read_pmml_bytes

DD = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
      '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>')


def regression(td: str = "", predictor: str = "x", extra: str = "") -> bytes:
    return (f'<PMML version="4.4"><Header/>{DD}{td}<RegressionModel functionName="regression">'
            '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>'
            f'</MiningSchema>{extra}<RegressionTable intercept="0"><NumericPredictor '
            f'name="{predictor}" coefficient="1"/></RegressionTable></RegressionModel>'
            "</PMML>").encode()


def set_tree(n: str) -> bytes:
    """A tree splitting on ``x`` isIn an Array declaring ``n`` entries (holding 3)."""
    return (f'<PMML version="4.4"><Header/>{DD}<TreeModel functionName="regression">'
            '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>'
            '</MiningSchema><Node score="0"><True/><Node score="1"><SimpleSetPredicate '
            f'field="x" booleanOperator="isIn"><Array n="{n}" type="real">1 2 3</Array>'
            "</SimpleSetPredicate></Node></Node></TreeModel></PMML>").encode()


def derived(fields: str) -> str:
    return f"<TransformationDictionary>{fields}</TransformationDictionary>"


def chain(n: int) -> bytes:
    """d0 = x, d_i = d_{i-1} + 1: a reference chain n fields deep (recursion in the reader)."""
    fields = ['<DerivedField name="d0" dataType="double" optype="continuous">'
              '<FieldRef field="x"/></DerivedField>']
    fields += [f'<DerivedField name="d{i}" dataType="double" optype="continuous"><Apply '
               f'function="+"><FieldRef field="d{i - 1}"/><Constant>1</Constant></Apply>'
               "</DerivedField>" for i in range(1, n)]
    return regression(derived("".join(fields)), predictor=f"d{n - 1}")


FUNCTION_LOOP = derived(
    '<DefineFunction name="f" optype="continuous" dataType="double"><ParameterField name="a"/>'
    '<Apply function="g"><FieldRef field="a"/></Apply></DefineFunction>'
    '<DefineFunction name="g" optype="continuous" dataType="double"><ParameterField name="a"/>'
    '<Apply function="f"><FieldRef field="a"/></Apply></DefineFunction>'
    '<DerivedField name="d" dataType="double" optype="continuous"><Apply function="f">'
    '<FieldRef field="x"/></Apply></DerivedField>')

CYCLE = derived(
    '<DerivedField name="a" dataType="double" optype="continuous"><FieldRef field="b"/>'
    '</DerivedField><DerivedField name="b" dataType="double" optype="continuous">'
    '<FieldRef field="a"/></DerivedField>')

#: (document, expected error class or None for "loads", message fragment)
REFUSED = {
    "xxe-external-entity": (
        b'<?xml version="1.0"?><!DOCTYPE PMML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<PMML version="4.4"><Header description="&xxe;"/></PMML>',
        PMMLSecurityError, "refused"),
    "billion-laughs": (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;'
        b'&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<PMML version="4.4"><Header copyright="&c;"/></PMML>',
        PMMLSecurityError, "refused"),
    "undeclared-entity": (b'<PMML version="4.4"><Header copyright="&lol;"/></PMML>',
                          BundleFormatError, "undefined entity"),
    "xinclude-is-not-followed": (
        b'<PMML version="4.4" xmlns:xi="http://www.w3.org/2001/XInclude"><Header/>'
        + DD.encode() + b'<xi:include href="file:///etc/passwd" parse="text"/></PMML>',
        PMMLError, "not supported"),
    "nesting-too-deep": (b"<PMML>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</PMML>",
                         PMMLSecurityError, "deeper than"),
    "derived-field-cycle": (regression(CYCLE, predictor="a"), PMMLError, "cycle"),
    "recursive-functions": (regression(FUNCTION_LOOP, predictor="d"), PMMLError, "nest"),
    "huge-integer-literal": (set_tree("9" * 5000), PMMLError, "is not an integer"),
    "overflowing-coefficient": (regression().replace(b'coefficient="1"',
                                                     b'coefficient="1e999999999"'),
                                PMMLError, "not a finite number"),
    "hex-coefficient": (regression().replace(b'coefficient="1"', b'coefficient="0x10"'),
                        PMMLError, "not a number"),
    "array-claims-a-billion-entries": (set_tree("1000000000"), PMMLError,
                                       "declares n=1000000000 entries but holds 3"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_hostile_documents_are_refused(name):
    data, err, msg = REFUSED[name]
    with pytest.raises(err, match=msg):
        read_pmml_bytes(data)


def test_a_long_reference_chain_loads_or_is_refused_cleanly():
    """3,000 DerivedFields each referring to the previous: deep recursion in the compiler
    ends as a result or a PMMLError, never a RecursionError or a crash."""
    try:
        bundle = read_pmml_bytes(chain(3000))
    except PMMLError as exc:
        assert "nests too deeply" in str(exc)
    else:
        assert bundle.steps

