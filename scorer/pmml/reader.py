"""PMML document -> tablescore bundle IR.

The reader walks the document once, compiling as it goes: input fields (DataDictionary), the
model's MiningSchema treatments, derived fields (compiled lazily, when first referenced, into
``expression`` steps), the model itself, Targets and Output. Anything it does not understand
is refused with the element's name and line; nothing is skipped silently except the purely
informative elements listed in :data:`INFORMATIVE`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from .. import __version__
from ..build.graph import Graph
from ..ir import Bundle, Field, Output, Verification
from ..xsd import is_number
from . import fastpath
from .expressions import expression, number_to_codes, predicate, resolve
from .fastpath import add_affine, affine_terms, fuse
from .fields import (
    DATA_TYPES,
    NUMERIC_TYPES,
    Col,
    Pending,
    Scope,
    attr_number,
    children,
    constant_for,
    declared,
    declared_values,
    fail,
    number,
    parse_number,
    same_class,
    typed_class,
    xs_double,
)
from .program import Budget, Program, f32
from .safexml import Element
from .trees import emit_forest, parse_tree

#: elements that carry no scoring semantics (statistics, explanations, vendor extensions)
INFORMATIVE = frozenset({"Extension", "ModelStats", "ModelExplanation", "LocalTransformations",
                         "MiningSchema", "Output", "Targets", "ModelVerification",
                         "Header", "MiningBuildTask"})


Compiler = Callable[["Reader", Element, Scope, "Result"], None]


@dataclass
class ModelFamily:
    """How one PMML model element compiles into bundle steps (see :func:`register_model`)."""

    tag: str
    #: child elements the model element may hold besides the :data:`INFORMATIVE` ones
    parts: tuple[str, ...]
    #: ``functionName`` -> ``compile(reader, element, scope, result)``, which fills ``result``
    #: (value / probs / label ...)
    compilers: dict[str, Compiler]

    @property
    def functions(self) -> tuple[str, ...]:
        """The ``functionName`` values this element compiles."""
        return tuple(self.compilers)


#: model element tag -> its family; one module per family registers itself here
MODEL_FAMILIES: dict[str, ModelFamily] = {}


def register_model(tag: str, *, parts: tuple[str, ...],
                   functions: tuple[str, ...] = ("regression", "classification")
                   ) -> Callable[[Compiler], Compiler]:
    """Decorator registering the compiler of PMML model element ``tag`` for ``functions``.

    The compiler receives the :class:`Reader` (its graph ``reader.g``, helpers such as
    :meth:`Reader.program_step`), the model element, the model's scope (field name ->
    workspace column, after its MiningSchema and LocalTransformations) and a :class:`Result`
    whose ``function``, ``target`` and (classification) ``classes`` are set; it sets
    ``value`` (regression) or ``probs`` + ``label`` (classification), and may add
    family-specific OutputField features to ``result.features``. Another module may register
    further ``functionName`` values of the same element (MiningModel ``clustering``); its
    ``parts`` must be the same.
    """

    def deco(fn: Compiler) -> Compiler:
        fam = MODEL_FAMILIES.get(tag)
        if fam is None:
            fam = MODEL_FAMILIES[tag] = ModelFamily(tag=tag, parts=parts, compilers={})
        elif fam.parts != parts:
            raise RuntimeError(f"PMML model element '{tag}' registered with other parts")
        for f in functions:
            if f in fam.compilers:
                raise RuntimeError(f"PMML model element '{tag}' functionName='{f}' "
                                   "registered twice")
            fam.compilers[f] = fn
        return fn

    return deco


@dataclass
class Result:
    """What a compiled model predicts (workspace columns)."""

    function: str
    target: str | None
    target_dtype: str = "double"
    value: str | None = None  # regression: the predicted value
    classes: list[str] | None = None  # classification: class values
    probs: list[str] | None = None  # classification: one column per class
    label: str | None = None  # classification: column holding the predicted class index
    fields: dict[str, Col] = field(default_factory=dict)  # OutputFields, by name
    final: list[tuple[Element, Col]] = field(default_factory=list)  # final OutputFields
    multi: list[Result] = field(default_factory=list)  # x-multiModelChain: one per target
    entity: str | None = None  # TreeModel: the id of the node that scored (numeric ids)
    #: family-specific OutputField features: feature name -> (OutputField element -> column)
    features: dict[str, Callable[[Element], Col]] = field(default_factory=dict)


class Reader:
    """Compiles one PMML document (see :func:`scorer.pmml.read_pmml`)."""

    def __init__(self, root: Element) -> None:
        if root.tag != "PMML":
            raise fail(root, "the document's root element is not <PMML>")
        self.root = root
        self.budget = Budget()
        self.type_cache: dict[tuple[int, int], object] = {}
        #: (id of an expression element, id of its scope) -> (element, scope, the column
        #: computing it) (see expressions._arg_column)
        self.arg_columns: dict[tuple[int, int], tuple[Element, Scope, str]] = {}
        self.functions: dict[str, Element] = {}
        self.inline_depth = 0
        self.fast_trees = 0
        self.general_trees = 0
        self.data_fields: dict[str, Element] = {}
        self._compiled: dict[int, Col] = {}
        #: DerivedFields being compiled (id of the element -> name), outermost first
        self._active: dict[int, str] = {}
        #: label columns that are the argmax (first on ties) of these probability columns
        self.argmax_of: dict[str, list[str]] = {}
        self._ones_col: str | None = None
        dd = root.find("DataDictionary")
        if dd is None:
            raise fail(root, "has no DataDictionary")
        fields: list[Field] = []
        self.global_scope = Scope()
        self._prep: list[tuple[Element, Col]] = []
        for df in dd.findall("DataField"):
            name = df.get("name")
            dtype = df.get("dataType")
            if dtype not in DATA_TYPES:
                raise fail(df, f"dataType '{dtype}' not supported" + (
                    " (date and time inputs need an input type the bundle format does not "
                    "have yet)" if dtype and dtype.startswith(("date", "time")) else ""))
            valid, missing_vals = [], []
            for v in df.findall("Value"):
                if v.get("value") is None:  # (every later reader of Values relies on it)
                    raise fail(v, "has no 'value' attribute")
                prop = v.get("property", "valid")
                if prop == "valid":
                    valid.append(v.get("value"))
                elif prop == "missing":
                    missing_vals.append(v.get("value"))
            self.data_fields[name] = df
            if dtype == "string":
                f = Field(name=name, type="string", categories=list(valid))
                col = Col(name, "string", f.categories, growable=not valid)
            else:
                f = Field(name=name, type="boolean" if dtype == "boolean" else "double")
                col = Col(name, dtype)
            fields.append(f)
            self.global_scope.names[name] = col
            if dtype == "float" or any(
                    m.strip().lower() not in ("nan", "", "na", "n/a") for m in missing_vals):
                self._prep.append((df, col))
        self.g = Graph(fields)
        self._fields = {f.name: f for f in fields}
        targets = set()
        for m in (c for c in root.children if c.tag in MODEL_FAMILIES):
            ms = m.find("MiningSchema")
            for mf in ms.findall("MiningField") if ms is not None else []:
                if mf.get("usageType", "active") in ("target", "predicted"):
                    targets.add(mf.get("name"))
        for df, col in self._prep:
            if df.get("name") not in targets:
                self._prepare_input(df, col)
        td = root.find("TransformationDictionary")
        if td is not None:
            self._transformations(td, self.global_scope, allow_functions=True)
        for c in root.children:
            if c.tag not in INFORMATIVE and c.tag not in MODEL_FAMILIES and c.tag not in (
                    "DataDictionary", "TransformationDictionary"):
                raise fail(c, "element not supported")

    # --- inputs and derived fields ------------------------------------------------------------
    def _prepare_input(self, df: Element, col: Col) -> None:
        """float fields hold float32 values; declared missing-value markers become NaN."""
        prog = Program(self.budget)
        prog.load(col.column)
        if col.dtype == "float":
            prog.emit("F32")
        for v in df.findall("Value"):
            if v.get("property") == "missing":
                text = v.get("value", "")
                if text.strip().lower() in ("nan", "", "na", "n/a"):
                    continue
                prog.emit("MISSING_IF", value=constant_for(col.dtype, col, text, v))
        prog.emit("STORE", 0)
        out = self.g.new_columns("in", names=[col.column])
        self.g.add_step("expression", name=f"input_{col.column}", inputs=prog.inputs,
                        outputs=out, family="expression", tables=prog.tables(),
                        elementwise=True)
        self.g.propagate_codes(col.column, out[0])
        col.column = out[0]

    def _transformations(self, el: Element, scope: Scope, *, allow_functions: bool) -> None:
        for c in el.children:
            if c.tag == "DerivedField":
                scope.names[c.get("name")] = Pending(c, scope)
            elif c.tag == "DefineFunction" and allow_functions:
                self.functions[c.get("name")] = c
            elif c.tag != "Extension":
                raise fail(c, "not supported in transformations")

    def materialize(self, name: str, p: Pending) -> Col:
        """Compile a DerivedField into an expression step (once)."""
        key = id(p.el)
        if key in self._compiled:
            return self._compiled[key]
        el = p.el
        if key in self._active:  # a DerivedField needed (directly or not) by its own value
            keys = list(self._active)
            names = [self._active[k] for k in keys[keys.index(key):]]
            raise fail(el, "derived fields refer to each other in a cycle: "
                           + " -> ".join(f"'{n}'" for n in [*names, name]))
        self._active[key] = name
        try:
            return self._materialize(name, p, key)
        finally:
            del self._active[key]

    def _materialize(self, name: str, p: Pending, key: int) -> Col:
        el = p.el
        exprs = [c for c in el.children if c.tag not in ("Extension", "Value")]
        if len(exprs) != 1:
            raise fail(el, "must hold exactly one expression")
        prog = Program(self.budget)
        typ = expression(self, exprs[0], p.scope, prog)
        dtype = el.get("dataType") or typ.dtype
        if dtype in ("string", "date") and typ.col is None and exprs[0].tag == "FieldRef":
            # a number field cast to text: its declared values become the categories
            prog = Program(self.budget)
            typ = number_to_codes(self, el, exprs[0], p.scope, prog)
        if dtype not in (*DATA_TYPES, "date") or (dtype == "date" and typ.col is None):
            raise fail(el, f"dataType '{dtype}' not supported here")
        if dtype == "float" and typ.col is None:
            prog.emit("F32")
        prog.emit("STORE", 0)
        out = self.g.new_columns("d", names=[name])
        terms = affine_terms(prog) if typ.col is None else None
        if terms is not None and not self.g.is_codes(prog.inputs[0]):
            add_affine(self.g, f"derived_{name}", prog.inputs[0], terms, out)
        else:
            self.g.add_step("expression", name=f"derived_{name}", inputs=prog.inputs,
                            outputs=out, family="expression", tables=prog.tables())
        col = Col(out[0], dtype if typ.col is None else "string",
                  typ.vocab if typ.col is not None else None)
        if typ.col is not None:
            col.extra, col.growable = typ.col.extra, typ.col.growable
        self._compiled[key] = col
        return col

    def expr_column(self, name: str, prog: Program, dtype: str = "double",
                    params: dict | None = None) -> Col:
        """Emit ``prog`` (which STOREs output 0) as a one-column expression step."""
        out = self.g.new_columns(name, 1)
        self.g.add_step("expression", name=name, inputs=prog.inputs, outputs=out,
                        family="expression", tables=prog.tables(), params=params)
        return Col(out[0], dtype)

    def program_step(self, name: str, prog: Program, n_out: int) -> list[str]:
        outs = self.g.new_columns(name, n_out)
        self.g.add_step("expression", name=name, inputs=prog.inputs, outputs=outs,
                        family="expression", tables=prog.tables())
        return outs

    def input_field(self, col: Col) -> Field | None:
        """The input field whose workspace column ``col`` is, if any."""
        f = self._fields.get(col.column)
        return f if f is not None and f.type == "string" else None

    # --- models -------------------------------------------------------------------------------
    def top_model(self) -> tuple[Element, Result]:
        models = [c for c in self.root.children if c.tag in MODEL_FAMILIES]
        if not models:
            bad = [c for c in self.root.children if c.tag.endswith("Model") or c.tag in (
                "Scorecard", "NeuralNetwork")]
            raise fail(bad[0] if bad else self.root,
                       "model element not supported" if bad else "no model element")
        if len(models) > 1:
            raise fail(models[1], "only one model per document is supported")
        m = models[0]
        if m.get("isScorable", "true") == "false":
            raise fail(m, "isScorable='false'")
        return m, self.model(m, self.global_scope)

    def model(self, el: Element, outer: Scope, outer_target: str | None = None) -> Result:
        scope = outer.child()
        if el.get("x-mathContext") == "float":
            scope.math32 = True
        elif el.get("x-mathContext") not in (None, "double"):
            raise fail(el, f"x-mathContext='{el.get('x-mathContext')}' not supported")
        fam = MODEL_FAMILIES[el.tag]
        for c in el.children:
            if c.tag not in INFORMATIVE and c.tag not in fam.parts:
                raise fail(c, f"not supported in {el.tag}")
        target = self._mining_schema(el, scope, top=outer is self.global_scope) or outer_target
        lt = el.find("LocalTransformations")
        if lt is not None:
            self._transformations(lt, scope, allow_functions=False)
        fn = el.get("functionName")
        if fn not in fam.functions:
            raise fail(el, f"functionName='{fn}' not supported")
        tdf = self.data_fields.get(target) if target else None
        res = Result(function=fn, target=target,
                     target_dtype=tdf.get("dataType", "double") if tdf is not None else "double")
        if fn == "classification":
            res.classes = self._classes(el, target)
        fam.compilers[fn](self, el, scope, res)
        self._targets(el, scope, res)
        self._output(el, scope, res)
        return res

    def _mining_schema(self, el: Element, scope: Scope, top: bool = False) -> str | None:
        ms = el.find("MiningSchema")
        if ms is None:
            raise fail(el, "has no MiningSchema")
        target = None
        if top:  # first, which input fields refuse undeclared values (derived fields use it)
            for mf in ms.findall("MiningField"):
                name = mf.get("name")
                ent = scope.names.get(name)
                if name in self._fields and isinstance(ent, Col) and ent.vocab is not None \
                        and not ent.growable and mf.get("usageType", "active") == "active" \
                        and mf.get("invalidValueTreatment", "returnInvalid") == "returnInvalid":
                    self._fields[name].unknown = "error"
        for mf in ms.findall("MiningField"):
            name = mf.get("name")
            usage = mf.get("usageType", "active")
            if usage in ("target", "predicted"):
                # several targets (a chain): a classifier's is the first categorical one
                if target is None or (el.get("functionName") == "classification" and
                                      not self._categorical(target) and self._categorical(name)):
                    target = name
                continue
            if usage not in ("active", "supplementary"):
                raise fail(mf, f"usageType='{usage}' not supported")
            if usage == "supplementary":
                continue
            ent = scope.names.get(name)
            if ent is None:
                raise fail(mf, f"field '{name}' is not defined")
            col = resolve(self, name, scope, mf)
            new = self._treat(mf, col, top=top)
            if new is not None:
                scope.names[name] = new
        return target

    def _categorical(self, name: str) -> bool:
        df = self.data_fields.get(name)
        return df is not None and (df.get("optype") in ("categorical", "ordinal") or
                                   df.get("dataType") in ("string", "boolean"))

    def _treat(self, mf: Element, col: Col, top: bool = False) -> Col | None:
        """missingValueReplacement / invalidValueTreatment / outliers as an expression.

        Each treatment is a pure function of the raw value, so the program nests them:
        replacement(missing) over outliers(valid values) over invalid-value handling."""
        prog = Program(self.budget)
        refuse: str | None = None
        inv = mf.get("invalidValueTreatment", "returnInvalid")
        out = mf.get("outliers", "asIs")
        if inv not in ("returnInvalid", "asIs", "asMissing", "asValue"):
            raise fail(mf, f"invalidValueTreatment='{inv}' not supported")
        if out not in ("asIs", "asMissingValues", "asExtremeValues"):
            raise fail(mf, f"outliers='{out}' not supported")
        rep_invalid = mf.get("invalidValueReplacement")
        if inv == "asValue" and rep_invalid is None:
            raise fail(mf, "asValue needs invalidValueReplacement")
        # the DataField's declared values and intervals: at the top, and in a nested model
        # that replaces invalid values itself (an outer 'asIs' keeps an invalid value for an
        # inner 'asMissing' to act on, as JPMML does); a nested default 'returnInvalid'
        # leaves the parent's decision (JPMML scores those rows: documents it writes rely
        # on it)
        df = self.data_fields.get(mf.get("name")) \
            if top or inv in ("asMissing", "asValue") else None
        layers: list = []  # functions emitting the value, innermost first

        def raw() -> None:
            prog.load(col.column)
        layers.append(raw)
        if col.vocab is not None and inv in ("asMissing", "asValue"):
            def invalid_codes(inner=layers[-1]) -> None:  # IF(x == -1, r, x)
                inner()
                prog.const(-1.0)
                prog.emit("EQ")
                prog.const(math.nan if inv == "asMissing" else col.code(rep_invalid))
                inner()
                prog.emit("IF")
            layers.append(invalid_codes)
        elif col.vocab is None and df is not None and inv != "asIs" and \
                self._validity(df, col, Program(self.budget)):
            if inv == "returnInvalid":
                self._validity(df, col, prog)  # REFUSE_IF(not valid)
                prog.emit("NOT")
                prog.emit("REFUSE_IF")
                refuse = (f"the value of '{mf.get('name')}' is outside its declared values "
                          "(invalidValueTreatment='returnInvalid')")
            else:
                def invalid_numbers(inner=layers[-1]) -> None:  # IF(valid, x, r)
                    self._validity(df, col, prog)
                    inner()
                    prog.const(math.nan if inv == "asMissing"
                               else parse_number(rep_invalid, col.dtype, mf))
                    prog.emit("IF")
                layers.append(invalid_numbers)
        if col.vocab is None and out != "asIs":
            bounds = [(b, cmp) for b, cmp in ((mf.get("lowValue"), "LT"),
                                               (mf.get("highValue"), "GT")) if b is not None]

            def outliers(inner=layers[-1]) -> None:  # IF(x < lo, r_lo, IF(x > hi, r_hi, x))
                for bound, cmp in bounds:
                    b = parse_number(bound, col.dtype, mf)
                    inner()
                    prog.const(b)
                    prog.emit(cmp)
                    prog.const(math.nan if out == "asMissingValues" else b)
                inner()
                for _ in bounds:
                    prog.emit("IF")
            if bounds:
                layers.append(outliers)
        rep = mf.get("missingValueReplacement")
        # PMML 4.4: a missing value (once invalid values are treated) makes the result invalid
        refuse_missing = mf.get("missingValueTreatment") == "returnInvalid" and rep is None
        if len(layers) == 1 and rep is None and refuse is None and not refuse_missing:
            return None
        if refuse_missing:
            layers[-1]()
            prog.emit("ISMISSING")
            prog.emit("REFUSE_IF")
            name = mf.get("name")
            refuse = (f"the value of '{name}' is missing or outside its declared values "
                      "(invalidValueTreatment and missingValueTreatment 'returnInvalid')"
                      if refuse else
                      f"the value of '{name}' is missing (missingValueTreatment='returnInvalid')")
        layers[-1]()
        if rep is not None:
            prog.const(constant_for(col.dtype, col, rep, mf))
            prog.emit("SURROGATE")
        prog.emit("STORE", 0)
        new = self.expr_column(f"mining_{mf.get('name')}", prog, col.dtype,
                               params={"refuse_message": refuse} if refuse else None)
        # same vocabulary object: constants compared later still extend the input's
        new.vocab, new.growable, new.extra = col.vocab, col.growable, col.extra
        outliers_apply = out != "asIs" and (mf.get("lowValue") or mf.get("highValue"))
        closed = [parse_number(v.get("value"), col.dtype, v) for v in declared(df)] \
            if col.vocab is None else []
        if col.vocab is None and closed and inv != "asIs" and not outliers_apply \
                and not df.findall("Interval"):
            # only the declared values (or the replacements) get through
            for r in (rep_invalid if inv == "asValue" else None, rep):
                if r is not None:
                    closed.append(parse_number(r, col.dtype, mf))
            new.closed = closed
        return new

    def _validity(self, df: Element, col: Col, prog: Program) -> bool:
        """Emit ``x`` is valid (1 / 0; NaN if missing) for a numeric DataField with Interval,
        valid or invalid Value elements; returns False (emitting nothing) when it declares
        none. A value a Value element names has that element's property, whatever the
        intervals say; other values are valid inside an interval or, without valid values
        and intervals, valid unless named invalid."""
        intervals = df.findall("Interval")
        values = declared_values(df)
        invalid = [parse_number(v.get("value"), col.dtype, v) for v in declared(df, "invalid")]
        if not intervals and not values and not invalid:
            return False

        def present() -> None:  # valid unless missing (missing stays unknown)
            prog.load(col.column)
            prog.emit("ISMISSING")
            prog.const(math.nan)
            prog.const(1.0)
            prog.emit("IF")
        if invalid:  # IF(x in invalid, 0, <the rest>)
            prog.load(col.column)
            prog.in_set(invalid)
            prog.const(0.0)
        if not intervals and not values:
            present()
            prog.emit("IF")
            return True
        n = 0
        for iv in intervals:
            closure = iv.get("closure", "closedClosed")
            lo, hi = iv.get("leftMargin"), iv.get("rightMargin")
            parts = 0
            for bound, op in ((lo, "GE" if closure.startswith("closed") else "GT"),
                              (hi, "LE" if closure.endswith("Closed") else "LT")):
                if bound is None:
                    continue
                prog.load(col.column)
                prog.const(parse_number(bound, col.dtype, iv))
                prog.emit(op)
                if parts:
                    prog.emit("AND")
                parts += 1
            if not parts:  # unbounded
                present()
            if n:
                prog.emit("OR")
            n += 1
        if values:
            prog.load(col.column)
            prog.in_set([parse_number(v, col.dtype, df) for v in values])
            if n:
                prog.emit("OR")
        if invalid:
            prog.emit("IF")
        return True

    def _classes(self, el: Element, target: str | None) -> list[str]:
        df = self.data_fields.get(target) if target is not None else None
        vals = declared_values(df)
        if vals:
            return vals
        # no declared values: the categories the model mentions, in document order
        found: list[str] = []
        for e in _iter(el):
            v = None
            if e.tag == "RegressionTable":
                v = e.get("targetCategory")
            elif e.tag == "ScoreDistribution":
                v = e.get("value")
            elif e.tag == "SupportVectorMachine":
                alt = e.get("alternateTargetCategory")
                found += [c for c in (e.get("targetCategory"), alt) if c is not None and
                          c not in found]
            if v is not None and v not in found:
                found.append(v)
        if not found:
            raise fail(el, f"cannot tell the classes of target '{target or '?'}'")
        return found

    # --- RegressionModel ----------------------------------------------------------------------
    def _regression(self, el: Element, scope: Scope, res: Result) -> None:
        tables = el.findall("RegressionTable")
        if not tables:
            raise fail(el, "has no RegressionTable")
        norm = el.get("normalizationMethod", "none")
        if fastpath.ENABLED and not scope.math32 and \
                self._regression_fast(el, tables, norm, scope, res):
            return
        prog = Program(self.budget)
        k = len(tables)
        for j, t in enumerate(tables):
            self._regression_table(t, scope, prog)
            prog.emit("STORE", j)
        if res.function == "regression":
            if k != 1:
                raise fail(el, "a regression model has exactly one RegressionTable")
            prog.emit("LOADOUT", 0)
            if norm in ("softmax", "logit"):
                prog.emit("EXPIT")
            elif norm != "none":
                op = _ELEMENTWISE.get(norm)
                if op is None:
                    raise fail(el, f"normalizationMethod='{norm}' not supported for regression")
                prog.emit(op)
            if scope.math32:
                prog.emit("F32")
            prog.emit("STORE", k)
            outs = self.program_step("regression", prog, k + 1)
            res.value = outs[k]
            return
        cats = [t.get("targetCategory") for t in tables]
        order = self._class_order(el, res, cats)
        # outputs: margins 0..k-1, probabilities k..2k-1 (table order), label 2k, scratch 2k+1
        if norm in ("softmax", "simplemax"):
            if norm == "softmax":  # exp(y - max y): no overflow, same value up to rounding
                prog.emit("LOADOUT", 0)
                for j in range(1, k):
                    prog.emit("LOADOUT", j)
                    prog.emit("MAX")
                prog.emit("STORE", 2 * k + 1)
            for j in range(k):
                prog.emit("LOADOUT", j)
                if norm == "softmax":
                    prog.emit("LOADOUT", 2 * k + 1)
                    prog.emit("SUB")
                    prog.emit("EXP")
                prog.emit("STORE", k + j)
            for j in range(k):
                prog.emit("LOADOUT", k + j)
                if j:
                    prog.emit("ADD")
            prog.emit("STORE", 2 * k + 1)
            for j in range(k):
                prog.emit("LOADOUT", k + j)
                prog.emit("LOADOUT", 2 * k + 1)
                prog.emit("DIV")
                prog.emit("STORE", k + j)
        elif k > 2 and self._ordinal(el, res) and (
                norm == "none" or (norm in _ELEMENTWISE and norm != "exp")):
            # an ordinal target: the tables give cumulative probabilities P(y <= c_j) in the
            # categories' order (the last one 1), each class the difference of two of them
            for j in range(len(res.classes)):
                if j == len(res.classes) - 1:
                    prog.const(1.0)
                else:
                    prog.emit("LOADOUT", order[j])
                    if norm != "none":
                        prog.emit(_ELEMENTWISE[norm])
                prog.emit("STORE", k + order[j])
            for j in reversed(range(1, len(res.classes))):
                prog.emit("LOADOUT", k + order[j])
                prog.emit("LOADOUT", k + order[j - 1])
                prog.emit("SUB")
                prog.emit("STORE", k + order[j])
        elif k == 2 and norm == "exp":
            raise fail(el, "normalizationMethod='exp' does not give probabilities of two "
                           "classes (it is for regression)")
        elif k == 2 and (norm == "none" or norm in _ELEMENTWISE or norm == "logit"):
            # binary: the first table gives p, the second 1 - p
            prog.emit("LOADOUT", 0)
            if scope.math32 and norm == "logit":
                # float context: p = 1 / (1 + exp(-y)) with every operation rounded to float,
                # as XGBoost computes it (and 1 - p below is then a float subtraction: its
                # cancellation is what the document's verification rows record)
                prog.emit("NEG")
                prog.emit("EXP")
                prog.emit("F32")
                prog.const(1.0)
                prog.emit("ADD")
                prog.emit("F32")
                prog.emit("STORE", k)
                prog.const(1.0)
                prog.emit("LOADOUT", k)
                prog.emit("DIV")
                prog.emit("F32")
            elif norm != "none":
                prog.emit(_ELEMENTWISE.get(norm, "EXPIT"))
                if scope.math32:
                    prog.emit("F32")
            elif scope.math32:
                prog.emit("F32")
            prog.emit("STORE", k)
            prog.const(1.0)
            prog.emit("LOADOUT", k)
            prog.emit("SUB")
            prog.emit("STORE", k + 1)
        elif norm == "none":
            # the tables' values are the probabilities, but the last table's is 1 - the others'
            # sum (as for two classes; JPMML's rule)
            for j in range(k - 1):
                prog.emit("LOADOUT", j)
                prog.emit("STORE", k + j)
            prog.const(1.0)
            for j in range(k - 1):
                prog.emit("LOADOUT", j)
                if j:
                    prog.emit("ADD")
            prog.emit("SUB")
            prog.emit("STORE", 2 * k - 1)
        else:
            raise fail(el, f"normalizationMethod='{norm}' with {k} classes not supported")
        if scope.math32:
            for j in range(k):
                prog.emit("LOADOUT", k + j)
                prog.emit("F32")
                prog.emit("STORE", k + j)
        prob_idx = [k + order[c] for c in range(len(res.classes))]
        emit_argmax(prog, prob_idx, 2 * k, 2 * k + 1)
        outs = self.program_step("regression", prog, 2 * k + 2)
        res.probs = [outs[i] for i in prob_idx]
        res.label = outs[2 * k]

    def _regression_fast(self, el: Element, tables: list[Element], norm: str, scope: Scope,
                         res: Result) -> bool:
        """Numeric predictors only (exponent 1), every table over the same fields in the same
        order: a ``linear`` step and a ``link`` (logistic, logistic2, softmax, exp), computing
        what the general program computes, bit for bit.

        A margin is ``intercept + x0 * c0 + x1 * c1 ...`` in the document, while the ``linear``
        op adds its intercept last: with several predictors and an intercept, the intercept
        rides on a leading input of 1.0 instead (see :meth:`_ones`). Returns False (emitting
        nothing) when the model has another shape."""
        k = len(tables)
        if res.function == "regression":
            link = {"none": None, "logit": "logistic", "softmax": "logistic",
                    "exp": "exp"}.get(norm, "?")
            if k != 1 or link == "?":
                return False
            used = tables
        elif norm == "softmax" and k >= 2:
            used = tables
        else:
            if k != 2 or norm != "logit":
                return False
            used = tables[:1]  # binary: the first table gives p, the second 1 - p
        rows: list[list[tuple[str, float]]] = []
        for t in used:
            row = []
            for p in t.children:
                if p.tag == "Extension":
                    continue
                if p.tag != "NumericPredictor" or attr_number(p, "exponent", "1") != 1.0:
                    return False
                col = resolve(self, p.get("name"), scope, p)
                if col.vocab is not None or self.g.is_codes(col.column):
                    return False
                row.append((col.column, attr_number(p, "coefficient", required=True)))
            if len({c for c, _ in row}) != len(row):
                return False
            rows.append(row)
        if any([c for c, _ in row] != [c for c, _ in rows[0]] for row in rows):
            return False  # one sum order for every margin: the same columns, in one order
        for t in tables[len(used):]:
            for p in t.children:  # still refuse what the general path refuses
                if p.tag not in ("NumericPredictor", "CategoricalPredictor", "PredictorTerm",
                                 "Extension"):
                    raise fail(p, "not supported in a RegressionTable")
        cols: list[str] = []
        for row in rows:
            cols.extend(c for c, _ in row if c not in cols)
        coef = {f"coef_{j}": np.array([dict(row).get(c, 0.0) for c in cols], dtype=np.float64)
                for j, row in enumerate(rows)}
        intercept = np.array([attr_number(t, "intercept", "0") for t in used],
                             dtype=np.float64)
        if len(cols) > 1 and intercept.any():
            # the document adds the intercept first: a leading input of 1.0 carrying it keeps
            # the sum's order (0 + 1 * b + x0 * c0 + ...), so the margin is bit-identical
            cols = [self._ones(), *cols]
            coef = {f"coef_{j}": np.concatenate([intercept[j:j + 1], coef[f"coef_{j}"]])
                    for j in range(len(rows))}
            intercept = np.zeros(len(rows))
        if not cols:
            return False
        if len(rows) == 1 and len(cols) == 1 and coef["coef_0"][0] == 1.0 and \
                intercept[0] == 0.0 and (res.function == "classification" or link is not None):
            # 0 + x * 1 is x (up to the sign of a zero, which the link does not see)
            margins = cols
        else:
            margins = self.g.new_columns("regression", len(rows))
            self.g.add_step("linear", name="regression", inputs=cols, outputs=margins,
                            family="linear", tables={"coefficients": coef,
                                                     "intercepts": {"intercept": intercept}})
        if res.function == "regression":
            if link is None:
                res.value = margins[0]
            else:
                out = self.g.new_columns(link, 1)
                self.g.add_step("link", name=f"link_{link}", inputs=margins, outputs=out,
                                family="linear", params={"function": link})
                res.value = out[0]
            return True
        cats = [t.get("targetCategory") for t in tables]
        order = self._class_order(el, res, cats)
        if norm == "softmax":  # exp(y - max y) / sum, as the general program computes it
            out = self.g.new_columns("softmax", k)
            self.g.add_step("link", name="link_softmax", inputs=margins, outputs=out,
                            family="linear", params={"function": "softmax"})
            res.probs = [out[order[c]] for c in range(len(res.classes))]
            self._label_of(res)
            return True
        out = self.g.new_columns("logistic2", 2)
        self.g.add_step("link", name="link_logistic2", inputs=margins, outputs=out,
                        family="linear", params={"function": "logistic2"})
        by_table = [out[1], out[0]]  # p for the first table, 1 - p for the second
        res.probs = [by_table[order[c]] for c in range(len(res.classes))]
        self._label_of(res)
        return True

    def _ones(self) -> str:
        """A workspace column of 1.0 (one step per document)."""
        if self._ones_col is None:  # a linear step with no inputs and intercept 1
            out = self.g.new_columns("one", 1)
            self.g.add_step("linear", name="one", inputs=[], outputs=out, family="linear",
                            tables={"coefficients": {"coef_0": np.zeros(0)},
                                    "intercepts": {"intercept": np.ones(1)}})
            self._ones_col = out[0]
        return self._ones_col

    def _label_of(self, res: Result) -> None:
        """``res.label`` = the index of the largest of ``res.probs`` (first on ties), in a step
        of its own: where only the label output reads it, the output takes the argmax of the
        probabilities itself and the step is dropped."""
        n = len(res.probs)
        prog = Program(self.budget)
        for j, p in enumerate(res.probs):
            prog.load(p)
            prog.emit("STORE", j)
        emit_argmax(prog, list(range(n)), n, n + 1)
        outs = self.program_step("label", prog, n + 2)
        res.label = outs[n]
        self.argmax_of[res.label] = list(res.probs)

    def _ordinal(self, el: Element, res: Result) -> bool:
        """The model's target is ordinal (its MiningField's optype, else its DataField's)."""
        ms = el.find("MiningSchema")
        for mf in ms.findall("MiningField") if ms is not None else []:
            if mf.get("name") == res.target and mf.get("optype") is not None:
                return mf.get("optype") == "ordinal"
        df = self.data_fields.get(res.target) if res.target is not None else None
        return df is not None and df.get("optype") == "ordinal"

    def _class_order(self, el: Element, res: Result, cats: list[str | None]) -> list[int]:
        """For each class (in ``res.classes`` order), its position in ``cats``."""
        order = []
        for c in res.classes:
            hit = [i for i, x in enumerate(cats) if x is not None and same_class(x, c)]
            if not hit:
                raise fail(el, f"no RegressionTable for class '{c}'")
            order.append(hit[0])
        return order

    def _regression_table(self, t: Element, scope: Scope, prog: Program) -> None:
        prog.const(attr_number(t, "intercept", "0"))
        for p in t.children:
            if p.tag == "NumericPredictor":
                col = resolve(self, p.get("name"), scope, p)
                prog.load(col.column)
                e = attr_number(p, "exponent", "1")
                if e != 1.0:
                    prog.const(e)
                    prog.emit("POW")
                prog.const(attr_number(p, "coefficient", required=True))
                prog.emit("MUL")
            elif p.tag == "CategoricalPredictor":
                col = resolve(self, p.get("name"), scope, p)
                prog.load(col.column)
                prog.const(constant_for(col.dtype, col, p.get("value", ""), p))
                prog.emit("EQ")
                # a missing value: the predictor is ignored (the term is 0), as JPMML does
                prog.const(0.0)
                prog.emit("SURROGATE")
                prog.const(attr_number(p, "coefficient", required=True))
                prog.emit("MUL")
            elif p.tag == "PredictorTerm":
                refs = p.findall("FieldRef")
                if not refs or len(refs) != len([c for c in p.children if c.tag != "Extension"]):
                    raise fail(p, "only FieldRef factors are supported")
                for i, r in enumerate(refs):
                    expression(self, r, scope, prog)
                    if i:
                        prog.emit("MUL")
                prog.const(attr_number(p, "coefficient", required=True))
                prog.emit("MUL")
            elif p.tag == "Extension":
                continue
            else:
                raise fail(p, "not supported in a RegressionTable")
            prog.emit("ADD")

    # --- GeneralRegressionModel -----------------------------------------------------------------
    def _general_regression(self, el: Element, scope: Scope, res: Result) -> None:
        from .general import general_regression

        general_regression(self, el, scope, res)

    # --- TreeModel ----------------------------------------------------------------------------
    def _tree_values(self, el: Element, res: Result, math32: bool, *, vote: bool = False,
                     weight: float = 1.0):
        """Node -> values: [score] (regression) or class probabilities [+ label index]."""
        if res.function == "regression":
            def reg(node: Element) -> list[float]:
                s = node.get("score")
                if s is None:
                    return [math.nan]
                v = number(s, node, "score")
                v = f32(v) if math32 else v
                return [v * weight if weight != 1.0 else v]
            return reg
        classes = res.classes

        known: dict[str, float] = {}

        def index_of(s: str | None, node: Element) -> float:
            if s is None:
                return math.nan
            i = known.get(s)
            if i is not None:
                return i
            for i, c in enumerate(classes):
                if same_class(s, c):
                    known[s] = float(i)
                    return float(i)
            raise fail(node, f"score '{s}' is not a class of the target")

        def cls(node: Element) -> list[float]:
            label = index_of(node.get("score"), node)
            if vote:
                one = [0.0] * len(classes)
                if not math.isnan(label):
                    one[int(label)] = weight
                return one
            probs = [0.0] * len(classes)
            sds = node.findall("ScoreDistribution")
            total = node.get("recordCount")
            counts = [attr_number(sd, "recordCount", "0") for sd in sds]
            denom = number(total, node, "recordCount") if total is not None else sum(counts)
            for sd, cnt in zip(sds, counts, strict=True):
                if sd.get("value") is None:
                    raise fail(sd, "has no 'value' attribute")
                i = int(index_of(sd.get("value"), sd))
                p = sd.get("probability")
                probs[i] = number(p, sd, "probability") if p is not None else (
                    cnt / denom if denom else 0.0)
            if not sds:
                probs = [math.nan] * len(classes)
            if weight != 1.0:
                probs = [p * weight for p in probs]
            return [*probs, label]
        return cls

    def _tree_model(self, el: Element, scope: Scope, res: Result) -> None:
        width = 1 if res.function == "regression" else len(res.classes) + 1
        values = self._tree_values(el, res, scope.math32)
        out = el.find("Output")
        entity = out is not None and any(of.get("feature") == "entityId"
                                         for of in out.findall("OutputField"))
        if entity:  # the node id rides along as one more leaf value
            width += 1
            inner = values

            def values(node: Element) -> list[float]:
                nid = node.get("id")
                try:
                    v = xs_double(nid) if nid is not None else math.nan
                except ValueError:
                    raise fail(node, f"entityId: node id '{nid}' is not a number") from None
                return [*inner(node), v]
        tree = parse_tree(el, values, 0, scope)
        outs = emit_forest(self, [tree], n_outputs=width, width=width, aggregation="sum",
                           acc32=scope.math32, name="tree")
        if entity:
            res.entity = outs[-1]
            outs = outs[:-1]
        if res.function == "regression":
            res.value = outs[0]
        else:
            res.probs = outs[:-1]
            res.label = outs[-1]

    # --- MiningModel --------------------------------------------------------------------------
    def _mining_model(self, el: Element, scope: Scope, res: Result) -> None:
        seg = el.find("Segmentation")
        if seg is None:
            raise fail(el, "has no Segmentation")
        method = seg.get("multipleModelMethod")
        if seg.get("missingPredictionTreatment", "returnMissing") != "returnMissing" and \
                method != "modelChain":
            raise fail(seg, "missingPredictionTreatment other than returnMissing")
        segs = []
        for s in children(seg, "Segment", where="Segmentation"):
            preds = [c for c in s.children if c.tag in (
                "True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate")]
            models = [c for c in s.children if c.tag in MODEL_FAMILIES]
            others = [c for c in s.children if c not in preds and c not in models
                      and c.tag != "Extension"]
            if others:
                raise fail(others[0], "model element not supported in a Segment")
            if len(preds) != 1 or len(models) != 1:
                raise fail(s, "needs one predicate and one model")
            segs.append((preds[0], models[0], attr_number(s, "weight", "1")))
        if not segs:
            raise fail(seg, "has no Segment")
        if res.function == "mixed" and method != "modelChain":
            raise fail(el, "functionName='mixed' is supported for a modelChain only")
        if method in ("modelChain", "x-multiModelChain"):
            self._model_chain(seg, segs, scope, res, multi=method == "x-multiModelChain")
        elif method == "selectFirst":
            self._select_first(seg, segs, scope, res)
        elif method in ("sum", "average", "weightedAverage", "majorityVote",
                        "weightedMajorityVote", "weightedSum", "max", "median",
                        "weightedMedian"):
            self._aggregate(seg, method, segs, scope, res)
        else:
            raise fail(seg, f"multipleModelMethod='{method}' not supported")

    def _model_chain(self, seg: Element, segs, scope: Scope, res: Result,
                     multi: bool = False) -> None:
        chain = scope.child()
        picked: list[tuple[str | None, Result]] = []
        for pred, model, _w in segs:
            p = self._predicate_column(pred, chain)
            last = self.model(model, chain,
                              res.target if model is segs[-1][1] and not multi else None)
            for name, col in last.fields.items():
                if p is not None:  # a skipped segment's outputs are missing
                    col = self._masked(p, col)
                chain.names[name] = col
                res.fields[name] = col
            # the chain's results include every segment's final output fields; a later
            # segment's field shadows an earlier one of the same name, as in the chain's scope
            # (sklearn2pmml's StackingClassifier names a member's probabilities
            # 'probability(0)' .. like the final estimator's, which are the model's result)
            for of, _ in last.final:
                name = of.get("name")
                entry = (of, res.fields[name])
                at = [i for i, (o, _c) in enumerate(res.final) if o.get("name") == name]
                if at:
                    res.final[at[0]] = entry
                else:
                    res.final.append(entry)
            picked.append((p, last))
            if multi:
                res.multi.append(last)
        if multi:
            return
        if res.function == "mixed":
            # PMML 4.4 "mixed" chain (e.g. an outlier detector, then a classifier): the
            # model's function is that of the segment predicting its target, the last one
            final = picked[-1][1]
            res.function = final.function
            res.classes = final.classes
            res.target_dtype = final.target_dtype
        # the result is the last segment whose predicate holds among those predicting the
        # target (a segment of another target, e.g. an outlier detector, never is: where no
        # such segment holds, the result is missing)
        if picked[-1][0] is None:
            self._adopt(seg, picked[-1][1], res)
        else:
            self._select(seg, [x for x in reversed(picked) if x[1].function == res.function
                               and (x is picked[-1] or x[1].target == res.target)], res)

    def _select_first(self, seg: Element, segs, scope: Scope, res: Result) -> None:
        picked = [(self._predicate_column(p, scope), self.model(m, scope, res.target))
                  for p, m, _w in segs]
        self._select(seg, picked, res)

    def _predicate_column(self, pred: Element, scope: Scope) -> str | None:
        """None for True; else a 0/1 column (unknown counts as false)."""
        if pred.tag == "True":
            return None
        prog = Program(self.budget)
        predicate(self, pred, scope, prog)
        prog.const(0.0)
        prog.emit("SURROGATE")
        prog.emit("STORE", 0)
        return self.expr_column("segment_predicate", prog).column

    def _masked(self, p: str, col: Col) -> Col:
        prog = Program(self.budget)
        prog.load(p)
        prog.load(col.column)
        prog.const(math.nan)
        prog.emit("IF")
        prog.emit("STORE", 0)
        out = self.expr_column("masked", prog, col.dtype)
        out.vocab, out.extra = col.vocab, col.extra
        return out

    def _select(self, seg: Element, picked: list[tuple[str | None, Result]],
                res: Result) -> None:
        """``res`` = the first of ``picked`` whose predicate column holds (None: always)."""
        for _p, r in picked:
            if r.function != res.function:
                raise fail(seg, f"a segment is a {r.function} model")
        if picked[0][0] is None:
            self._adopt(seg, picked[0][1], res)
            return
        subs = []
        for _p, r in picked:
            rr = Result(function=res.function, target=res.target, classes=res.classes,
                        value=r.value)
            if res.function == "classification":
                self._remap_classes(seg, r, rr)
            subs.append(rr)
        parts = (["value"] if res.function == "regression"
                 else [f"p{j}" for j in range(len(res.classes))] + ["label"])

        def col_of(r: Result, part: str) -> str:
            if part == "value":
                return r.value
            if part == "label":
                return r.label
            return r.probs[int(part[1:])]

        prog = Program(self.budget)
        for j, part in enumerate(parts):
            n_if = 0
            for (p, _), r in zip(picked, subs, strict=True):
                if p is None:
                    prog.load(col_of(r, part))
                    break
                prog.load(p)
                prog.load(col_of(r, part))
                n_if += 1
            else:
                prog.const(math.nan)
            for _ in range(n_if):
                prog.emit("IF")
            prog.emit("STORE", j)
        outs = self.program_step("select", prog, len(parts))
        if res.function == "regression":
            res.value = outs[0]
        else:
            res.probs = outs[:-1]
            res.label = outs[-1]

    def _adopt(self, seg: Element, sub: Result, res: Result) -> None:
        if sub.function != res.function:
            raise fail(seg, f"the last segment is a {sub.function} model")
        res.value = sub.value
        if res.function == "classification":
            self._remap_classes(seg, sub, res)

    def _remap_classes(self, seg: Element, sub: Result, res: Result) -> None:
        """Probabilities / label of ``sub`` in the class order of ``res``."""
        idx = []
        for c in res.classes:
            hit = [i for i, x in enumerate(sub.classes) if same_class(x, c)]
            if not hit:
                raise fail(seg, f"class '{c}' not predicted by the segment")
            idx.append(hit[0])
        if sub.probs is None:  # a label without probabilities (one-against-all SVM)
            if idx != list(range(len(sub.classes))):
                raise fail(seg, "a segment without probabilities must predict the classes in "
                                "the model's order")
            res.label = sub.label
            return
        res.probs = [sub.probs[i] for i in idx]
        if idx == list(range(len(sub.classes))) and len(idx) == len(sub.classes):
            res.label = sub.label
        else:
            self._label_of(res)  # the reordered probabilities need their own argmax

    def _aggregate(self, seg: Element, method: str, segs, scope: Scope, res: Result) -> None:
        n = len(segs)
        weights = [w for _, _, w in segs]
        weighted = method in ("weightedAverage", "weightedMajorityVote", "weightedSum")
        all_trees = all(p.tag == "True" and m.tag == "TreeModel" and _plain_tree(m)
                        and m.get("functionName") == res.function for p, m, _ in segs)
        if res.function == "regression" and method in ("max", "median", "weightedMedian"):
            subs = [self.model(m, scope, res.target) for p, m, _ in segs if _true(p)]
            prog = Program(self.budget)
            for i, r in enumerate(subs):
                prog.load(r.value)
                if method == "max" and i:
                    prog.emit("MAX")
            if method == "weightedMedian":
                for w in weights:
                    prog.const(w)
                prog.emit("WMEDIAN", len(subs))
            elif method == "median":
                prog.emit("MEDIAN", len(subs))
            prog.emit("STORE", 0)
            res.value = self.expr_column("combine", prog).column
            return
        if res.function == "regression":
            if method not in ("sum", "average", "weightedAverage", "weightedSum"):
                raise fail(seg, f"'{method}' for regression")
            if all_trees:
                math32 = scope.math32
                trees = []
                for _, m, w in segs:
                    s = scope.child()
                    s.math32 = math32 or m.get("x-mathContext") == "float"
                    self._tree_scope(m, s)
                    vals = self._tree_values(m, res, s.math32, weight=w if weighted else 1.0)
                    trees.append(parse_tree(m, vals, 0, s, weight=w if weighted else 1.0))
                agg = "average" if method == "average" else "sum"
                outs = emit_forest(self, trees, n_outputs=1, width=1, aggregation=agg,
                                   acc32=math32, name="forest")
                res.value = outs[0]
                if method == "weightedAverage":
                    res.value = self._scale(res.value, 1.0 / sum(weights), math32)
                return
            subs = [self.model(m, scope, res.target) for p, m, _ in segs if _true(p)]
            prog = Program(self.budget)
            for i, (r, w) in enumerate(zip(subs, weights, strict=True)):
                prog.load(r.value)
                if weighted:
                    prog.const(w)
                    prog.emit("MUL")
                if i:
                    prog.emit("ADD")
            if method in ("average", "weightedAverage"):
                prog.const(float(n) if method == "average" else sum(weights))
                prog.emit("DIV")
            prog.emit("STORE", 0)
            res.value = self.expr_column("combine", prog).column
            return
        # classification
        vote = method in ("majorityVote", "weightedMajorityVote")
        if method not in ("average", "weightedAverage", "majorityVote", "weightedMajorityVote"):
            raise fail(seg, f"'{method}' for classification")
        c = len(res.classes)
        total = sum(weights) if weighted else float(n)
        if all_trees and method == "average" and fastpath.ENABLED:
            # the kernel's "average" divides the sum by the number of trees, as PMML does
            trees = []
            for _, m, _w in segs:
                s = scope.child()
                self._tree_scope(m, s)
                vals = self._tree_values(m, res, scope.math32)
                trees.append(parse_tree(m, lambda node, vals=vals: vals(node)[:c], 0, s))
            res.probs = emit_forest(self, trees, n_outputs=c, width=c, aggregation="average",
                                    acc32=False, name="forest")
            self._label_of(res)
            return
        if all_trees:
            trees = []
            for _, m, w in segs:
                s = scope.child()
                self._tree_scope(m, s)
                vals = self._tree_values(m, res, scope.math32, vote=vote,
                                         weight=w if weighted else 1.0)
                trees.append(parse_tree(m, vals, 0, s))
            width = c if vote else c + 1
            outs = emit_forest(self, trees, n_outputs=width, width=width, aggregation="sum",
                               acc32=False, name="forest")
            probs_in = outs[:c]
        else:
            subs = [self.model(m, scope, res.target) for p, m, _ in segs if _true(p)]
            probs_in = None
        prog = Program(self.budget)
        for j in range(c):
            if probs_in is not None:
                prog.load(probs_in[j])
            else:
                for i, (r, w) in enumerate(zip(subs, weights, strict=True)):
                    rr = Result(function="classification", target=res.target,
                                classes=res.classes)
                    self._remap_classes(seg, r, rr)
                    if vote:
                        prog.load(rr.label)
                        prog.const(float(j))
                        prog.emit("EQ")
                    else:
                        prog.load(rr.probs[j])
                    if weighted:
                        prog.const(w)
                        prog.emit("MUL")
                    if i:
                        prog.emit("ADD")
            prog.const(total)
            prog.emit("DIV")
            prog.emit("STORE", j)
        emit_argmax(prog, list(range(c)), c, c + 1)
        outs = self.program_step("combine", prog, c + 2)
        res.probs = outs[:c]
        res.label = outs[c]

    def _tree_scope(self, m: Element, s: Scope) -> None:
        """A forest member's own MiningSchema treatments and LocalTransformations."""
        for c in m.children:
            if c.tag not in INFORMATIVE and c.tag != "Node":
                raise fail(c, "not supported in TreeModel")
        self._mining_schema(m, s)
        lt = m.find("LocalTransformations")
        if lt is not None:
            self._transformations(lt, s, allow_functions=False)

    def _scale(self, column: str, factor: float, math32: bool) -> str:
        prog = Program(self.budget)
        prog.load(column)
        prog.const(factor)
        prog.emit("MUL")
        if math32:
            prog.emit("F32")
        prog.emit("STORE", 0)
        return self.expr_column("scale", prog).column

    # --- Targets / Output ---------------------------------------------------------------------
    def _targets(self, el: Element, scope: Scope, res: Result) -> None:
        ts = el.find("Targets")
        if ts is None:
            return
        for t in ts.findall("Target"):
            if res.function != "regression":
                if any(t.get(a) for a in ("rescaleFactor", "rescaleConstant", "castInteger")):
                    raise fail(t, "rescaling a classification target")
                continue
            if t.findall("TargetValue"):
                raise fail(t, "TargetValue elements on a regression target")
            factor, const = t.get("rescaleFactor"), t.get("rescaleConstant")
            if fastpath.ENABLED and not scope.math32 and \
                    all(t.get(a) is None for a in ("min", "max", "castInteger")):
                # value * factor + constant: an affine step (unused terms leave it identical)
                if factor is None and const is None:
                    continue
                out = self.g.new_columns("target", 1)
                add_affine(self.g, "target", res.value,
                           (0.0, 1.0, 1.0 if factor is None else number(factor, t, "rescaleFactor"),
                            -0.0 if const is None else number(const, t, "rescaleConstant")), out)
                res.value = out[0]
                continue
            prog = Program(self.budget)
            prog.load(res.value)
            factor = t.get("rescaleFactor")
            const = t.get("rescaleConstant")
            mn, mx = t.get("min"), t.get("max")
            if mn is not None:
                prog.const(number(mn, t, "min", finite=False))
                prog.emit("MAX")
            if mx is not None:
                prog.const(number(mx, t, "max", finite=False))
                prog.emit("MIN")
            if factor is not None:
                f = number(factor, t, "rescaleFactor")
                prog.const(f32(f) if scope.math32 else f)
                prog.emit("MUL")
                if scope.math32:
                    prog.emit("F32")
            if const is not None:
                c = number(const, t, "rescaleConstant")
                prog.const(f32(c) if scope.math32 else c)
                prog.emit("ADD")
                if scope.math32:
                    prog.emit("F32")
            cast = t.get("castInteger")
            if cast is not None:
                prog.emit({"round": "ROUND_HALF_UP", "ceiling": "CEIL",
                           "floor": "FLOOR"}.get(cast, "ROUND_HALF_UP"))
            prog.emit("STORE", 0)
            res.value = self.expr_column("target", prog).column

    def _output(self, el: Element, scope: Scope, res: Result) -> None:
        out = el.find("Output")
        if out is None:
            return
        oscope = scope.child()
        for of in out.findall("OutputField"):
            name = of.get("name")
            feature = of.get("feature", "predictedValue")
            tf = of.get("targetField")
            if of.get("segmentId") is not None:
                col = self._segment_output(el, scope, of)
            elif tf is not None and res.multi:
                sub = [r for r in res.multi if r.target == tf]
                if not sub:
                    raise fail(of, f"targetField '{tf}' is not a target of the model")
                if feature == "predictedValue":
                    col = self._predicted(of, sub[0])
                elif feature in sub[0].features:
                    col = sub[0].features[feature](of)
                else:
                    raise fail(of, f"feature '{feature}' with a targetField")
            elif feature == "predictedValue":
                col = self._predicted(of, res)
            elif feature == "probability":
                if res.function != "classification":
                    raise fail(of, "probability of a regression model")
                if res.probs is None:
                    raise fail(of, "this model has no class probabilities")
                v = of.get("value")
                if v is None:
                    prog = Program(self.budget)
                    prog.select(res.label, res.probs)
                    prog.emit("STORE", 0)
                    col = self.expr_column("probability", prog)
                else:
                    hit = [i for i, c in enumerate(res.classes) if same_class(c, v)]
                    if not hit:
                        raise fail(of, f"'{v}' is not a class of the target")
                    col = Col(res.probs[hit[0]], "double")
            elif feature == "entityId" and feature not in res.features:
                if res.entity is None:
                    raise fail(of, "entityId is supported for TreeModel only")
                col = Col(res.entity, "integer")
            elif feature in ("transformedValue", "decision"):
                # decision: an expression like transformedValue; its <Decisions> only describe
                # the values it takes
                exprs = [c for c in of.children if c.tag not in ("Extension", "Value") and not (
                    feature == "decision" and c.tag == "Decisions")]
                if len(exprs) != 1:
                    raise fail(of, f"{feature} needs one expression")
                prog = Program(self.budget)
                typ = expression(self, exprs[0], oscope, prog)
                if of.get("dataType") == "float" and typ.col is None:
                    prog.emit("F32")
                prog.emit("STORE", 0)
                col = self.expr_column(f"output_{name}", prog, typ.dtype)
                col.vocab = typ.vocab
                if typ.col is not None:
                    col.extra = typ.col.extra
            elif feature in res.features:
                col = res.features[feature](of)
            else:
                raise fail(of, f"OutputField feature '{feature}' not supported")
            oscope.names[name] = col
            res.fields[name] = col
            if of.get("isFinalResult", "true") != "false":
                res.final.append((of, col))

    def _segment_output(self, el: Element, scope: Scope, of: Element) -> Col:
        """An OutputField of one segment (``segmentId``): the entityId of a tree segment."""
        sid, feature = of.get("segmentId"), of.get("feature", "predictedValue")
        seg = el.find("Segmentation") if el.tag == "MiningModel" else None
        hits = [s for s in seg.findall("Segment") if s.get("id") == sid] if seg is not None else []
        if not hits:
            raise fail(of, f"segmentId '{sid}' is not a segment of this model")
        models = [c for c in hits[0].children if c.tag in MODEL_FAMILIES]
        if feature != "entityId" or len(models) != 1 or models[0].tag != "TreeModel":
            raise fail(of, f"segmentId: feature '{feature}' of a {models[0].tag if models else '?'}"
                           " segment not supported (entityId of a TreeModel segment is)")
        if hits[0].find("True") is None:
            raise fail(of, "segmentId: the segment's predicate must be True")
        m = models[0]
        s = scope.child()
        self._tree_scope(m, s)

        def node_id(node: Element) -> list[float]:
            nid = node.get("id")
            try:
                return [xs_double(nid) if nid is not None else math.nan]
            except ValueError:
                raise fail(node, f"entityId: node id '{nid}' is not a number") from None
        tree = parse_tree(m, node_id, 0, s)
        out = emit_forest(self, [tree], n_outputs=1, width=1, aggregation="sum", acc32=False,
                          name=f"segment_{sid}_entity")
        return Col(out[0], "integer")

    def _predicted(self, of: Element, res: Result) -> Col:
        if res.function == "regression":
            return Col(res.value, "double")
        if res.target_dtype in NUMERIC_TYPES and all(is_number(c) for c in res.classes):
            # numeric classes: the predicted value is the class's number (others compare it
            # with numbers), IF(label == 0, c0, IF(label == 1, c1, ...))
            prog = Program(self.budget)
            prog.select(res.label, [float(c) for c in res.classes])
            prog.emit("STORE", 0)
            return self.expr_column("predicted", prog, res.target_dtype)
        return Col(res.label, "string", [str(c) for c in res.classes])


# --- the built-in families -------------------------------------------------------------------
register_model("RegressionModel", parts=("RegressionTable",))(Reader._regression)
register_model("TreeModel", parts=("Node",))(Reader._tree_model)
register_model("MiningModel", parts=("Segmentation",),
               functions=("regression", "classification", "mixed"))(Reader._mining_model)
register_model("GeneralRegressionModel", parts=(
    "ParameterList", "FactorList", "CovariateList", "PPMatrix", "PCovMatrix", "ParamMatrix",
    "EventValues", "BaseCumHazardTables"))(Reader._general_regression)


# --- helpers ---------------------------------------------------------------------------------
_ELEMENTWISE = {"exp": "EXP", "probit": "PROBIT", "cloglog": "CLOGLOG", "loglog": "LOGLOG",
                "cauchit": "CAUCHIT", "logit": "EXPIT"}


def emit_argmax(prog: Program, cols: list[int], label: int, scratch: int) -> None:
    """Outputs ``label`` = index of the largest of outputs ``cols`` (first on ties; NaN if the
    first is NaN), using output ``scratch`` for the running maximum."""
    prog.const(0.0)
    prog.emit("STORE", label)
    prog.emit("LOADOUT", cols[0])
    prog.emit("STORE", scratch)
    for j, c in enumerate(cols[1:], start=1):
        # cond = p_j > best, a NaN comparison counting as false
        prog.emit("LOADOUT", c)
        prog.emit("LOADOUT", scratch)
        prog.emit("GT")
        prog.const(0.0)
        prog.emit("SURROGATE")
        prog.emit("DUP")
        prog.const(float(j))
        prog.emit("LOADOUT", label)
        prog.emit("IF")
        prog.emit("STORE", label)
        prog.emit("LOADOUT", c)
        prog.emit("LOADOUT", scratch)
        prog.emit("IF")
        prog.emit("STORE", scratch)
    # no maximum (the first value missing, as when every value is): the label is missing
    prog.emit("LOADOUT", scratch)
    prog.emit("ISMISSING")
    prog.const(math.nan)
    prog.emit("LOADOUT", label)
    prog.emit("IF")
    prog.emit("STORE", label)



def _iter(el: Element):
    stack = [el]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(reversed(e.children))


def _true(p: Element) -> bool:
    if p.tag != "True":
        raise fail(p, "segment predicates other than True are not supported here")
    return True


def _plain_tree(m: Element) -> bool:
    """A TreeModel without its own targets or outputs (it may have transformations)."""
    return all(m.find(t) is None for t in ("Targets", "Output"))


def _type_of(dtype: str) -> str:
    if dtype in NUMERIC_TYPES:
        return "integer" if dtype == "integer" else "double"
    return "boolean" if dtype == "boolean" else "string"


# --- bundle assembly -------------------------------------------------------------------------
def build(root: Element, *, name: str) -> Bundle:
    """Compile a parsed PMML document into a :class:`~scorer.ir.Bundle`."""
    rd = Reader(root)
    m, res = rd.top_model()
    g = rd.g
    outputs: list[Output] = []
    seen: set[str] = set()

    def label_output(oname: str, code_col: str, classes: list[str], dtype: str) -> Output:
        probs = rd.argmax_of.get(code_col)
        if probs is not None and len(probs) == len(classes):
            # NaN probabilities are all NaN together: the label is missing
            return Output(name=oname, kind="label", type=_type_of(dtype), rule="argmax",
                          columns=list(probs),
                          classes=[typed_class(c, dtype) for c in classes])
        prog = Program(rd.budget)
        for j in range(len(classes)):  # one-hot of the code; all NaN (a missing label) if NaN
            prog.load(code_col)
            prog.const(float(j))
            prog.emit("EQ")
            prog.emit("STORE", j)
        ind = rd.program_step(f"label_{oname}", prog, len(classes))
        cls = [typed_class(c, dtype) for c in classes]
        return Output(name=oname, kind="label", type=_type_of(dtype), rule="argmax",
                      columns=ind, classes=cls)

    for sub in res.multi:
        if sub.target is None or sub.target in seen:
            raise fail(m, "x-multiModelChain segments need distinct targets")
        if sub.function == "classification":
            outputs.append(label_output(sub.target, sub.label, sub.classes, sub.target_dtype))
        else:
            outputs.append(Output(name=sub.target, kind="value", column=sub.value))
        seen.add(sub.target)
    if res.target is not None and not res.multi:
        if res.function == "classification":
            outputs.append(label_output(res.target, res.label, res.classes, res.target_dtype))
        else:
            outputs.append(Output(name=res.target, kind="value", column=res.value))
        seen.add(res.target)
    if res.function == "classification" and not res.multi and m.find("Output") is None and \
            not res.final and res.probs is not None:
        # no Output at all: the class probabilities, named as JPMML names them
        for c, p in zip(res.classes, res.probs, strict=True):
            outputs.append(Output(name=f"probability({c})", kind="probability", column=p,
                                  class_label=typed_class(c, res.target_dtype)))
    if res.function == "clustering" and res.label is not None and not res.final:
        # no Output: the winning cluster's id (JPMML's predictedValue)
        outputs.append(label_output("cluster", res.label, res.classes, "string"))
    for of, col in res.final:
        oname = of.get("name")
        if oname in seen:
            continue
        seen.add(oname)
        feature = of.get("feature", "predictedValue")
        if col.vocab is not None:
            dtype = of.get("dataType") or (res.target_dtype if feature == "predictedValue"
                                           else "string")
            outputs.append(label_output(oname, col.column, col.vocab, dtype))
        elif feature == "probability":
            outputs.append(Output(name=oname, kind="probability", column=col.column,
                                  class_label=of.get("value")))
        elif feature == "predictedValue":
            outputs.append(Output(name=oname, kind="value", column=col.column))
        elif feature == "decision" and (of.get("dataType") or col.dtype) == "boolean":
            # a boolean decision is a label (false / true), not a number
            outputs.append(label_output(oname, col.column, ["false", "true"], "boolean"))
        else:
            outputs.append(Output(name=oname, kind="transformed", column=col.column))
    if not outputs:  # (the document's fault, not the graph builder's)
        raise fail(m, "defines no outputs: no target field in its MiningSchema and no "
                      "OutputField")
    g.outputs = outputs
    g.task = res.function if res.function in ("regression", "classification") else (
        "classification" if res.function == "clustering" and res.label is not None
        else "regression")
    # inputs: the fields the top-level model declares active (its MiningSchema)
    ms = m.find("MiningSchema")
    active = [mf.get("name") for mf in ms.findall("MiningField")
              if mf.get("usageType", "active") == "active"]
    g.order = [n for n in g.order if n in active]
    _drop_dead_steps(g)
    fuse(g)
    app = root.find("Header").find("Application") if root.find("Header") is not None else None
    producer = {"library": "tablescore", "version": __version__, "exporter": "scorer.pmml",
                "estimator": f"pmml.{m.tag}",
                "libraries": {"pmml": root.get("version", "?")}}
    if app is not None:
        producer["libraries"][app.get("name", "?")] = app.get("version", "?")
    bundle = g.build(name=name, version="1", producer=producer)
    bundle.verification = _verification(rd, m, bundle)
    header = root.find("Header")
    stamp = header.find("Timestamp") if header is not None else None
    bundle.created = header_timestamp(stamp.text) if stamp is not None else None
    return bundle


def header_timestamp(text: str) -> str | None:
    """A PMML ``Header/Timestamp`` as the bundle's creation time: ISO 8601 in UTC to the
    second (a time without an offset is taken as UTC), or None when the text is not an ISO
    8601 date-time (the schema allows any content there; the caller then falls back to the
    file's modification time)."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _cell_number(v: str | None, el: Element) -> float:
    """A number in a verification table (booleans as 1 / 0, empty as missing)."""
    if v is None or v.strip() in ("", "NaN", "NA", "N/A"):
        return math.nan
    low = v.strip().lower()
    if low in ("true", "false"):
        return 1.0 if low == "true" else 0.0
    try:
        return xs_double(v)  # an expected output may be infinite
    except ValueError:
        raise fail(el, f"verification value '{v}' is not a number") from None


def _drop_dead_steps(g: Graph) -> None:
    """Remove steps no output depends on (e.g. preparing a field the model never reads)."""
    needed = {c for o in g.outputs for c in ([o.column] if o.column else []) + (o.columns or [])}
    kept = []
    for st in reversed(g.steps):
        if any(c in needed for c in st.outputs):
            kept.append(st)
            needed.update(st.inputs)
    g.steps = list(reversed(kept))


def _verification(rd: Reader, m: Element, bundle: Bundle) -> Verification | None:
    """ModelVerification -> verification rows (tolerance from precision / zeroThreshold)."""
    mv = m.find("ModelVerification")
    if mv is None:
        return None
    vfs = mv.find("VerificationFields")
    table = mv.find("InlineTable")
    if vfs is None or table is None:
        raise fail(mv, "needs VerificationFields and an InlineTable")
    cols: dict[str, str] = {}
    prec, zero = 1e-6, 1e-16
    for vf in vfs.findall("VerificationField"):
        cols[vf.get("field")] = (vf.get("column") or vf.get("field")).rsplit(":", 1)[-1]
        prec = max(prec, attr_number(vf, "precision", "1E-6"))
        zero = max(zero, attr_number(vf, "zeroThreshold", "1E-16"))
    rows = [{c.tag: c.text for c in r.children} for r in table.findall("row")]
    inputs: dict[str, np.ndarray] = {}
    for f in bundle.inputs:
        cname = cols.get(f.name, f.name)
        vals = [r.get(cname) for r in rows]
        if f.type == "string":
            inputs[f.name] = np.array(vals, dtype=object)
        else:
            inputs[f.name] = np.array([_cell_number(v, mv) for v in vals], dtype=np.float64)
    expected: dict[str, np.ndarray] = {}
    for o in bundle.outputs:
        cname = cols.get(o.name)
        if cname is None:
            continue
        vals = [r.get(cname) for r in rows]
        if o.kind == "label":
            expected[o.name] = np.array([str(typed_class(v, "double" if o.type == "double"
                                                         else o.type)) if v is not None
                                         else "None" for v in vals], dtype=object)
        else:
            expected[o.name] = np.array([_cell_number(v, mv) for v in vals],
                                        dtype=np.float64)
    if not expected:
        return None
    return Verification(inputs=inputs, expected=expected, abs_tol=zero, rel_tol=prec)
