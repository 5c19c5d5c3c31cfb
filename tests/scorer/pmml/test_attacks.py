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


def _nested_functions(depth: int) -> bytes:
    """f_i(a) = f_{i-1}(a) + f_{i-1}(a): 2^depth inlined calls from a few kilobytes."""
    fns = ['<DefineFunction name="f0" optype="continuous" dataType="double">'
           '<ParameterField name="a"/><FieldRef field="a"/></DefineFunction>']
    fns += [f'<DefineFunction name="f{i}" optype="continuous" dataType="double">'
            f'<ParameterField name="a"/><Apply function="+"><Apply function="f{i - 1}">'
            f'<FieldRef field="a"/></Apply><Apply function="f{i - 1}"><FieldRef field="a"/>'
            "</Apply></Apply></DefineFunction>" for i in range(1, depth + 1)]
    field = (f'<DerivedField name="d" dataType="double" optype="continuous"><Apply '
             f'function="f{depth}"><FieldRef field="x"/></Apply></DerivedField>')
    return regression(derived("".join(fns) + field), predictor="d")


def _svm(n: str) -> bytes:
    return (f'<PMML version="4.4"><Header/>{DD}<SupportVectorMachineModel '
            'functionName="regression" kernelType="linear"><MiningSchema><MiningField '
            'name="y" usageType="target"/><MiningField name="x"/></MiningSchema>'
            '<LinearKernelType/><VectorDictionary numberOfVectors="1"><VectorFields '
            'numberOfFields="1"><FieldRef field="x"/></VectorFields><VectorInstance id="1">'
            f'<REAL-SparseArray n="{n}"><Indices>1</Indices><REAL-Entries>2</REAL-Entries>'
            '</REAL-SparseArray></VectorInstance></VectorDictionary><SupportVectorMachine>'
            '<SupportVectors numberOfSupportVectors="1" numberOfAttributes="1"><SupportVector '
            'vectorId="1"/></SupportVectors><Coefficients numberOfCoefficients="1" '
            'absoluteValue="0"><Coefficient value="1"/></Coefficients></SupportVectorMachine>'
            "</SupportVectorMachineModel></PMML>").encode()


def _replace_bomb() -> bytes:
    """One 9,000-character category and a 90,000-character replacement of the empty match:
    a 99 KB document that made 1 GB of category text."""
    dd = ('<DataDictionary><DataField name="s" optype="categorical" dataType="string">'
          f'<Value value="{"a" * 9000}"/></DataField><DataField name="y" '
          'optype="continuous" dataType="double"/></DataDictionary>')
    td = derived('<DerivedField name="r" dataType="string" optype="categorical"><Apply '
                 f'function="replace"><FieldRef field="s"/><Constant>x*</Constant><Constant>'
                 f'{"b" * 90000}</Constant></Apply></DerivedField>')
    return (f'<PMML version="4.4"><Header/>{dd}{td}<TreeModel functionName="regression">'
            '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="s"/>'
            '</MiningSchema><Node score="0"><True/><Node score="1"><SimplePredicate '
            'field="r" operator="equal" value="b"/></Node></Node></TreeModel></PMML>').encode()


REFUSED.update({
    "nested-functions-exponential": (_nested_functions(22), PMMLError, "more than"),
    "svm-sparse-array-of-a-trillion": (_svm("1000000000000"), PMMLError,
                                       "declares n=1000000000000 entries for 1"),
    "svm-sparse-array-negative": (_svm("-1"), PMMLError, "declares n=-1 entries"),
    "replace-bomb": (_replace_bomb(), PMMLError, "MiB of category text"),
    "value-without-value": (regression().replace(
        b'dataType="double"/></DataDictionary>',
        b'dataType="double"><Value/></DataField></DataDictionary>'), PMMLError,
        "<Value>: has no 'value' attribute"),
    "no-target-no-outputs": (regression().replace(
        b'<MiningField name="y" usageType="target"/>', b""), PMMLError, "defines no outputs"),
})


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



def test_many_categories_cost_linear_time():
    """N declared categories, all listed in one isIn Array: N lookups of a category's code.
    By list position they cost O(N^2) (80k categories: 40 s) and no instruction budget
    counted them; counted here, the lookups are dictionary probes."""
    from scorer.pmml import fields

    def tree(n: int) -> bytes:
        values = "".join(f'<Value value="c{i}"/>' for i in range(n))
        arr = " ".join(f"c{i}" for i in range(n))
        return ('<PMML version="4.4"><Header/><DataDictionary><DataField name="s" '
                f'optype="categorical" dataType="string">{values}</DataField><DataField '
                'name="y" optype="continuous" dataType="double"/></DataDictionary><TreeModel '
                'functionName="regression"><MiningSchema><MiningField name="y" '
                'usageType="target"/><MiningField name="s"/></MiningSchema><Node score="0">'
                '<True/><Node score="1"><SimpleSetPredicate field="s" booleanOperator="isIn">'
                f'<Array n="{n}" type="string">{arr}</Array></SimpleSetPredicate></Node></Node>'
                "</TreeModel></PMML>").encode()

    calls = []
    real = list.index

    class Counting(list):
        def index(self, *a):  # type: ignore[no-untyped-def]
            calls.append(1)
            return real(self, *a)

    read_pmml_bytes(tree(3000))
    # every category coded by its position in a dictionary: no scan of the vocabulary
    col = fields.Col(column="s", dtype="string", vocab=Counting(f"c{i}" for i in range(3000)))
    assert [col.code(f"c{i}") for i in (0, 2999, 1500)] == [0.0, 2999.0, 1500.0]
    assert calls == []
