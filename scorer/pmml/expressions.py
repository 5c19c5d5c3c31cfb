"""PMML expressions and predicates -> ``expression`` programs.

Every compile function appends instructions to a :class:`Program` that leave exactly one
value on the stack, and returns the value's type (:class:`Typ`): its PMML dataType and, for
strings, the vocabulary its codes index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..xsd import is_number
from .fields import (
    NUMERIC_TYPES,
    Col,
    Inline,
    Pending,
    Scope,
    array_values,
    attr_number,
    constant_for,
    declared_values,
    fail,
    number,
    parse_number,
)
from .program import Program, f32
from .regex import compile_regex
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader


@dataclass
class Typ:
    dtype: str
    col: Col | None = None  # for code values: the column whose vocabulary they index

    @property
    def vocab(self) -> list[str] | None:
        return self.col.vocab if self.col is not None else None


BOOL = Typ("boolean")
DOUBLE = Typ("double")

_BINARY = {"+": "ADD", "-": "SUB", "*": "MUL", "/": "DIV", "pow": "POW", "threshold": "THRESHOLD",
           "lessThan": "LT", "lessOrEqual": "LE", "greaterThan": "GT", "greaterOrEqual": "GE",
           "equal": "EQ", "notEqual": "NE"}
_COMPARE = {"lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual", "equal", "notEqual"}
_UNARY = {"log10": "LOG10", "ln": "LN", "exp": "EXP", "sqrt": "SQRT", "abs": "ABS",
          "floor": "FLOOR", "ceil": "CEIL", "round": "ROUND_HALF_UP", "rint": "ROUND",
          "expit": "EXPIT", "stdNormalCDF": "PROBIT", "stdNormalIDF": "PROBIT_INV",
          "expm1": "EXPM1", "ln1p": "LN1P",
          "not": "NOT", "isMissing": "ISMISSING", "isNotMissing": "ISNOTMISSING"}
_NARY = {"and": "AND", "or": "OR"}
#: aggregate functions: (the value a missing argument counts as, the combining opcode)
_AGGREGATE = {"min": (math.inf, "MIN"), "max": (-math.inf, "MAX"), "sum": (0.0, "ADD"),
              "product": (1.0, "MUL"), "avg": (0.0, "ADD")}
_SIMPLE_OPS = {"lessThan": "LT", "lessOrEqual": "LE", "greaterThan": "GT",
               "greaterOrEqual": "GE", "equal": "EQ", "notEqual": "NE"}
_COMPOUND = {"and": "AND", "or": "OR", "xor": "XOR", "surrogate": "SURROGATE"}
#: expression elements (the others in an expression position are refused)
EXPRESSIONS = ("Constant", "FieldRef", "Apply", "NormContinuous", "NormDiscrete", "Discretize",
               "MapValues")


def _children(el: Element, skip: tuple[str, ...] = ("Extension",)) -> list[Element]:
    return [c for c in el.children if c.tag not in skip]


def type_of(rd: Reader, el: Element, scope: Scope) -> Typ:
    """The type of expression ``el`` (compiled once per element and scope, then cached, so
    that nested expressions never compile a subtree more than once just to learn its type)."""
    key = (id(el), id(scope))
    typ = rd.type_cache.get(key)
    if typ is None:
        typ = rd.type_cache[key] = expression(rd, el, scope, Program(rd.budget))
    return typ


def field_ref(rd: Reader, name: str | None, scope: Scope, el: Element, prog: Program) -> Typ:
    """Load field ``name``: a column, or an inlined function argument."""
    if name is None:
        raise fail(el, "has no field attribute")
    ent = scope.names.get(name)
    if ent is None:
        raise fail(el, f"refers to field '{name}', which is not defined here")
    if isinstance(ent, Inline):
        # (each hop through an inlined argument is work too: nested functions whose
        # arguments refer to arguments once took ~30x the budget before it ran out)
        prog.charge()
        return expression(rd, ent.el, ent.scope, prog)
    if isinstance(ent, Pending):
        ent = rd.materialize(name, ent)
    prog.load(ent.column)
    return Typ(ent.dtype, ent if ent.vocab is not None else None)


def resolve(rd: Reader, name: str, scope: Scope, el: Element) -> Col:
    """The column of field ``name`` (compiling a derived field if needed)."""
    ent = scope.names.get(name)
    if ent is None:
        raise fail(el, f"refers to field '{name}', which is not defined here")
    if isinstance(ent, Inline):
        raise fail(el, f"'{name}' is a function parameter, not a field")
    if isinstance(ent, Pending):
        ent = rd.materialize(name, ent)
    return ent


def _missing_to(prog: Program, el: Element, typ: Typ, attr: str = "mapMissingTo") -> None:
    v = el.get(attr)
    if v is not None:
        prog.const(constant_for(typ.dtype, typ.col, v, el))
        prog.emit("SURROGATE")


def expression(rd: Reader, el: Element, scope: Scope, prog: Program,
               hint: Typ | None = None) -> Typ:
    """Compile one PMML expression element. ``hint``: the type a Constant is compared with."""
    tag = el.tag
    if tag == "Constant":
        if el.get("missing") == "true":
            prog.const(math.nan)
            return hint or DOUBLE
        dtype = el.get("dataType")
        text = el.text.strip()
        if hint is not None and hint.col is not None:
            prog.const(hint.col.code(text))
            return hint
        if dtype == "string" or (dtype is None and not is_number(text)):
            if hint is not None and hint.dtype in NUMERIC_TYPES and is_number(text):
                prog.const(parse_number(text, hint.dtype, el))
                return hint
            raise fail(el, f"string constant '{text}' outside a comparison is not supported")
        d = dtype or (hint.dtype if hint is not None else "double")
        prog.const(parse_number(text, d, el))
        return Typ(d)
    if tag == "FieldRef":
        typ = field_ref(rd, el.get("field"), scope, el, prog)
        _missing_to(prog, el, typ)
        return typ
    if tag == "NormContinuous":
        return _norm_continuous(rd, el, scope, prog)
    if tag == "NormDiscrete":
        col = resolve(rd, el.get("field"), scope, el)
        prog.load(col.column)
        prog.const(constant_for(col.dtype, col, el.get("value", ""), el))
        prog.emit("EQ")
        _missing_to(prog, el, DOUBLE)
        return DOUBLE
    if tag == "Discretize":
        return _discretize(rd, el, scope, prog)
    if tag == "MapValues":
        return _map_values(rd, el, scope, prog)
    if tag == "Apply":
        return _apply(rd, el, scope, prog)
    raise refused_expression(el)


#: expression elements refused for a reason of the bundle format's, not of this reader's
_REFUSED = {
    "TextIndex": "term frequencies of free text are not supported (the workspace holds "
                 "category codes, not text)",
    "Lag": "values of earlier records are not supported (every row is scored on its own)",
    "Aggregate": "aggregates over records are not supported (every row is scored on its own)",
}


def refused_expression(el: Element):
    """The error for an element in an expression position that cannot be compiled."""
    return fail(el, _REFUSED.get(el.tag, "expression element not supported"))



def _norm_continuous(rd: Reader, el: Element, scope: Scope, prog: Program) -> Typ:
    col = resolve(rd, el.get("field"), scope, el)
    pts = [(attr_number(n, "orig", required=True), attr_number(n, "norm", required=True))
           for n in el.findall("LinearNorm")]
    if len(pts) < 2:
        raise fail(el, "needs at least two LinearNorm elements")
    outliers = el.get("outliers", "asIs")

    if any(pts[i + 1][0] < pts[i][0] for i in range(len(pts) - 1)):
        raise fail(el, "LinearNorm elements must be sorted by ascending orig")
    m = len(pts) - 1
    # Tied orig values (sklearn2pmml's QuantileTransformer repeats tied quantiles) make a
    # vertical step: x at a tie takes the norm of the LAST point with that orig (the point
    # whose segment starts there), as JPMML does; a zero-width segment is never evaluated.
    if outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise fail(el, f"outliers='{outliers}' not supported")
    if outliers == "asIs" and (pts[0][0] == pts[1][0] or pts[-2][0] == pts[-1][0]):
        raise fail(el, "outliers='asIs' extrapolates along the first and last segments, and "
                       "one of them has zero width (equal orig values): undefined")

    def seg(i: int) -> None:  # n_i + (x - o_i) * (n_{i+1} - n_i) / (o_{i+1} - o_i)
        (o0, n0), (o1, n1) = pts[i], pts[i + 1]
        if o0 == o1:  # only the last segment, at x == o_m: the last point's norm
            prog.const(n1)
        else:
            prog.interpolate(col.column, o0, n0, o1, n1)

    # IF(x < o_1, seg0, IF(x < o_2, seg1, ... seg_last)), with the outlier rules around it
    branches: list[tuple[float, object]] = []
    if outliers == "asMissingValues":
        branches.append((pts[0][0], math.nan))
    elif outliers == "asExtremeValues":
        branches.append((pts[0][0], pts[0][1]))
    for i in range(m - 1):
        if pts[i + 1][0] > pts[i][0]:  # x < o_{i+1} == o_i: already taken by the branch before
            branches.append((pts[i + 1][0], i))
    for bound, what in branches:
        prog.load(col.column)
        prog.const(bound)
        prog.emit("LT")
        if isinstance(what, int):
            seg(what)
        else:
            prog.const(what)
    if outliers == "asIs":
        seg(m - 1)
    else:
        prog.load(col.column)
        prog.const(pts[-1][0])
        prog.emit("GT")
        prog.const(math.nan if outliers == "asMissingValues" else pts[-1][1])
        seg(m - 1)
        prog.emit("IF")
    for _ in branches:
        prog.emit("IF")
    # a missing input is NaN in every branch; the IF conditions are NaN too -> NaN
    _missing_to(prog, el, DOUBLE)
    return DOUBLE


def _out_value(rd: Reader, text: str | None, out: Typ, el: Element) -> float:
    if text is None:
        return math.nan
    if out.col is not None:
        return out.col.code(text)
    return parse_number(text, out.dtype, el)


def _result_typ(rd: Reader, dtype: str, values: list[str]) -> Typ:
    """The type of a value chosen among ``values`` (strings become a new vocabulary)."""
    if dtype == "string":
        vocab = list(dict.fromkeys(values))  # (first occurrences, in order: linear)
        return Typ("string", Col(column="", dtype="string", vocab=vocab))
    return Typ(dtype)


def _discretize(rd: Reader, el: Element, scope: Scope, prog: Program) -> Typ:
    col = resolve(rd, el.get("field"), scope, el)
    bins = el.findall("DiscretizeBin")
    labels = [b.get("binValue", "") for b in bins]
    extra = [v for v in (el.get("defaultValue"), el.get("mapMissingTo")) if v is not None]
    dtype = el.get("dataType") or ("double" if all(is_number(v) for v in labels + extra)
                                   else "string")
    out = _result_typ(rd, dtype, labels + extra)
    # IF(missing(x), mapMissingTo, IF(bin_1, v_1, IF(bin_2, v_2, ... defaultValue)))
    prog.load(col.column)
    prog.emit("ISMISSING")
    prog.const(_out_value(rd, el.get("mapMissingTo"), out, el))
    for b in bins:
        iv = b.find("Interval")
        if iv is None:
            raise fail(b, "has no Interval")
        closure = iv.get("closure", "closedClosed")
        lo, hi = iv.get("leftMargin"), iv.get("rightMargin")
        conds = 0
        if lo is not None:
            prog.load(col.column)
            prog.const(number(lo, iv, "leftMargin", finite=False))
            prog.emit("GE" if closure.startswith("closed") else "GT")
            conds += 1
        if hi is not None:
            prog.load(col.column)
            prog.const(number(hi, iv, "rightMargin", finite=False))
            prog.emit("LE" if closure.endswith("Closed") else "LT")
            conds += 1
            if conds == 2:
                prog.emit("AND")
        if conds == 0:
            prog.const(1.0)
        prog.const(_out_value(rd, b.get("binValue"), out, b))
    prog.const(_out_value(rd, el.get("defaultValue"), out, el))
    for _ in bins:
        prog.emit("IF")
    prog.emit("IF")
    return out


def _map_values(rd: Reader, el: Element, scope: Scope, prog: Program) -> Typ:
    pairs = el.findall("FieldColumnPair")
    table = el.find("InlineTable")
    if table is None:
        raise fail(el, "needs an InlineTable (TableLocator is not supported)")
    # cells are elements named after their column; namespace prefixes are dropped
    out_name = (el.get("outputColumn") or "").rsplit(":", 1)[-1]
    rows = []
    for r in table.findall("row"):
        cells = {c.tag: c.text for c in r.children}
        rows.append(cells)
    outs = [r.get(out_name) for r in rows if r.get(out_name) is not None]
    extra = [v for v in (el.get("defaultValue"), el.get("mapMissingTo")) if v is not None]
    dtype = el.get("dataType") or ("double" if all(is_number(v) for v in outs + extra)
                                   else "string")
    out = _result_typ(rd, dtype, outs + extra)
    keys = [(resolve(rd, p.get("field"), scope, p), (p.get("column") or "").rsplit(":", 1)[-1])
            for p in pairs]
    if not keys:
        raise fail(el, "has no FieldColumnPair")
    # IF(any key missing, mapMissingTo, IF(row_1 matches, out_1, ... defaultValue))
    for j, (col, _) in enumerate(keys):
        prog.load(col.column)
        prog.emit("ISMISSING")
        if j:
            prog.emit("OR")
    prog.const(_out_value(rd, el.get("mapMissingTo"), out, el))
    n = 0
    for r in rows:
        if r.get(out_name) is None or any(c not in r for _, c in keys):
            continue
        for j, (col, cname) in enumerate(keys):
            prog.load(col.column)
            prog.const(constant_for(col.dtype, col, r[cname], el))
            prog.emit("EQ")
            if j:
                prog.emit("AND")
        prog.const(_out_value(rd, r[out_name], out, el))
        n += 1
    prog.const(_out_value(rd, el.get("defaultValue"), out, el))
    for _ in range(n):
        prog.emit("IF")
    prog.emit("IF")
    return out


def _apply(rd: Reader, el: Element, scope: Scope, prog: Program) -> Typ:
    fn = el.get("function", "")
    args = [c for c in _children(el) if c.tag in EXPRESSIONS]
    if len(args) != len(_children(el)):
        bad = next(c for c in _children(el) if c.tag not in EXPRESSIONS)
        raise refused_expression(bad) if bad.tag in _REFUSED else fail(bad, "not an expression")
    if el.get("invalidValueTreatment", "returnInvalid") not in ("returnInvalid", "asIs"):
        raise fail(el, f"invalidValueTreatment='{el.get('invalidValueTreatment')}' not "
                       "supported")
    if el.get("mapMissingTo") is None:
        typ = _apply_body(rd, el, fn, args, scope, prog)
        _missing_to(prog, el, typ, "defaultValue")
        return typ
    # "if any of the input values of the function is missing", the function is not applied:
    # mapMissingTo; defaultValue is for a missing result of present inputs
    cols = [_arg_column(rd, a, scope) for a in args]
    prog.const(1.0)  # IF(every input present, the function's value, mapMissingTo)
    for c in cols:
        prog.load(c)
        prog.emit("ISNOTMISSING")
        prog.emit("AND")
    typ = _apply_body(rd, el, fn, args, scope, prog)
    _missing_to(prog, el, typ, "defaultValue")
    prog.const(constant_for(typ.dtype, typ.col, el.get("mapMissingTo"), el))
    prog.emit("IF")
    return typ


def _arg_column(rd: Reader, el: Element, scope: Scope) -> str:
    """The workspace column holding expression ``el``'s value: a field's own column, else
    one computed by a step of its own (so that a program can read it more than once), made
    once per element and scope."""
    key = (id(el), id(scope))
    hit = rd.arg_columns.get(key)
    if hit is not None:
        return hit[2]
    if el.tag == "FieldRef" and el.get("mapMissingTo") is None:
        ent = scope.names.get(el.get("field"))
        if ent is not None and not isinstance(ent, Inline):
            col = resolve(rd, el.get("field"), scope, el)
            if col.vocab is None:
                return col.column
    p = Program(rd.budget)
    expression(rd, el, scope, p)
    p.emit("STORE", 0)
    column = rd.expr_column("aggregate_arg", p).column
    # (the element and scope are kept: their ids cannot be reused by others meanwhile)
    rd.arg_columns[key] = (el, scope, column)
    return column


def _aggregate(rd: Reader, fn: str, args: list[Element], scope: Scope, prog: Program) -> None:
    """``min`` / ``max`` / ``sum`` / ``product`` / ``avg`` of ``args``: "missing values in
    the input to an aggregate function are simply ignored" (PMML's built-in functions; so
    ``avg`` divides by the number present); none present: missing."""
    neutral, op = _AGGREGATE[fn]
    cols = [_arg_column(rd, a, scope) for a in args]
    prog.load(cols[0])  # the condition: the first present argument is not missing
    for c in cols[1:]:
        prog.load(c)
        prog.emit("SURROGATE")
    prog.emit("ISNOTMISSING")
    for i, c in enumerate(cols):  # then: the present ones combined in order
        prog.load(c)
        prog.const(neutral)
        prog.emit("SURROGATE")
        if i:
            prog.emit(op)
    if fn == "avg":  # ... / how many are present
        for i, c in enumerate(cols):
            prog.load(c)
            prog.emit("ISNOTMISSING")
            if i:
                prog.emit("ADD")
        prog.emit("DIV")
    prog.const(math.nan)  # else: missing
    prog.emit("IF")


def _arity(el: Element, fn: str, args: list[Element], lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if not lo <= len(args) <= hi:
        raise fail(el, f"function '{fn}' takes {lo}..{hi} arguments, got {len(args)}")


def _operand_hint(rd: Reader, args: list[Element], scope: Scope) -> Typ | None:
    """The type of the first non-constant operand (constants are coded against it)."""
    for a in args:
        if a.tag != "Constant":
            return type_of(rd, a, scope)
    return None


def _apply_body(rd: Reader, el: Element, fn: str, args: list[Element], scope: Scope,
                prog: Program) -> Typ:
    if fn in rd.functions:
        return _user_function(rd, el, fn, args, scope, prog)
    if fn in _COMPARE:
        _arity(el, fn, args, 2)
        hint = _operand_hint(rd, args, scope)
        for a in args:
            expression(rd, a, scope, prog, hint if a.tag == "Constant" else None)
        prog.emit(_BINARY[fn])
        return BOOL
    if fn in _BINARY:
        _arity(el, fn, args, 2)
        for a in args:
            expression(rd, a, scope, prog)
        prog.emit(_BINARY[fn])
        return DOUBLE
    if fn in _UNARY:
        _arity(el, fn, args, 1)
        expression(rd, args[0], scope, prog)
        prog.emit(_UNARY[fn])
        return BOOL if fn in ("not", "isMissing", "isNotMissing") else DOUBLE
    if fn in _AGGREGATE:
        if not args:
            raise fail(el, f"function '{fn}' needs arguments")
        _aggregate(rd, fn, args, scope, prog)
        return DOUBLE
    if fn in _NARY:
        if not args:
            raise fail(el, f"function '{fn}' needs arguments")
        for i, a in enumerate(args):
            expression(rd, a, scope, prog)
            if i:
                prog.emit(_NARY[fn])
        return BOOL
    if fn in ("isIn", "isNotIn"):
        if len(args) < 2:
            raise fail(el, f"function '{fn}' needs a value and candidates")
        typ = expression(rd, args[0], scope, prog)
        members = []
        for a in args[1:]:
            if a.tag != "Constant":
                raise fail(a, f"'{fn}' candidates must be Constants")
            members.append(constant_for(typ.dtype, typ.col, a.text.strip(), a))
        prog.in_set(members)
        if fn == "isNotIn":
            prog.emit("NOT")
        return BOOL
    if fn == "if":
        _arity(el, fn, args, 2, 3)
        then_else = args[1:]
        strings = [a for a in then_else if a.tag == "Constant"
                   and (a.get("dataType") == "string" or not is_number(a.text.strip()))]
        expression(rd, args[0], scope, prog)
        if strings:
            others = [a for a in then_else if a not in strings]
            if others:
                # a string constant beside a category-code expression: extend its vocabulary
                # (appending keeps every existing code)
                other = type_of(rd, others[0], scope)
                if other.col is None:
                    return _number_as_string(rd, el, others[0], then_else, scope, prog)
                # an undeclared vocabulary is shared (later constants extend the input's);
                # a declared one is copied and extended
                out = Typ("string", other.col if other.col.growable else
                          Col("", "string", list(other.vocab), extra=other.col.extra))
            else:
                out = _result_typ(rd, "string", [a.text.strip() for a in then_else])
            for a in then_else:
                if a in strings:
                    text = a.text.strip()
                    if text not in out.col.vocab and not out.col.growable:
                        if text in out.col.extra:  # it had a negative code: keep it so
                            prog.const(out.col.code(text))
                            continue
                        out.col.vocab.append(text)
                    prog.const(out.col.code(text))
                else:
                    expression(rd, a, scope, prog)
        else:
            out = expression(rd, then_else[0], scope, prog)
            if len(then_else) == 2:
                other = type_of(rd, then_else[1], scope)
                if out.col is not None and other.col is not None and \
                        other.vocab != out.vocab:
                    # two code spaces: the result's vocabulary is their union
                    known = set(out.vocab)
                    union = list(out.vocab) + [v for v in dict.fromkeys(other.vocab)
                                               if v not in known]
                    out = Typ("string", Col("", "string", union))
                    _recoded(rd, then_else[1], scope, prog, other.vocab, union)
                else:
                    expression(rd, then_else[1], scope, prog, out if out.col else None)
        if len(then_else) == 1:
            prog.const(math.nan)
        prog.emit("IF")
        return out
    if fn == "dateDaysSinceYear":
        return _date_days_since_year(rd, el, args, scope, prog)
    if fn in _STRING_FUNCTIONS:
        return _string_function(rd, el, fn, args, scope, prog)
    if fn == "modulo":  # x - y * floor(x / y)
        _arity(el, fn, args, 2)
        expression(rd, args[0], scope, prog)
        expression(rd, args[1], scope, prog)
        expression(rd, args[0], scope, prog)
        expression(rd, args[1], scope, prog)
        prog.emit("DIV")
        prog.emit("FLOOR")
        prog.emit("MUL")
        prog.emit("SUB")
        return DOUBLE
    raise fail(el, f"built-in function '{fn}' not supported")


#: string functions evaluated over a vocabulary at load time (arguments: value, constants)
_STRING_FUNCTIONS = ("substring", "lowercase", "uppercase", "trimBlanks", "concat", "replace",
                     "matches")
#: category text that string functions may make in one document's expression at most
_MAX_TEXT = 16 << 20
_MAX_CATEGORIES = 10_000


def _whole(el: Element, text: str | None) -> int:
    """An integer-valued constant argument ("3" or "3.0")."""
    v = number(text, el)
    if not v.is_integer():
        raise fail(el, f"'{text}' is not an integer")
    return int(v)


def _string_function(rd: Reader, el: Element, fn: str, args: list[Element], scope: Scope,
                     prog: Program) -> Typ:
    """A string function of one category-code argument, applied to every category.

    The workspace holds codes, not strings, so the function is evaluated once per category
    of the argument's vocabulary at load time and the result recoded into a new vocabulary.
    This is exact only when every value the argument can hold is in its vocabulary, so the
    argument must be a field that refuses undeclared values (or a column derived from one).
    """
    code_args = [(i, a) for i, a in enumerate(args) if a.tag != "Constant"]
    if not code_args or (fn != "concat" and [i for i, _ in code_args] != [0]):
        raise fail(el, f"'{fn}' needs one non-constant first argument")
    vocabs = []
    numeric: list[bool] = []  # number fields with declared values enter as their texts
    for _, arg in code_args:
        typ = type_of(rd, arg, scope)
        numeric.append(typ.col is None)
        if typ.col is None:
            typ = number_to_codes(rd, el, arg, scope, Program(rd.budget))
        f = rd.input_field(typ.col)
        if typ.col.growable or (f is not None and f.unknown != "error"):
            raise fail(el, f"'{fn}' needs fields whose values are all declared and refused "
                           "otherwise (invalidValueTreatment='returnInvalid')")
        vocabs.append(list(typ.vocab))

    def emit_arg(k: int) -> None:
        if numeric[k]:
            number_to_codes(rd, el, code_args[k][1], scope, prog)
        else:
            expression(rd, code_args[k][1], scope, prog)
    consts = [a.text if a.tag == "Constant" else None for a in args]
    if fn == "substring" and len(args) != 3:
        raise fail(el, "substring(value, start, length) expected")
    if fn in ("replace", "matches"):
        # RE2: matching time linear in the category's length, whatever the pattern
        rx = compile_regex(el, consts[1] or "")
        if fn == "replace" and "$" in (consts[2] or ""):
            raise fail(el, "group references in a replacement are not supported")

    def apply(vals: tuple[str, ...]) -> str:
        v = vals[0]
        if fn == "lowercase":
            return v.lower()
        if fn == "uppercase":
            return v.upper()
        if fn == "trimBlanks":
            return v.strip()
        if fn == "substring":  # 1-based start, length
            start, length = _whole(args[1], consts[1]), _whole(args[2], consts[2])
            return v[start - 1:start - 1 + length]
        if fn == "replace":
            repl = consts[2] or ""
            return rx.sub(lambda _m: repl, v)  # the replacement is literal text
        if fn == "matches":
            return "true" if rx.search(v) else "false"
        it = iter(vals)  # concat
        return "".join(next(it) if c is None else c for c in consts)

    combos: list[tuple[int, ...]] = [()]
    for vocab_i in vocabs:
        combos = [(*c, j) for c in combos for j in range(len(vocab_i))]
        if len(combos) > _MAX_CATEGORIES:
            raise fail(el, f"'{fn}' would create more than {_MAX_CATEGORIES} categories")
    results = []
    budget = _MAX_TEXT
    for c in combos:
        vals = tuple(vocabs[k][j] for k, j in enumerate(c))
        # the most text this call can make, charged before it is made (a replacement
        # inserted at every position of a long value, a long constant concatenated to
        # every category: a 99 KB document once made a gigabyte)
        if fn == "replace":
            most = len(vals[0]) + (len(vals[0]) + 1) * len(consts[2] or "")
        elif fn == "concat":
            it = iter(vals)
            most = sum(len(next(it)) if k is None else len(k) for k in consts)
        else:
            most = len(vals[0]) + 5
        budget -= most
        if budget < 0:
            raise fail(el, f"'{fn}' would make more than {_MAX_TEXT >> 20} MiB of category "
                           "text")
        results.append(apply(vals))
    position = {r: i for i, r in enumerate(dict.fromkeys(results))}
    vocab = list(position)

    def key() -> None:  # mixed-radix index of the argument codes (NaN if any is missing)
        stride = 1.0
        for k in reversed(range(len(code_args))):
            emit_arg(k)
            if stride != 1.0:
                prog.const(stride)
                prog.emit("MUL")
            if k != len(code_args) - 1:
                prog.emit("ADD")
            stride *= len(vocabs[k])

    # IF(all codes >= 0, IF(key == 0, code(f(v_0)), IF(key == 1, ..., unknown)), unknown);
    # a missing argument makes the first condition NaN, hence the result missing
    for k in range(len(code_args)):
        emit_arg(k)
        prog.const(0.0)
        prog.emit("GE")
        if k:
            prog.emit("AND")
    for i, r in enumerate(results):
        key()
        prog.const(float(i))
        prog.emit("EQ")
        prog.const(float(position[r]))
    prog.const(-1.0)
    for _ in results:
        prog.emit("IF")
    prog.const(-1.0)
    prog.emit("IF")
    if fn == "matches":
        # a boolean: recode "true"/"false" codes to 1 / 0
        return _as_boolean(prog, vocab)
    return Typ("string", Col("", "string", vocab))


def _as_boolean(prog: Program, vocab: list[str]) -> Typ:
    """Top of stack: a code into ``vocab`` (entries "true"/"false") -> 1.0 / 0.0."""
    if "true" in vocab:
        prog.const(float(vocab.index("true")))
        prog.emit("EQ")
    else:
        prog.const(0.0)
        prog.emit("MUL")
    return BOOL


def _number_as_string(rd: Reader, el: Element, num: Element, then_else: list[Element],
                      scope: Scope, prog: Program) -> Typ:
    """``if(c, "text", x)`` where ``x`` is a number field with declared values: the number
    is cast to its category (the declared value's text), as a string-typed result.

    The condition is already on the stack."""
    if num.tag != "FieldRef" or num.get("field") not in rd.data_fields:
        raise fail(el, "'if' mixing a string constant and a computed number")
    col = Col("", "string", list(_declared_texts(rd, el, num)))
    for a in then_else:
        if a is num:
            number_to_codes(rd, el, num, scope, prog)
        else:
            prog.const(col.code(a.text.strip()) if a.text.strip() in col.vocab else
                       _append(col, a.text.strip()))
    if len(then_else) == 1:
        prog.const(math.nan)
    prog.emit("IF")
    return Typ("string", col)


def _declared_texts(rd: Reader, el: Element, num: Element) -> list[str]:
    if num.tag != "FieldRef" or num.get("field") not in rd.data_fields:
        raise fail(el, "casting a computed number to a string is not supported")
    df = rd.data_fields[num.get("field")]
    texts = declared_values(df)
    if not texts:
        raise fail(el, "casting a number field without declared values to a string")
    return texts


def number_to_codes(rd: Reader, el: Element, num: Element, scope: Scope,
                    prog: Program) -> Typ:
    """A numeric field with declared values as category codes of those values' texts:
    IF(x == v0, 0, IF(x == v1, 1, ... -1)); NaN stays NaN."""
    texts = _declared_texts(rd, el, num)
    dtype = rd.data_fields[num.get("field")].get("dataType", "double")
    for i, t in enumerate(texts):
        expression(rd, num, scope, prog)
        prog.const(parse_number(t, dtype, num))
        prog.emit("EQ")
        prog.const(float(i))
    expression(rd, num, scope, prog)
    prog.emit("ISMISSING")
    prog.const(math.nan)
    prog.const(-1.0)
    prog.emit("IF")
    for _ in texts:
        prog.emit("IF")
    return Typ("string", Col("", "string", list(texts)))


def _date_days_since_year(rd: Reader, el: Element, args: list[Element], scope: Scope,
                          prog: Program) -> Typ:
    """dateDaysSinceYear of a date held as category codes: one number per category."""
    import datetime as _dt

    _arity(el, "dateDaysSinceYear", args, 2)
    typ = type_of(rd, args[0], scope)
    if typ.col is None or args[1].tag != "Constant":
        raise fail(el, "dateDaysSinceYear needs a date built from declared categories and a "
                       "constant year")
    year = _whole(args[1], args[1].text)
    days = []
    for v in typ.vocab:
        try:
            d = _dt.date.fromisoformat(v.strip()[:10])
        except ValueError:
            raise fail(el, f"'{v}' is not a date") from None
        days.append(float((d - _dt.date(year, 1, 1)).days))
    prog.select(lambda: expression(rd, args[0], scope, prog), days)
    return Typ("integer")


def _append(col: Col, text: str) -> float:
    col.vocab.append(text)
    return float(len(col.vocab) - 1)


def _recoded(rd: Reader, el: Element, scope: Scope, prog: Program, src: list[str],
             dst: list[str]) -> None:
    """Compile ``el`` (codes into ``src``) as codes into ``dst``.

    IF(e == i, dst.index(src[i]), ...) for every code that moves; ``e`` is pure, so
    evaluating it once per test is only a cost."""
    first = {v: j for j, v in reversed(list(enumerate(dst)))}  # (dst.index, in O(1))
    moves = [(i, first[v]) for i, v in enumerate(src) if first[v] != i]
    for i, j in moves:
        expression(rd, el, scope, prog)
        prog.const(float(i))
        prog.emit("EQ")
        prog.const(float(j))
    expression(rd, el, scope, prog)
    for _ in moves:
        prog.emit("IF")


def _user_function(rd: Reader, el: Element, fn: str, args: list[Element], scope: Scope,
                   prog: Program) -> Typ:
    """Inline a DefineFunction: its parameters become the argument expressions."""
    fdef = rd.functions[fn]
    params = fdef.findall("ParameterField")
    if len(params) != len(args):
        raise fail(el, f"function '{fn}' takes {len(params)} arguments, got {len(args)}")
    if rd.inline_depth > 32:
        raise fail(el, f"function '{fn}': calls nest too deeply (recursion?)")
    # the body is the one child besides the parameters (an unsupported one is named as such)
    body = [c for c in _children(fdef) if c.tag != "ParameterField"]
    if len(body) != 1:
        raise fail(fdef, "must hold exactly one expression")
    inner = Scope(dict(rd.global_scope.names), scope.math32)
    for p, a in zip(params, args, strict=True):
        inner.names[p.get("name")] = Inline(a, scope)
    rd.inline_depth += 1
    try:
        typ = expression(rd, body[0], inner, prog)
    finally:
        rd.inline_depth -= 1
    if fdef.get("dataType") == "float" and typ.col is None:
        prog.emit("F32")
    return typ


# --- predicates ------------------------------------------------------------------------------
def _ordinal_compare(rd: Reader, el: Element, col: Col, op: str, prog: Program) -> None:
    """``lessThan`` ... of an ordinal string field (the column's codes are loaded): the order
    is the DataField's valid Values' order, which the codes follow. Another field, or a value
    outside the declared ones, is refused. An undeclared input value (a code outside the
    declared ones) compares as unknown."""
    name = el.get("field")
    df = rd.data_fields.get(name)
    value = el.get("value", "")
    declared = declared_values(df) if df is not None and df.get("optype") == "ordinal" else []
    if not declared:
        raise fail(el, f"operator '{op}' on the categorical field '{name}' (ordering "
                       "comparisons need an ordinal field with declared values)")
    if value not in declared or col.vocab[:len(declared)] != declared:
        raise fail(el, f"operator '{op}' on the ordinal field '{name}': the value '{value}' "
                       "is not one of its declared values")
    # an undeclared value's code is negative: x * ((x >= 0) / (x >= 0)) is x, or NaN
    prog.emit("DUP")
    prog.const(0.0)
    prog.emit("GE")
    prog.emit("DUP")
    prog.emit("DIV")
    prog.emit("MUL")
    prog.const(float(declared.index(value)))
    prog.emit(_SIMPLE_OPS[op])


def predicate(rd: Reader, el: Element, scope: Scope, prog: Program) -> None:
    """Compile a PMML predicate to a program leaving 1 (true), 0 (false) or NaN (unknown)."""
    tag = el.tag
    if tag == "True":
        prog.const(1.0)
    elif tag == "False":
        prog.const(0.0)
    elif tag == "SimplePredicate":
        col = resolve(rd, el.get("field"), scope, el)
        op = el.get("operator")
        prog.load(col.column)
        if op in ("isMissing", "isNotMissing"):
            prog.emit("ISMISSING" if op == "isMissing" else "ISNOTMISSING")
            return
        if op not in _SIMPLE_OPS:
            raise fail(el, f"operator '{op}' not supported")
        if col.vocab is not None and op not in ("equal", "notEqual"):
            _ordinal_compare(rd, el, col, op, prog)
            return
        prog.const(constant_for(col.dtype, col, el.get("value", ""), el))
        prog.emit(_SIMPLE_OPS[op])
    elif tag == "SimpleSetPredicate":
        col = resolve(rd, el.get("field"), scope, el)
        arr = el.find("Array")
        if arr is None:
            raise fail(el, "has no Array")
        prog.load(col.column)
        prog.in_set([constant_for(col.dtype, col, v, arr) for v in array_values(arr)])
        op = el.get("booleanOperator")
        if op == "isNotIn":
            prog.emit("NOT")
        elif op != "isIn":
            raise fail(el, f"booleanOperator '{op}' not supported")
    elif tag == "CompoundPredicate":
        op = el.get("booleanOperator")
        if op not in _COMPOUND:
            raise fail(el, f"booleanOperator '{op}' not supported")
        parts = [c for c in _children(el)]
        if len(parts) < 2:
            raise fail(el, "needs at least two predicates")
        for i, p in enumerate(parts):
            predicate(rd, p, scope, prog)
            if i:
                prog.emit(_COMPOUND[op])
    else:
        raise fail(el, "predicate element not supported")


def split_constant(col: Col, text: str, el: Element) -> float:
    """A SimplePredicate threshold in the field's own precision (float fields: float32)."""
    v = parse_number(text, col.dtype, el)
    return f32(v) if col.dtype == "float" else v
