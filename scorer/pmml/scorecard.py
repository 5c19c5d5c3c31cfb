"""Scorecard -> one ``expression`` step (score and reason-code points), plus one small
``expression`` step per ``reasonCode`` OutputField (the code at a given rank).

For each Characteristic, in document order, the first Attribute whose predicate is TRUE is
selected (UNKNOWN counts as not true); its partial score (``partialScore``, or the value of
its ComplexPartialScore expression) is added to the running score, which starts at
``initialScore``: ``score = ((initialScore + p_1) + p_2) + ...``. A Characteristic with no
TRUE Attribute makes the whole row invalid ("the scorecard as a whole returns an invalid
value"): the row is refused with an input error (naming the characteristics).

Reason codes (``useReasonCodes``, default true): the selected Attribute's ``reasonCode`` (else
its Characteristic's) earns ``baseline - partial`` points (``reasonCodeAlgorithm``
``pointsBelow``, the default) or ``partial - baseline`` (``pointsAbove``), the baseline being
the Characteristic's ``baselineScore``, else the Scorecard's. Points of one code add up over
characteristics (from 0, in document order). Codes with a negative total, and codes never
selected, are not ranked; the others rank by points, descending, ties in the order the codes
first earned points in the row (the order of the characteristics that selected them, as
JPMML's insertion-ordered tally does). ``baselineMethod`` only documents how the baselines were
chosen.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .expressions import EXPRESSIONS, expression, predicate
from .fields import Col, Scope, attr_number, children, fail, integer
from .program import Program
from .reader import register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

_PRED_TAGS = ("True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate")
_BASELINE_METHODS = ("max", "min", "mean", "neutral", "other")


def _number(el: Element, attr: str, default: str | None = None) -> float | None:
    return attr_number(el, attr, default)


def _partial(rd: Reader, att: Element, scope: Scope, prog: Program) -> None:
    """Push the Attribute's partial score."""
    cps = att.find("ComplexPartialScore")
    if cps is not None:
        exprs = [c for c in cps.children if c.tag != "Extension"]
        if len(exprs) != 1 or exprs[0].tag not in EXPRESSIONS:
            raise fail(cps, "must hold exactly one expression")
        typ = expression(rd, exprs[0], scope, prog)
        if typ.col is not None:
            raise fail(cps, "the partial score is a string, not a number")
        return
    v = _number(att, "partialScore")
    if v is None:
        raise fail(att, "has neither partialScore nor ComplexPartialScore")
    prog.const(v)


@register_model("Scorecard", parts=("Characteristics",), functions=("regression",))
def scorecard(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    """Compile a Scorecard (regression) into ``res`` (see the module docstring)."""
    chars_el = el.find("Characteristics")
    if chars_el is None:
        raise fail(el, "has no Characteristics")
    if scope.math32:
        # JPMML's float arithmetic for this model is not reproduced: refuse, never approximate
        raise fail(el, "x-mathContext='float' is not supported for Scorecard")
    for c in chars_el.children:
        if c.tag not in ("Characteristic", "Extension"):
            raise fail(c, "not supported in Characteristics")
    chars = chars_el.findall("Characteristic")
    if not chars:
        raise fail(chars_el, "has no Characteristic")
    use_codes = el.get("useReasonCodes", "true")
    if use_codes not in ("true", "false"):
        raise fail(el, f"useReasonCodes='{use_codes}' is not a boolean")
    use_codes_b = use_codes == "true"
    algo = el.get("reasonCodeAlgorithm", "pointsBelow")
    if algo not in ("pointsBelow", "pointsAbove"):
        raise fail(el, f"reasonCodeAlgorithm='{algo}' not supported")
    if el.get("baselineMethod", "other") not in _BASELINE_METHODS:
        raise fail(el, f"baselineMethod='{el.get('baselineMethod')}' not supported")
    model_baseline = _number(el, "baselineScore")

    # the reason codes, in order of first appearance; per characteristic, per attribute
    codes: list[str] = []
    plan: list[tuple[Element, list[Element], list[int], float | None]] = []
    for ch in chars:
        atts = children(ch, "Attribute", where="Characteristic")
        if not atts:
            raise fail(ch, "has no Attribute")
        baseline = _number(ch, "baselineScore")
        baseline = model_baseline if baseline is None else baseline
        att_codes = []
        for a in atts:
            for c in a.children:
                if c.tag not in (*_PRED_TAGS, "ComplexPartialScore", "Extension"):
                    raise fail(c, "not supported in Attribute")
            code = a.get("reasonCode") or ch.get("reasonCode")
            if use_codes_b:
                if code is None:
                    raise fail(a, "has no reasonCode (nor has its Characteristic), and the "
                                  "Scorecard uses reason codes")
                if baseline is None:
                    raise fail(ch, "has no baselineScore (nor has the Scorecard), and the "
                                   "Scorecard uses reason codes")
                if code not in codes:
                    codes.append(code)
                att_codes.append(codes.index(code))
        plan.append((ch, atts, att_codes, baseline))

    initial = _number(el, "initialScore", "0")
    names = ", ".join(f"'{ch.get('name') or f'line {ch.line}'}'" for ch in chars[:5]) + \
        (", ..." if len(chars) > 5 else "")
    refuse = (f"no Attribute of one of the Scorecard's characteristics ({names}) holds for "
              "the row's values: the scorecard's result is invalid")
    outs = _program(rd, plan, initial, len(codes), algo, use_codes_b, scope, refuse)
    res.value = outs[0]
    points = outs[1:1 + len(codes)]
    firsts = outs[1 + len(codes):1 + 2 * len(codes)]

    def reason_code(of: Element) -> Col:
        if not use_codes_b:
            raise fail(of, "reasonCode output of a Scorecard with useReasonCodes='false'")
        rank = integer(of.get("rank", "1"), of, "rank")
        if rank < 1:
            raise fail(of, f"rank='{rank}' must be at least 1")
        return Col(_rank_step(rd, res.value, points, firsts, rank), "string", list(codes))

    res.features["reasonCode"] = reason_code


def _program(rd: Reader, plan: list, initial: float, n_codes: int, algo: str, use_codes: bool,
             scope: Scope, refuse: str) -> list[str]:
    """One expression program; outputs score, points per reason code (NaN: never selected),
    per reason code the index of the first characteristic that selected it (NaN: none; the
    tie-breaker of the ranking), then two scratch columns."""
    first, sel, part = 1 + n_codes, 1 + 2 * n_codes, 2 + 2 * n_codes
    prog = Program(rd.budget)
    prog.const(initial)
    prog.emit("STORE", 0)
    for r in range(2 * n_codes):
        prog.const(math.nan)  # a code no characteristic selected stays missing
        prog.emit("STORE", 1 + r)
    for j, (_ch, atts, att_codes, baseline) in enumerate(plan):
        # index of the first TRUE attribute, -1 if none (the row is refused)
        for i, a in enumerate(atts):
            predicate(rd, _one_predicate(a), scope, prog)
            prog.const(0.0)
            prog.emit("SURROGATE")
            prog.const(float(i))
        prog.const(-1.0)
        for _ in atts:
            prog.emit("IF")
        prog.emit("STORE", sel)
        prog.emit("LOADOUT", sel)
        prog.const(0.0)
        prog.emit("LT")
        prog.emit("REFUSE_IF")
        # partial = IF(sel == 0, p_0, IF(sel == 1, p_1, ...)); score = score + partial
        for i, a in enumerate(atts[:-1]):
            prog.emit("LOADOUT", sel)
            prog.const(float(i))
            prog.emit("EQ")
            _partial(rd, a, scope, prog)
        _partial(rd, atts[-1], scope, prog)
        for _ in atts[:-1]:
            prog.emit("IF")
        prog.emit("STORE", part)
        prog.emit("LOADOUT", 0)
        prog.emit("LOADOUT", part)
        prog.emit("ADD")
        prog.emit("STORE", 0)
        if not use_codes:
            continue
        for r in sorted(set(att_codes)):
            # cond = the selected attribute has code r;
            # points_r = IF(cond, SURROGATE(points_r, 0) + diff, points_r)
            # first_r = IF(cond, SURROGATE(first_r, j), first_r)
            prog.emit("LOADOUT", sel)
            prog.in_set([float(i) for i, c in enumerate(att_codes) if c == r])
            prog.emit("DUP")
            prog.emit("LOADOUT", 1 + r)
            prog.const(0.0)
            prog.emit("SURROGATE")
            if algo == "pointsBelow":
                prog.const(baseline)
                prog.emit("LOADOUT", part)
            else:
                prog.emit("LOADOUT", part)
                prog.const(baseline)
            prog.emit("SUB")
            prog.emit("ADD")
            prog.emit("LOADOUT", 1 + r)
            prog.emit("IF")
            prog.emit("STORE", 1 + r)
            prog.emit("LOADOUT", first + r)
            prog.const(float(j))
            prog.emit("SURROGATE")
            prog.emit("LOADOUT", first + r)
            prog.emit("IF")
            prog.emit("STORE", first + r)
    outs = rd.g.new_columns("scorecard", 3 + 2 * n_codes)
    rd.g.add_step("expression", name="scorecard", inputs=prog.inputs, outputs=outs,
                  family="expression", tables=prog.tables(),
                  params={"refuse_message": refuse})
    return outs


def _one_predicate(el: Element) -> Element:
    preds = [c for c in el.children if c.tag in _PRED_TAGS]
    if len(preds) != 1:
        raise fail(el, "needs exactly one predicate")
    return preds[0]


def _rank_step(rd: Reader, score: str, points: list[str], firsts: list[str],
               rank: int) -> str:
    """A column holding the index of the reason code ranked ``rank`` (1 = most points), NaN
    when fewer codes are ranked or the score is missing (a ComplexPartialScore was).

    Code ``r`` is ranked when its points ``p_r`` are >= 0; its position is
    ``1 + #{ranked s : p_s > p_r, or p_s == p_r and f_s < f_r}`` with ``f`` the index of the
    first characteristic that selected the code (distinct for distinct codes)."""
    prog = Program(rd.budget)
    n = len(points)

    def ranked(s: int) -> None:  # 1 / 0 (missing points: 0)
        prog.load(points[s])
        prog.const(0.0)
        prog.emit("GE")
        prog.const(0.0)
        prog.emit("SURROGATE")

    prog.load(score)  # IF(missing(score), NaN, code)
    prog.emit("ISMISSING")
    prog.const(math.nan)
    for r in range(n):
        ranked(r)
        prog.const(1.0)
        for s in range(n):
            if s == r:
                continue
            ranked(s)  # AND(p_s > p_r OR (p_s == p_r AND f_s < f_r))
            prog.load(points[s])
            prog.load(points[r])
            prog.emit("GT")
            prog.load(points[s])
            prog.load(points[r])
            prog.emit("EQ")
            prog.load(firsts[s])
            prog.load(firsts[r])
            prog.emit("LT")
            prog.emit("AND")
            prog.emit("OR")
            prog.emit("AND")
            prog.const(0.0)
            prog.emit("SURROGATE")
            prog.emit("ADD")
        prog.const(float(rank))
        prog.emit("EQ")
        prog.emit("AND")
        prog.const(0.0)
        prog.emit("SURROGATE")
        prog.const(float(r))
    prog.const(math.nan)
    for _ in range(n):
        prog.emit("IF")
    prog.emit("IF")
    prog.emit("STORE", 0)
    return rd.expr_column(f"reason_code_{rank}", prog).column
