"""RuleSetModel: hand-written documents scored end to end against an independent oracle.

The helpers at the top (shared with test_scorecard.py) write PMML predicates once as Python
tuples, render them to XML for the document and evaluate them in plain Python with PMML's
three-valued logic: the oracle. Every test also checks that the Numba kernels and the
reference implementations agree exactly.

Predicate specs: ``("true",)``, ``("false",)``, ``(op, field, value)`` for a SimplePredicate
(``op`` a PMML operator; ``isMissing`` / ``isNotMissing`` take no value), ``("in", field,
[values])`` / ``("notIn", ...)`` for a SimpleSetPredicate, ``("and" | "or", [specs])``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.model import Model
from scorer.pmml import read_pmml_bytes

DD = """<DataDictionary>
  <DataField name="x" optype="continuous" dataType="double"/>
  <DataField name="z" optype="continuous" dataType="double"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="a"/><Value value="b"/><Value value="c"/></DataField>
  <DataField name="y" optype="categorical" dataType="string">
    <Value value="p"/><Value value="q"/><Value value="r"/></DataField>
  <DataField name="s" optype="continuous" dataType="double"/>
</DataDictionary>"""

CLASSES = ["p", "q", "r"]


def document(model: str) -> bytes:
    return (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}'
            f"{model}</PMML>").encode()


def load(model: str) -> Model:
    return Model(read_pmml_bytes(document(model)))


def schema(target: str) -> str:
    return (f'<MiningSchema><MiningField name="{target}" usageType="target"/>'
            '<MiningField name="x"/><MiningField name="z"/><MiningField name="c"/>'
            "</MiningSchema>")


def xml(p: tuple) -> str:
    kind = p[0]
    if kind == "true":
        return "<True/>"
    if kind == "false":
        return "<False/>"
    if kind in ("and", "or"):
        return (f'<CompoundPredicate booleanOperator="{kind}">'
                + "".join(xml(q) for q in p[1]) + "</CompoundPredicate>")
    if kind in ("in", "notIn"):
        vals = " ".join(f'"{v}"' for v in p[2])
        op = "isIn" if kind == "in" else "isNotIn"
        return (f'<SimpleSetPredicate field="{p[1]}" booleanOperator="{op}">'
                f'<Array type="string">{vals}</Array></SimpleSetPredicate>')
    if kind in ("isMissing", "isNotMissing"):
        return f'<SimplePredicate field="{p[1]}" operator="{kind}"/>'
    return f'<SimplePredicate field="{p[1]}" operator="{kind}" value="{p[2]}"/>'


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


_CMP = {"lessThan": lambda a, b: a < b, "lessOrEqual": lambda a, b: a <= b,
        "greaterThan": lambda a, b: a > b, "greaterOrEqual": lambda a, b: a >= b,
        "equal": lambda a, b: a == b, "notEqual": lambda a, b: a != b}


def truth(p: tuple, row: dict) -> bool | None:
    """True / False / None (UNKNOWN) of predicate spec ``p`` on ``row``."""
    kind = p[0]
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind in ("and", "or"):
        vals = [truth(q, row) for q in p[1]]
        if kind == "and":
            return False if False in vals else (None if None in vals else True)
        return True if True in vals else (None if None in vals else False)
    v = row[p[1]]
    if kind == "isMissing":
        return _missing(v)
    if kind == "isNotMissing":
        return not _missing(v)
    if _missing(v):
        return None
    if kind in ("in", "notIn"):
        return (v in p[2]) == (kind == "in")
    b = float(p[2]) if isinstance(v, float) else p[2]
    return _CMP[kind](v, b)


def rows(n: int, seed: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """``n`` input rows on a coarse grid (so that thresholds are hit exactly), with missing
    values: as scorer arrays and as per-row dicts for the oracle."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], n)
    z = rng.choice([0.0, 1.0, 2.0], n)
    x[rng.random(n) < 0.15] = np.nan
    z[rng.random(n) < 0.15] = np.nan
    c = np.array(rng.choice(["a", "b", "c"], n), dtype=object)
    c[rng.random(n) < 0.15] = None
    arrays = {"x": x, "z": z, "c": c}
    dicts = [{"x": float(x[i]), "z": float(z[i]), "c": c[i]} for i in range(n)]
    return arrays, dicts


def score_both(m: Model, X: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Score with the Numba kernels and with the reference implementations; they must agree
    exactly. Returns the kernels' outputs."""
    fast = m.score_arrays(X)
    ref = m.score_arrays(X, reference=True)
    for k in fast:
        a, b = np.asarray(fast[k]), np.asarray(ref[k])
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)
        else:
            assert list(a) == list(b), k
    return fast


# --- RuleSetModel oracle ---------------------------------------------------------------------
# a rule: ("rule", predicate, score, confidence, weight, id, distribution) where distribution
# is None or (recordCount, [(value, count, probability or None), ...]);
# ("compound", predicate, [rules])
def rule_xml(r: tuple) -> str:
    if r[0] == "compound":
        return f"<CompoundRule>{xml(r[1])}" + "".join(rule_xml(c) for c in r[2]) + \
            "</CompoundRule>"
    _, pred, score, conf, weight, rid, dist = r
    attrs = f'score="{score}" confidence="{conf}" weight="{weight}"'
    if rid is not None:
        attrs += f' id="{rid}"'
    sds = ""
    if dist is not None:
        attrs += f' recordCount="{dist[0]}"'
        for v, n, p in dist[1]:
            prob = f' probability="{p}"' if p is not None else ""
            sds += f'<ScoreDistribution value="{v}" recordCount="{n}"{prob}/>'
    return f"<SimpleRule {attrs}>{xml(pred)}{sds}</SimpleRule>"


def ruleset_xml(method: str | list[str], rules: list[tuple], default: tuple | None = None,
                outputs: str = "", entity: bool = True) -> str:
    """``default``: (score, confidence) or (score, confidence, distribution)."""
    methods = [method] if isinstance(method, str) else method
    sel = "".join(f'<RuleSelectionMethod criterion="{m}"/>' for m in methods)
    dflt = f' defaultScore="{default[0]}" defaultConfidence="{default[1]}"' if default else ""
    if default and len(default) > 2:
        dflt += f' recordCount="{default[2][0]}"'
        sel += "".join(f'<ScoreDistribution value="{v}" recordCount="{n}"/>'
                       for v, n, _ in default[2][1])
    out = ('<Output><OutputField name="pred" feature="predictedValue"/>'
           '<OutputField name="conf" feature="confidence"/>'
           + "".join(f'<OutputField name="prob_{c}" feature="probability" value="{c}"/>'
                     for c in CLASSES)
           + ('<OutputField name="rule" feature="entityId"/>' if entity else "")
           + outputs + "</Output>")
    return (f'<RuleSetModel functionName="classification">{schema("y")}{out}'
            f'<RuleSet{dflt}>{sel}' + "".join(rule_xml(r) for r in rules) +
            "</RuleSet></RuleSetModel>")


def flatten(rules: list[tuple], outer: tuple = ()) -> list[tuple]:
    out = []
    for r in rules:
        if r[0] == "compound":
            out += flatten(r[2], (*outer, r[1]))
        else:
            out.append(((*outer, r[1]), *r[2:]))
    return out


def dist_probs(dist) -> list[float]:
    if dist is None:
        return [math.nan] * len(CLASSES)
    probs = [0.0] * len(CLASSES)
    for v, n, p in dist[1]:
        probs[CLASSES.index(v)] = p if p is not None else n / dist[0]
    return probs


def oracle(method: str, rules: list[tuple], default: tuple | None, row: dict) -> dict:
    """What the PMML semantics predict for one row: label, confidence, probabilities, rule."""
    flat = flatten(rules)
    fired = [(i, r) for i, r in enumerate(flat)
             if all(truth(p, row) is True for p in r[0])]
    nan3 = [math.nan] * len(CLASSES)
    if not fired:
        if default is None:
            return {"label": None, "conf": math.nan, "probs": nan3, "rule": math.nan}
        probs = dist_probs(default[2]) if len(default) > 2 else nan3
        return {"label": default[0], "conf": default[1], "probs": probs, "rule": math.nan}
    if method == "firstHit":
        i, w = fired[0]
    elif method == "weightedMax":
        top = max(r[3] for _, r in fired)
        i, w = next((i, r) for i, r in fired if r[3] == top)
    else:
        totals = {}
        for _, r in fired:
            totals[r[1]] = totals.get(r[1], 0.0) + r[3]
        best = max(totals.values())
        label = next(c for c in CLASSES if totals.get(c) == best)
        return {"label": label, "conf": totals[label] / len(fired), "probs": nan3,
                "rule": math.nan}
    rid = float(w[4]) if w[4] is not None else float(i + 1)
    return {"label": w[1], "conf": w[2], "probs": dist_probs(w[5]), "rule": rid}


def check(method, rules, default=None, n=300, seed=0, entity=True) -> dict:
    m = load(ruleset_xml(method, rules, default, entity=entity))
    X, dicts = rows(n, seed)
    got = score_both(m, X)
    used = method[0] if isinstance(method, list) else method
    want = [oracle(used, rules, default, d) for d in dicts]
    for i, w in enumerate(want):
        if w["label"] is not None:  # a missing class label cannot be represented (see report)
            assert got["pred"][i] == w["label"], (i, dicts[i])
    np.testing.assert_array_equal(got["conf"], [w["conf"] for w in want])
    for j, c in enumerate(CLASSES):
        np.testing.assert_array_equal(got[f"prob_{c}"], [w["probs"][j] for w in want])
    if entity:
        np.testing.assert_array_equal(got["rule"], [w["rule"] for w in want])
    return {"got": got, "want": want, "rows": dicts}


LOW = ("lessThan", "x", "1")
HIGH = ("greaterOrEqual", "x", "1")
IS_A = ("equal", "c", "a")
IN_BC = ("in", "c", ["b", "c"])

RULES = [
    ("rule", ("and", [LOW, IS_A]), "q", 0.75, 2.0, "10",
     (8, [("q", 6, None), ("p", 2, None)])),
    ("compound", ("or", [HIGH, ("isMissing", "z")]), [
        ("rule", ("greaterThan", "z", "0.5"), "r", 0.5, 1.0, "20",
         (10, [("r", 5, 0.55), ("q", 5, 0.45)])),
        ("rule", IN_BC, "p", 0.9, 3.0, None, None),
    ]),
    ("rule", ("notEqual", "c", "c"), "p", 0.6, 0.5, "30", None),
    ("rule", ("lessOrEqual", "z", "1"), "r", 0.4, 3.0, "40",
     (4, [("r", 3, None), ("q", 1, None)])),
]


# --- tests -----------------------------------------------------------------------------------
def test_first_hit_nested_rules_missing_values_and_default():
    r = check("firstHit", RULES, default=("q", 0.25, (4, [("q", 3, None), ("r", 1, None)])))
    want = r["want"]
    # the data exercises every branch: each rule wins somewhere, and the default too
    # (the rule without an id is numbered by its position, 3, as JPMML numbers rules)
    assert {w["rule"] for w in want} >= {10.0, 20.0, 3.0, 30.0, 40.0}
    assert any(math.isnan(w["rule"]) for w in want)
    # UNKNOWN never fires: a row whose x is missing is not caught by LOW / HIGH alone
    assert any(math.isnan(d["x"]) for d in r["rows"])


def test_first_hit_without_default_leaves_confidence_and_probabilities_missing():
    rules = [("rule", LOW, "r", 0.8, 1.0, None, None)]
    r = check("firstHit", rules, default=None)
    none = [i for i, w in enumerate(r["want"]) if w["label"] is None]
    assert none and all(math.isnan(r["got"]["conf"][i]) for i in none)


def test_first_hit_compiles_to_one_predicate_tree():
    doc = document(ruleset_xml("firstHit", RULES, ("q", 0.25)))
    steps = read_pmml_bytes(doc).steps
    assert [s.op for s in steps].count("predicate_tree") == 1 and steps[0].op == "predicate_tree"
    # a root (the default) and one child per flattened SimpleRule
    assert list(steps[0].tables["nodes"]["n_children"]) == [len(flatten(RULES))] + \
        [0] * len(flatten(RULES))


def test_weighted_sum_ties_go_to_the_first_class_of_the_data_dictionary():
    # q and p each total 2.0 when both fire; q's rule comes first in the document, yet p,
    # declared first in the DataField, wins
    rules = [("rule", LOW, "q", 0.5, 2.0, None, None),
             ("rule", IS_A, "p", 0.5, 1.0, None, None),
             ("rule", ("lessThan", "z", "2"), "p", 0.5, 1.0, None, None),
             ("rule", HIGH, "r", 0.5, 0.25, None, None)]
    r = check("weightedSum", rules, default=("r", 0.125), entity=False)
    tie = [i for i, d in enumerate(r["rows"])
           if truth(LOW, d) and truth(IS_A, d) and truth(("lessThan", "z", "2"), d)]
    assert tie and all(r["got"]["pred"][i] == "p" for i in tie)
    assert all(r["got"]["conf"][i] == 2.0 / 3.0 for i in tie)  # winner total / 3 fired


def test_weighted_sum_nested_rules_and_default():
    check("weightedSum", RULES, default=("p", 0.3, (2, [("p", 2, None)])), entity=False,
          seed=1)


def test_weighted_max_ties_go_to_the_first_rule():
    rules = [("rule", LOW, "q", 0.6, 2.0, "1", None),
             ("rule", ("isNotMissing", "c"), "p", 0.7, 2.0, "2", None),
             ("rule", ("greaterThan", "x", "2"), "r", 0.8, 5.0, "3",
              (5, [("r", 5, None)]))]
    r = check("weightedMax", rules, default=("q", 0.1))
    both = [i for i, d in enumerate(r["rows"])
            if truth(LOW, d) and truth(("isNotMissing", "c"), d)]
    assert both and all(r["got"]["rule"][i] == 1.0 for i in both)


def test_weighted_max_nested_rules():
    check("weightedMax", RULES, default=("r", 0.2, (5, [("r", 4, None), ("p", 1, None)])),
          seed=2)


def test_the_first_selection_method_is_used():
    check(["weightedMax", "firstHit", "weightedSum"], RULES, default=("q", 0.25), seed=3)


def test_no_output_element_gives_class_probabilities_from_the_winning_rule():
    doc = (f'<RuleSetModel functionName="classification">{schema("y")}'
           '<RuleSet defaultScore="p" defaultConfidence="1">'
           '<RuleSelectionMethod criterion="firstHit"/>' + rule_xml(RULES[0]) +
           "</RuleSet></RuleSetModel>")
    m = load(doc)
    X, dicts = rows(50, 4)
    got = score_both(m, X)
    for i, d in enumerate(dicts):
        want = oracle("firstHit", RULES[:1], ("p", 1.0), d)
        assert got["y"][i] == want["label"]
        np.testing.assert_array_equal([got[f"probability({c})"][i] for c in CLASSES],
                                      want["probs"])


# --- refusals --------------------------------------------------------------------------------
def _refused(model: str, match: str) -> None:
    import pytest

    from scorer.pmml import PMMLError

    with pytest.raises(PMMLError, match=match):
        read_pmml_bytes(document(model))


def test_refusals_name_the_element_and_line():
    base = ruleset_xml("firstHit", RULES[:1], ("q", 0.5))
    _refused(base.replace("firstHit", "bestOf"),
             r"line \d+.*<RuleSelectionMethod>: criterion='bestOf' not supported")
    _refused(base.replace('score="q"', 'score="zz"'),
             r"<SimpleRule>: 'zz' is not a class of the target")
    _refused(base.replace("<RuleSelectionMethod", "<Foo/><RuleSelectionMethod"),
             r"<Foo>: not supported in RuleSet")
    _refused(base.replace("functionName=\"classification\"", "functionName=\"regression\""),
             r"functionName='regression' not supported")
    _refused(ruleset_xml("weightedSum", RULES[:1], ("q", 0.5)),
             r"<OutputField>: entityId is undefined with weightedSum")
    _refused(ruleset_xml("firstHit", RULES[:1], ("q", 0.5),
                         outputs='<OutputField name="cq" feature="confidence" value="q"/>'),
             r"the confidence of a given class")
    _refused(base.replace('id="10"', 'id="r10"'), r"rule id 'r10' is not a number")
    _refused(base.replace("<RuleSelectionMethod criterion=\"firstHit\"/>", ""),
             r"<RuleSet>: has no RuleSelectionMethod")
    _refused(base.replace("<RuleSetModel ", '<RuleSetModel x-mathContext="float" ', 1),
             r"<RuleSetModel>: x-mathContext='float' is not supported for RuleSetModel")


# --- random rule sets (hypothesis) -----------------------------------------------------------
_LEAVES = [LOW, HIGH, IS_A, IN_BC, ("isMissing", "z"), ("notEqual", "c", "b"),
           ("greaterThan", "z", "0.5"), ("lessOrEqual", "x", "0"), ("true",), ("false",),
           ("notIn", "c", ["a"])]
_preds = st.recursive(st.sampled_from(_LEAVES),
                      lambda inner: st.tuples(st.sampled_from(["and", "or"]),
                                              st.lists(inner, min_size=2, max_size=3)),
                      max_leaves=4)
_simple = st.builds(lambda p, s, conf, w: ("rule", p, s, conf, w, None, None), _preds,
                    st.sampled_from(CLASSES), st.sampled_from([0.25, 0.5, 1.0]),
                    st.sampled_from([0.5, 1.0, 2.0]))  # few weights: ties happen
_rules = st.recursive(_simple, lambda inner: st.builds(
    lambda p, kids: ("compound", p, kids), _preds, st.lists(inner, min_size=1, max_size=3)),
    max_leaves=6)


@settings(max_examples=30, deadline=None)
@given(method=st.sampled_from(["firstHit", "weightedSum", "weightedMax"]),
       rules=st.lists(_rules, min_size=0, max_size=5),
       default=st.sampled_from([None, ("p", 0.5), ("r", 0.125)]),
       seed=st.integers(0, 1000))
def test_random_rule_sets_match_the_oracle(method, rules, default, seed):
    check(method, rules, default, n=40, seed=seed, entity=method != "weightedSum")
