"""PMML is untrusted input: DTDs, entities, oversize and overdeep documents are refused."""

from __future__ import annotations

import pytest

from scorer.errors import BundleFormatError
from scorer.pmml import PMMLSecurityError, read_pmml, read_pmml_bytes, safexml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<PMML version="4.4"><Header copyright="&lol2;"/></PMML>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE PMML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<PMML version="4.4"><Header description="&xxe;"/></PMML>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE PMML [<!ENTITY % remote SYSTEM "http://example.invalid/x.dtd"> %remote;]>
<PMML version="4.4"/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE PMML SYSTEM "http://example.invalid/pmml.dtd">
<PMML version="4.4"/>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL, PARAMETER_ENTITY, EXTERNAL_DTD],
                         ids=["billion-laughs", "external-entity", "parameter-entity",
                              "external-dtd"])
def test_dtds_and_entities_are_refused(doc):
    with pytest.raises(PMMLSecurityError, match="refused"):
        read_pmml_bytes(doc)


def test_nesting_depth_is_capped():
    deep = b"<PMML>" + b"<a>" * 50 + b"</a>" * 50 + b"</PMML>"
    with pytest.raises(PMMLSecurityError, match="deeper than 10"):
        safexml.parse_bytes(deep, max_depth=10)
    # the default cap still parses ordinary documents
    assert safexml.parse_bytes(deep).tag == "PMML"


def test_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(safexml, "MAX_BYTES", 100)
    p = tmp_path / "big.pmml"
    p.write_bytes(b"<PMML>" + b" " * 200 + b"</PMML>")
    with pytest.raises(PMMLSecurityError, match="over the 100-byte limit"):
        read_pmml(p)
    with pytest.raises(PMMLSecurityError, match="over the 100-byte limit"):
        safexml.parse_bytes(b"x" * 101)


def test_malformed_xml_is_a_format_error():
    with pytest.raises(BundleFormatError, match="not well-formed"):
        read_pmml_bytes(b"<PMML><DataDictionary></PMML>")


def test_elements_keep_their_line_and_namespaces_are_dropped():
    root = safexml.parse_bytes(b'<p:PMML xmlns:p="http://www.dmg.org/PMML-4_4">\n'
                               b'  <p:Header/>\n</p:PMML>')
    assert root.tag == "PMML"
    assert root.find("Header").line == 2


def test_deeply_nested_documents_compile_or_fail_cleanly():
    from scorer.pmml import PMMLError

    dd = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
          '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>')
    depth = 1900
    expr = '<Apply function="abs">' * depth + '<FieldRef field="x"/>' + "</Apply>" * depth
    doc = (f'<PMML version="4.4"><Header/>{dd}<TransformationDictionary><DerivedField '
           f'name="d" dataType="double" optype="continuous">{expr}</DerivedField>'
           '</TransformationDictionary><RegressionModel functionName="regression">'
           '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>'
           '</MiningSchema><RegressionTable intercept="0"><NumericPredictor name="d" '
           'coefficient="1"/></RegressionTable></RegressionModel></PMML>').encode()
    try:
        bundle = read_pmml_bytes(doc)
    except PMMLError as exc:  # acceptable: refused, not crashed
        assert "nests too deeply" in str(exc)
    else:
        assert bundle.steps
    nodes = "".join(f'<Node score="{i}"><SimplePredicate field="x" operator="lessThan" '
                    f'value="{depth - i}"/>' for i in range(depth - 10))
    tree = (f'<PMML version="4.4"><Header/>{dd}<TreeModel functionName="regression">'
            '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>'
            f'</MiningSchema><Node score="-1"><True/>{nodes}' + "</Node>" * (depth - 9)
            + "</TreeModel></PMML>").encode()
    try:
        read_pmml_bytes(tree)
    except PMMLError as exc:
        assert "nests too deeply" in str(exc)


def test_expression_blowup_is_bounded():
    import time

    from scorer.pmml import PMMLError

    cats = "".join(f'<Value value="c{i:03d}"/>' for i in range(100))
    dd = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
          f'<DataField name="s" optype="categorical" dataType="string">{cats}</DataField>'
          '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>')

    def doc(expr: str, fields: str = "x") -> bytes:
        act = "".join(f'<MiningField name="{f}"/>' for f in fields.split())
        return (f'<PMML version="4.4"><Header/>{dd}<TransformationDictionary><DerivedField '
                f'name="d" dataType="double" optype="continuous">{expr}</DerivedField>'
                '</TransformationDictionary><RegressionModel functionName="regression">'
                f'<MiningSchema><MiningField name="y" usageType="target"/>{act}'
                '</MiningSchema><RegressionTable intercept="0"><NumericPredictor name="d" '
                'coefficient="1"/></RegressionTable></RegressionModel></PMML>').encode()

    # comparisons learn their operand's type once: 60 nested levels compile in linear time
    depth = 60
    nested = ('<Apply function="equal">' * depth + '<FieldRef field="x"/>'
              + '<Constant>1</Constant></Apply>' * depth)
    t0 = time.perf_counter()
    assert read_pmml_bytes(doc(nested)).steps
    assert time.perf_counter() - t0 < 5
    # string functions expand per category: a product too large is refused, not computed
    sub = ('<Apply function="lowercase">' * 6 + '<FieldRef field="s"/>' + "</Apply>" * 6)
    eq = f'<Apply function="equal">{sub}<Constant>c001</Constant></Apply>'
    with pytest.raises(PMMLError, match="more than"):
        read_pmml_bytes(doc(eq, "s"))
