"""RuleSetModel -> a ``predicate_tree`` step (firstHit) or an ``expression`` step (weightedSum,
weightedMax).

A rule *fires* when its predicate, and the predicate of every CompoundRule around it, is TRUE
(UNKNOWN does not fire). The nesting is flattened: a SimpleRule's effective predicate is the
three-valued AND of its ancestors' predicates and its own, in document order.

* ``firstHit``: the first firing rule (document order) predicts its score with its
  confidence. This is exactly a one-level ``predicate_tree``: a root that always holds, whose
  children are the rules, unknown counting as false, and the root itself (the default score)
  when no child holds. The kernel stops at the first firing rule.
* ``weightedSum``: each class totals the weights of its firing rules; the largest total wins
  (ties: the class listed first in the target's DataField), with confidence
  ``total / number of firing rules``.
* ``weightedMax``: the firing rule with the largest weight wins (ties: the first in document
  order), with its own confidence.

No rule fires: ``defaultScore`` with ``defaultConfidence`` (missing when absent).

Class probabilities come from the winning rule's ScoreDistribution (``probability``, else
``recordCount`` over the rule's ``recordCount`` or the counts' sum), or from the RuleSet's own
ScoreDistribution for the default; they are missing when there is none (and always for
weightedSum, where no single rule makes the prediction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..ir import Table
from .expressions import predicate
from .fields import Col, Scope, attr_number, fail, same_class, xs_double
from .program import Program
from .reader import emit_argmax, register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

_PRED_TAGS = ("True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate")
_METHODS = ("firstHit", "weightedSum", "weightedMax")


@dataclass
class _Rule:
    """A SimpleRule, flattened: the predicates that must all hold, and what it predicts."""

    el: Element
    preds: list[Element]  # ancestors' CompoundRule predicates first, then its own
    label: float  # class index
    confidence: float
    weight: float
    entity: float  # numeric id, or the 1-based position of the rule (as JPMML numbers them)
    probs: list[float]  # per class (NaN without ScoreDistribution)


def _one_predicate(el: Element) -> Element:
    preds = [c for c in el.children if c.tag in _PRED_TAGS]
    if len(preds) != 1:
        raise fail(el, "needs exactly one predicate")
    return preds[0]


def _number(el: Element, attr: str, default: str | None) -> float:
    return attr_number(el, attr, default, missing=math.nan)


class _Classes:
    """Class index of a score / ScoreDistribution value (numbers compare as numbers)."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = classes

    def index(self, value: str | None, el: Element) -> float:
        if value is None:
            raise fail(el, "has no score")
        for i, c in enumerate(self.classes):
            if same_class(value, c):
                return float(i)
        raise fail(el, f"'{value}' is not a class of the target")


def _distribution(el: Element, cls: _Classes) -> list[float]:
    """Class probabilities from ``el``'s ScoreDistribution children (NaN without any)."""
    k = len(cls.classes)
    sds = el.findall("ScoreDistribution")
    if not sds:
        return [math.nan] * k
    counts = [_number(sd, "recordCount", "0") for sd in sds]
    total = el.get("recordCount")
    denom = _number(el, "recordCount", None) if total is not None else sum(counts)
    probs = [0.0] * k
    for sd, cnt in zip(sds, counts, strict=True):
        p = sd.get("probability")
        probs[int(cls.index(sd.get("value"), sd))] = (
            _number(sd, "probability", None) if p is not None
            else (cnt / denom if denom else 0.0))
    return probs


def _flatten(rules: list[Element], outer: list[Element], cls: _Classes,
             out: list[_Rule]) -> None:
    for r in rules:
        for c in r.children:
            if c.tag not in (*_PRED_TAGS, "Extension") and not (
                    r.tag == "SimpleRule" and c.tag == "ScoreDistribution") and not (
                    r.tag == "CompoundRule" and c.tag in ("SimpleRule", "CompoundRule")):
                raise fail(c, f"not supported in {r.tag}")
        preds = [*outer, _one_predicate(r)]
        if r.tag == "CompoundRule":
            kids = [c for c in r.children if c.tag in ("SimpleRule", "CompoundRule")]
            if not kids:
                raise fail(r, "holds no rule")
            _flatten(kids, preds, cls, out)
            continue
        rid = r.get("id")
        try:
            entity = xs_double(rid) if rid is not None else float(len(out) + 1)
        except ValueError:
            entity = math.nan  # refused only if an entityId output asks for it
        weight = _number(r, "weight", "1")
        if not math.isfinite(weight):
            raise fail(r, f"weight='{r.get('weight')}' is not a finite number")
        out.append(_Rule(r, preds, cls.index(r.get("score"), r), _number(r, "confidence", "1"),
                         weight, entity, _distribution(r, cls)))


def _fires(rd: Reader, rule: _Rule, scope: Scope, prog: Program) -> None:
    """Push the rule's three-valued effective predicate (ancestors AND own)."""
    for i, p in enumerate(rule.preds):
        predicate(rd, p, scope, prog)
        if i:
            prog.emit("AND")


@register_model("RuleSetModel", parts=("RuleSet",), functions=("classification",))
def rule_set_model(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    """Compile a RuleSetModel (classification) into ``res`` (see the module docstring)."""
    rs = el.find("RuleSet")
    if rs is None:
        raise fail(el, "has no RuleSet")
    if scope.math32:
        # JPMML's float arithmetic for this model is not reproduced: refuse, never approximate
        raise fail(el, "x-mathContext='float' is not supported for RuleSetModel")
    for c in rs.children:
        if c.tag not in ("RuleSelectionMethod", "ScoreDistribution", "SimpleRule",
                         "CompoundRule", "Extension"):
            raise fail(c, "not supported in RuleSet")
    methods = rs.findall("RuleSelectionMethod")
    if not methods:
        raise fail(rs, "has no RuleSelectionMethod")
    # "if more than one method is included, the first method is used ... for scoring"
    method = methods[0].get("criterion")
    if method not in _METHODS:
        raise fail(methods[0], f"criterion='{method}' not supported")
    cls = _Classes(list(res.classes))
    rules: list[_Rule] = []
    _flatten([c for c in rs.children if c.tag in ("SimpleRule", "CompoundRule")], [], cls, rules)
    default_score = rs.get("defaultScore")
    default = _Rule(rs, [], cls.index(default_score, rs) if default_score is not None
                    else math.nan, _number(rs, "defaultConfidence", None), 0.0, math.nan,
                    _distribution(rs, cls) if default_score is not None
                    else [math.nan] * len(cls.classes))
    entity_wanted = _entity_outputs(el)
    if entity_wanted:
        if method == "weightedSum":
            raise fail(entity_wanted[0], "entityId is undefined with weightedSum (several "
                                         "rules make the prediction)")
        bad = [r for r in rules if math.isnan(r.entity)]
        if bad:
            raise fail(bad[0].el, f"entityId: rule id '{bad[0].el.get('id')}' is not a number")
    if method == "firstHit":
        cols = _first_hit(rd, rules, default, scope, len(cls.classes))
    elif method == "weightedMax":
        cols = _weighted_max(rd, rules, default, scope, len(cls.classes))
    else:
        cols = _weighted_sum(rd, rules, default, scope, len(cls.classes))
    k = len(cls.classes)
    res.probs = cols[:k]
    res.label = cols[k]
    confidence = cols[k + 1]
    if entity_wanted:
        res.entity = cols[k + 2]

    def confidence_output(of: Element) -> Col:
        if of.get("value") is not None:
            raise fail(of, "the confidence of a given class (value=...) is not supported; "
                           "only the prediction's confidence")
        return Col(confidence, "double")

    res.features["confidence"] = confidence_output


def _entity_outputs(el: Element) -> list[Element]:
    out = el.find("Output")
    return [of for of in (out.findall("OutputField") if out is not None else [])
            if of.get("feature") == "entityId"]


def _values(r: _Rule) -> list[float]:
    """What a winning rule writes: probabilities, class index, confidence, entity."""
    return [*r.probs, r.label, r.confidence, r.entity]


def _first_hit(rd: Reader, rules: list[_Rule], default: _Rule, scope: Scope,
               k: int) -> list[str]:
    """One-level predicate tree: root (always true, the default) -> the rules in order."""
    prog = Program(rd.budget)
    starts, ends = [0], [1]
    prog.const(1.0)  # the root's predicate: TRUE
    for r in rules:
        starts.append(len(prog))
        _fires(rd, r, scope, prog)
        ends.append(len(prog))
    n = len(rules)
    width = k + 3
    values = np.array([_values(default)] + [_values(r) for r in rules],
                      dtype=np.float64).reshape(n + 1, width)
    nodes: Table = {
        "pred_start": np.asarray(starts, dtype=np.int32),
        "pred_end": np.asarray(ends, dtype=np.int32),
        "first_child": np.asarray([1 if n else -1] + [-1] * n, dtype=np.int32),
        "n_children": np.asarray([n] + [0] * n, dtype=np.int32),
        "default_child": np.full(n + 1, -1, dtype=np.int32),
    }
    for w in range(width):
        nodes[f"value_{w}"] = values[:, w].copy()
    tables = prog.tables()
    # missing 0: an UNKNOWN rule does not fire; no_true_child 1: no rule fires -> the root
    tables["trees"] = {"root": np.zeros(1, dtype=np.int32),
                       "output": np.zeros(1, dtype=np.int32),
                       "missing": np.zeros(1, dtype=np.int8),
                       "no_true_child": np.ones(1, dtype=np.int8)}
    tables["nodes"] = nodes
    outs = rd.g.new_columns("ruleset", width)
    rd.g.add_step("predicate_tree", name="ruleset_first_hit", inputs=prog.inputs,
                  outputs=outs, family="predicate_tree", tables=tables,
                  params={"n_outputs": width, "leaf_width": width, "aggregation": "none",
                          "accumulate_dtype": "float64"})
    return outs


def _weighted_max(rd: Reader, rules: list[_Rule], default: _Rule, scope: Scope,
                  k: int) -> list[str]:
    """Running maximum over the rules: a firing rule replaces the winner when its weight is
    strictly larger (so the first of equal weights stays)."""
    # outputs: probabilities 0..k-1, label k, confidence k+1, entity k+2, best weight k+3
    width = k + 3
    best = k + 3
    prog = Program(rd.budget)
    for j in range(width):
        prog.const(math.nan)
        prog.emit("STORE", j)
    prog.const(-math.inf)
    prog.emit("STORE", best)
    for r in rules:
        _fires(rd, r, scope, prog)  # cond = fires AND weight > best (0 / 1)
        prog.const(0.0)
        prog.emit("SURROGATE")
        prog.const(r.weight)
        prog.emit("LOADOUT", best)
        prog.emit("GT")
        prog.emit("MUL")
        for j, v in enumerate([*_values(r), r.weight]):
            prog.emit("DUP")
            prog.const(v)
            prog.emit("LOADOUT", j)
            prog.emit("IF")
            prog.emit("STORE", j)
        prog.emit("POP")
    _apply_default(prog, default, k)
    return rd.program_step("ruleset_weighted_max", prog, width + 1)[:width]


def _apply_default(prog: Program, default: _Rule, k: int) -> None:
    """No rule fired (the label is still missing): every output takes the default's value;
    the label last, since it is the test."""
    for j, v in [*[(j, p) for j, p in enumerate(default.probs)], (k + 1, default.confidence),
                 (k + 2, default.entity), (k, default.label)]:
        prog.emit("LOADOUT", k)
        prog.emit("ISMISSING")
        prog.const(v)
        prog.emit("LOADOUT", j)
        prog.emit("IF")
        prog.emit("STORE", j)


def _weighted_sum(rd: Reader, rules: list[_Rule], default: _Rule, scope: Scope,
                  k: int) -> list[str]:
    """Per class: total weight and count of its firing rules; the largest total among the
    classes with a firing rule wins (first class on ties)."""
    # outputs: probabilities 0..k-1 (missing), label k, confidence k+1, entity k+2 (missing),
    # totals k+3.., counts 2k+3.., candidates 3k+3.., fired 4k+3, scratch 4k+4
    tot, cnt, cand, fired, scratch = k + 3, 2 * k + 3, 3 * k + 3, 4 * k + 3, 4 * k + 4
    prog = Program(rd.budget)
    for j in range(k + 3):
        prog.const(math.nan)
        prog.emit("STORE", j)
    for c in range(k):
        for base in (tot, cnt):
            prog.const(0.0)
            prog.emit("STORE", base + c)
    for r in rules:
        c = int(r.label)
        _fires(rd, r, scope, prog)
        prog.const(0.0)
        prog.emit("SURROGATE")
        prog.emit("DUP")  # count += fires; total += fires * weight
        prog.emit("LOADOUT", cnt + c)
        prog.emit("ADD")
        prog.emit("STORE", cnt + c)
        prog.const(r.weight)
        prog.emit("MUL")
        prog.emit("LOADOUT", tot + c)
        prog.emit("ADD")
        prog.emit("STORE", tot + c)
    for c in range(k):  # a class without a firing rule is no candidate
        prog.emit("LOADOUT", cnt + c)
        prog.const(0.0)
        prog.emit("GT")
        prog.emit("LOADOUT", tot + c)
        prog.const(-math.inf)
        prog.emit("IF")
        prog.emit("STORE", cand + c)
        prog.emit("LOADOUT", cnt + c)
        if c:
            prog.emit("ADD")
    prog.emit("STORE", fired)
    emit_argmax(prog, [cand + c for c in range(k)], k, scratch)
    # confidence = total of the winner / number of firing rules
    prog.select(lambda: prog.emit("LOADOUT", k),
                [lambda c=c: prog.emit("LOADOUT", tot + c) for c in range(k)])
    prog.emit("LOADOUT", fired)
    prog.emit("DIV")
    prog.emit("STORE", k + 1)
    # nothing fired: the label becomes missing, then the default applies
    prog.emit("LOADOUT", fired)
    prog.const(0.0)
    prog.emit("GT")
    prog.emit("LOADOUT", k)
    prog.const(math.nan)
    prog.emit("IF")
    prog.emit("STORE", k)
    _apply_default(prog, default, k)
    return rd.program_step("ruleset_weighted_sum", prog, 4 * k + 5)[:k + 3]
