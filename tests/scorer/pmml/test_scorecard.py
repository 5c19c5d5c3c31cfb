"""Scorecard: hand-written documents scored end to end against an independent oracle (plain
Python over the same characteristic specs), Numba kernels == reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.errors import InputError
from scorer.pmml import PMMLError, read_pmml_bytes
from tests.scorer.pmml.test_ruleset import (
    _LEAVES,
    document,
    load,
    rows,
    score_both,
    truth,
    xml,
)

# a characteristic: (name, reasonCode or None, baselineScore or None, attributes), an
# attribute: (predicate, partial, reasonCode or None) where partial is a number or
# ("times", field, k): a ComplexPartialScore computing field * k
CHARS = [
    ("cx", "RX", 5.0, [
        (("lessThan", "x", "0.5"), 10.0, None),
        (("lessThan", "x", "2"), ("times", "z", 3.0), "RX2"),
        (("greaterOrEqual", "x", "2"), 2.0, None),
        (("isMissing", "x"), 7.0, "RM"),
    ]),
    ("cc", "RC", None, [
        (("equal", "c", "a"), 1.0, None),
        (("in", "c", ["b", "c"]), 4.0, None),
        (("true",), 6.0, "RM"),
    ]),
    ("cz", None, 3.0, [
        (("and", [("greaterThan", "z", "0.5"), ("lessOrEqual", "z", "1")]), 0.0, "RZ"),
        (("or", [("isMissing", "z"), ("true",)]), 3.0, "RC"),
    ]),
]


def attribute_xml(att: tuple) -> str:
    pred, partial, code = att
    rc = f' reasonCode="{code}"' if code else ""
    if isinstance(partial, tuple):
        cps = (f'<ComplexPartialScore><Apply function="*"><FieldRef field="{partial[1]}"/>'
               f"<Constant>{partial[2]}</Constant></Apply></ComplexPartialScore>")
        return f"<Attribute{rc}>{xml(pred)}{cps}</Attribute>"
    return f'<Attribute{rc} partialScore="{partial}">{xml(pred)}</Attribute>'


def scorecard_xml(chars: list[tuple], *, initial: float = 100.0, algorithm: str = "pointsBelow",
                  baseline: float | None = 4.0, use_codes: bool = True, ranks: int = 3,
                  extra: str = "") -> str:
    body = ""
    for name, code, base, atts in chars:
        a = f' name="{name}"' + (f' reasonCode="{code}"' if code else "") + \
            (f' baselineScore="{base}"' if base is not None else "")
        body += f"<Characteristic{a}>" + "".join(attribute_xml(t) for t in atts) + \
            "</Characteristic>"
    outs = '<OutputField name="score" feature="predictedValue"/>' + "".join(
        f'<OutputField name="rc{k}" feature="reasonCode" rank="{k}"/>'
        for k in range(1, ranks + 1)) if use_codes else \
        '<OutputField name="score" feature="predictedValue"/>'
    model_base = f' baselineScore="{baseline}"' if baseline is not None else ""
    return (f'<Scorecard functionName="regression" initialScore="{initial}" '
            f'useReasonCodes="{"true" if use_codes else "false"}" '
            f'reasonCodeAlgorithm="{algorithm}"{model_base} baselineMethod="other">'
            '<MiningSchema><MiningField name="s" usageType="target"/>'
            '<MiningField name="x"/><MiningField name="z"/><MiningField name="c"/>'
            f"</MiningSchema><Output>{outs}</Output>{extra}"
            f"<Characteristics>{body}</Characteristics></Scorecard>")


def oracle(chars, row, *, initial=100.0, algorithm="pointsBelow", baseline=4.0):
    """(score, ranked reason codes) of one row; None if the row is invalid."""
    score = initial
    points: dict[str, float] = {}
    for _name, code, base, atts in chars:
        hit = next((a for a in atts if truth(a[0], row) is True), None)
        if hit is None:
            return None
        _pred, partial, acode = hit
        if isinstance(partial, tuple):
            partial = row[partial[1]] * partial[2]  # NaN when the field is missing
        score += partial
        b = base if base is not None else baseline
        diff = b - partial if algorithm == "pointsBelow" else partial - b
        c = acode or code
        points[c] = points.get(c, 0.0) + diff
    if math.isnan(score):
        return score, []
    order = list(points)  # the order codes first earned points; the sort is stable
    ranked = sorted((c for c in order if points[c] >= 0), key=lambda c: -points[c])
    return score, ranked


#: the same with constant partial scores only
CONST_CHARS = [(n, code, base, [(p, 6.0 if isinstance(v, tuple) else v, c)
                                 for p, v, c in atts]) for n, code, base, atts in CHARS]


@pytest.mark.parametrize("algorithm", ["pointsBelow", "pointsAbove"])
@pytest.mark.parametrize("chars", [CHARS, CONST_CHARS], ids=["complex", "constant"])
def test_scores_and_reason_codes(algorithm, chars):
    m = load(scorecard_xml(chars, algorithm=algorithm))
    X, dicts = rows(200, 5)
    got = score_both(m, X)
    want = [oracle(chars, d, algorithm=algorithm) for d in dicts]
    np.testing.assert_array_equal(got["score"], [w[0] for w in want])
    # a ComplexPartialScore was missing: the score is missing
    assert any(math.isnan(w[0]) for w in want) == (chars is CHARS)
    compared = 0
    for k in (1, 2, 3):
        for i, w in enumerate(want):
            # no code at this rank: the output cannot be missing (a label), skip the row
            if len(w[1]) >= k:
                assert got[f"rc{k}"][i] == w[1][k - 1], (k, i, dicts[i], w)
                compared += 1
    assert compared > 200


def test_reason_code_ties_rank_in_the_order_codes_earn_points():
    # both characteristics earn 2 points below their baseline: codes "B" (first) and "A"
    chars = [("c1", "B", 3.0, [(("true",), 1.0, None)]),
             ("c2", "A", 5.0, [(("true",), 3.0, None)]),
             ("c3", "C", 5.0, [(("true",), 9.0, None)])]  # -4 points: never ranked
    m = load(scorecard_xml(chars, ranks=2))
    X, dicts = rows(5, 6)
    got = score_both(m, X)
    assert all(oracle(chars, d)[1] == ["B", "A"] for d in dicts)
    assert list(got["rc1"]) == ["B"] * 5 and list(got["rc2"]) == ["A"] * 5
    np.testing.assert_array_equal(got["score"], [oracle(chars, d)[0] for d in dicts])


def test_tie_order_is_the_earning_order_not_the_declaration_order():
    # "B" is declared first (c1's first attribute) but earns nothing when x >= 1; then c1's
    # catch-all earns 1.5 for "A" before c2 earns 1.5 for "B": "A" ranks first
    chars = [("c1", "A", 2.0, [(("lessThan", "x", "1"), -2.0, "B"), (("true",), 0.5, None)]),
             ("c2", "B", 2.0, [(("true",), 0.5, None)])]
    m = load(scorecard_xml(chars, ranks=2))
    X = {"x": np.array([3.0, 0.0]), "z": np.zeros(2), "c": np.array(["a", "b"], dtype=object)}
    got = score_both(m, X)
    want = [oracle(chars, {"x": 3.0}), oracle(chars, {"x": 0.0})]
    assert want[0][1] == ["A", "B"] and want[1][1] == ["B"]
    assert list(got["rc1"]) == ["A", "B"] and got["rc2"][0] == "B"


def test_points_of_one_code_add_up_over_characteristics():
    chars = [("c1", "A", 4.0, [(("true",), 1.0, None)]),   # A: 3
             ("c2", "B", 9.0, [(("true",), 5.0, None)]),   # B: 4
             ("c3", "A", 4.0, [(("true",), 2.0, None)])]   # A: 3 + 2 = 5
    got = score_both(load(scorecard_xml(chars, ranks=2)), rows(3, 7)[0])
    assert list(got["rc1"]) == ["A"] * 3 and list(got["rc2"]) == ["B"] * 3


def test_without_reason_codes_and_model_level_defaults():
    chars = [(n, None, None, atts) for n, _, _, atts in CHARS]
    m = load(scorecard_xml(chars, use_codes=False, baseline=None, initial=0.0))
    X, dicts = rows(100, 8)
    got = score_both(m, X)
    np.testing.assert_array_equal(got["score"], [oracle(chars, d, initial=0.0)[0]
                                                 for d in dicts])


def test_a_characteristic_without_a_true_attribute_makes_the_row_invalid():
    chars = [("age", "A", 1.0, [(("lessThan", "x", "1"), 1.0, None),
                                (("isMissing", "x"), 2.0, None)])]
    m = load(scorecard_xml(chars))
    X = {"x": np.array([0.0, np.nan, 0.5]), "z": np.zeros(3),
         "c": np.array(["a", "b", "c"], dtype=object)}
    got = score_both(m, X)
    dicts = [{"x": float(X["x"][i])} for i in range(3)]
    np.testing.assert_array_equal(got["score"], [oracle(chars, d)[0] for d in dicts])
    assert oracle(chars, {"x": 5.0}) is None
    X["x"] = np.array([0.0, 5.0, 0.5])  # row 1 matches no attribute of 'age'
    for reference in (False, True):
        with pytest.raises(InputError, match=r"row 1: .*'age'.*invalid"):
            m.score_arrays(X, reference=reference)


def _refused(model: str, match: str) -> None:
    with pytest.raises(PMMLError, match=match):
        read_pmml_bytes(document(model))


def test_refusals_name_the_element_and_line():
    chars = [("c1", None, None, [(("true",), 1.0, None)])]
    _refused(scorecard_xml(chars), r"line \d+.*<Attribute>: has no reasonCode")
    _refused(scorecard_xml([("c1", "A", None, [(("true",), 1.0, None)])], baseline=None),
             r"<Characteristic>: has no baselineScore")
    ok = scorecard_xml([("c1", "A", None, [(("true",), 1.0, None)])])
    _refused(ok.replace('reasonCodeAlgorithm="pointsBelow"', 'reasonCodeAlgorithm="x"'),
             r"<Scorecard>: reasonCodeAlgorithm='x' not supported")
    _refused(ok.replace('partialScore="1.0"', ""), r"has neither partialScore nor")
    _refused(ok.replace("<Attribute", "<Foo/><Attribute", 1),
             r"<Foo>: not supported in Characteristic")
    _refused(ok.replace('functionName="regression"', 'functionName="classification"'),
             r"functionName='classification' not supported")
    _refused(scorecard_xml([("c1", "A", None, [(("true",), 1.0, None)])],
                           use_codes=False).replace(
        "</Output>", '<OutputField name="r" feature="reasonCode"/></Output>'),
        r"<OutputField>: reasonCode output of a Scorecard with useReasonCodes='false'")


# --- random scorecards (hypothesis) ----------------------------------------------------------
_attr = st.tuples(st.sampled_from(_LEAVES),
                  st.one_of(st.sampled_from([-2.0, 0.0, 1.5, 3.0]),
                            st.tuples(st.just("times"), st.sampled_from(["x", "z"]),
                                      st.sampled_from([1.0, -0.5]))),
                  st.sampled_from([None, "A", "B"]))
_char = st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from(["A", "B", "C"]),
                  st.sampled_from([None, 1.0, 2.5]),
                  st.lists(_attr, min_size=1, max_size=4),
                  st.booleans())  # True: a final catch-all attribute


@settings(max_examples=30, deadline=None)
@given(chars=st.lists(_char, min_size=1, max_size=4),
       algorithm=st.sampled_from(["pointsBelow", "pointsAbove"]),
       seed=st.integers(0, 1000))
def test_random_scorecards_match_the_oracle(chars, algorithm, seed):
    chars = [(n, code, base, atts + ([(("true",), 0.5, None)] if catch else []))
             for n, code, base, atts, catch in chars]
    m = load(scorecard_xml(chars, algorithm=algorithm, baseline=2.0, ranks=2))
    X, dicts = rows(30, seed)
    want = [oracle(chars, d, algorithm=algorithm, baseline=2.0) for d in dicts]
    if any(w is None for w in want):  # some row matches no attribute: the batch is refused
        for reference in (False, True):
            with pytest.raises(InputError, match=f"row {want.index(None)}: "):
                m.score_arrays(X, reference=reference)
        return
    got = score_both(m, X)
    np.testing.assert_array_equal(got["score"], [w[0] for w in want])
    for k in (1, 2):
        for i, w in enumerate(want):
            if len(w[1]) >= k:
                assert got[f"rc{k}"][i] == w[1][k - 1]


def test_float_math_context_is_refused():
    doc = scorecard_xml([("c1", "A", None, [(("true",), 1.0, None)])])
    _refused(doc.replace("<Scorecard ", '<Scorecard x-mathContext="float" ', 1),
             r"<Scorecard>: x-mathContext='float' is not supported for Scorecard")
