"""SupportVectorMachineModel -> one ``svm`` step (+ ``svm_vote`` for one-against-one).

Each ``SupportVectorMachine`` is one machine: ``f(x) = sum_i coef_i * K(x, sv_i) + b``
(``Coefficients/@absoluteValue`` is ``b``), summed in document order; the kernel value of a
(row, support vector) pair is computed once and shared by the machines.

Supported: kernels ``LinearKernelType``, ``PolynomialKernelType`` (``pow``), ``RadialBasis``
and ``Sigmoid``; ``VectorFields`` of ``FieldRef`` and ``CategoricalPredictor`` (coefficient
1: the indicator ``field == value``); ``VectorInstance`` as ``Array`` or ``REAL-SparseArray`` /
``INT-SparseArray``; ``svmRepresentation`` ``SupportVectors`` and, with the linear kernel,
``Coefficients`` (one coefficient per vector field); regression (one machine);
classification ``OneAgainstOne`` (votes: ``f < threshold``, or ``f > threshold`` under
``maxWins``, votes ``targetCategory``, otherwise ``alternateTargetCategory``; the most votes
win, ties going to the category that received a vote first, as JPMML does; probabilities are
vote fractions) and ``OneAgainstAll`` (the smallest value wins, the largest under
``maxWins``; no probabilities). A missing ``classificationMethod`` is inferred as JPMML does:
one-against-one where the machines name an ``alternateTargetCategory``.

Refused: ``alternateBinaryTargetCategory`` (a rounded 0/1 prediction), ``x-mathContext=
'float'``, a machine whose support vectors and coefficients differ in number.
A missing value in an input field read as a vector field as it is is refused (JPMML raises an
error). A NaN from a derived field, or inside a MiningModel segment (a segment predicate may
keep such rows away), propagates: NaN decisions and probabilities, the label then reading as
the first class (the output schema has no missing label).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .expressions import resolve
from .fields import Col, Scope, attr_number, constant_for, fail, integer, numbers, same_class
from .program import Program
from .reader import emit_argmax, register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

_KERNELS = {"LinearKernelType": "linear", "PolynomialKernelType": "poly",
            "RadialBasisKernelType": "rbf", "SigmoidKernelType": "sigmoid"}


def _number(el: Element, attr: str, default: str) -> float:
    return attr_number(el, attr, default)


def _kernel(el: Element) -> dict[str, object]:
    ks = [c for c in el.children if c.tag in _KERNELS]
    if len(ks) != 1:
        raise fail(el, "needs exactly one kernel element (LinearKernelType, "
                       "PolynomialKernelType, RadialBasisKernelType, SigmoidKernelType)")
    k = ks[0]
    kind = _KERNELS[k.tag]
    # PMML defaults: gamma = 1, coef0 = 1, degree = 1
    return {"kernel": kind, "gamma": _number(k, "gamma", "1"), "coef0": _number(k, "coef0", "1"),
            "degree": _number(k, "degree", "1"), "power": "pow"}


def _vector_fields(rd: Reader, vf: Element, scope: Scope) -> list[str]:
    """Workspace columns of the vector fields, in order (indicators for predictors)."""
    cols: list[str | None] = []
    preds: list[tuple[int, Element, Col]] = []
    for c in vf.children:
        if c.tag == "FieldRef":
            col = resolve(rd, c.get("field"), scope, c)
            if col.vocab is not None:
                raise fail(c, f"field '{c.get('field')}' is categorical: a vector field must be "
                              "numeric (use a CategoricalPredictor)")
            cols.append(col.column)
        elif c.tag == "CategoricalPredictor":
            if _number(c, "coefficient", "1") != 1.0:
                raise fail(c, "a CategoricalPredictor in VectorFields needs coefficient 1")
            preds.append((len(cols), c, resolve(rd, c.get("name"), scope, c)))
            cols.append(None)
        elif c.tag != "Extension":
            raise fail(c, "not supported in VectorFields")
    if preds:
        prog = Program(rd.budget)
        for j, (_, p, col) in enumerate(preds):
            prog.load(col.column)
            prog.const(constant_for(col.dtype, col, p.get("value", ""), p))
            prog.emit("EQ")
            prog.emit("STORE", j)
        outs = rd.program_step("svm_indicator", prog, len(preds))
        for (pos, _, _), out in zip(preds, outs, strict=True):
            cols[pos] = out
    n = vf.get("numberOfFields")
    if n is not None and integer(n, vf, "numberOfFields") != len(cols):
        raise fail(vf, f"numberOfFields={n} but it lists {len(cols)} fields")
    return [c for c in cols if c is not None]


def _instance(vi: Element, nf: int) -> np.ndarray:
    arrays = [c for c in vi.children if c.tag != "Extension"]
    if len(arrays) != 1:
        raise fail(vi, "needs one Array or REAL-SparseArray")
    a = arrays[0]
    if a.tag == "Array":
        if a.get("type", "real") not in ("real", "int"):
            raise fail(a, f"Array type='{a.get('type')}' is not numeric")
        v = np.array(numbers(a.text.split(), a), dtype=np.float64)
        n = a.get("n")
        if n is not None and integer(n, a, "n") != v.size:
            raise fail(a, f"declares n={n} entries but holds {v.size}")
    elif a.tag in ("REAL-SparseArray", "INT-SparseArray"):
        n = integer(a.get("n", str(nf)), a, "n")
        if n != nf:  # (checked before allocating: n is the document's word)
            raise fail(a, f"declares n={n} entries for {nf} vector fields")
        v = np.full(n, _number(a, "defaultValue", "0"))
        idx_el = a.find("Indices")
        ent_el = a.find("REAL-Entries" if a.tag == "REAL-SparseArray" else "INT-Entries")
        idx = [integer(t, idx_el) for t in idx_el.text.split()] if idx_el is not None else []
        ent = numbers(ent_el.text.split(), ent_el) if ent_el is not None else []
        if len(idx) != len(ent):
            raise fail(a, f"has {len(idx)} indices but {len(ent)} entries")
        for i, e in zip(idx, ent, strict=True):
            if not 1 <= i <= n:
                raise fail(a, f"index {i} outside 1..{n}")
            v[i - 1] = e
    else:
        raise fail(a, "not supported in VectorInstance")
    if v.size != nf:
        raise fail(vi, f"has {v.size} values for {nf} vector fields")
    return v


@register_model("SupportVectorMachineModel", parts=(
    *_KERNELS, "VectorDictionary", "SupportVectorMachine"))
def support_vector_machine(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    if scope.math32:
        raise fail(el, "x-mathContext='float' is not supported for SupportVectorMachineModel")
    if el.get("alternateBinaryTargetCategory") is not None:
        raise fail(el, "alternateBinaryTargetCategory (a rounded 0/1 prediction) is not "
                       "supported")
    params = _kernel(el)
    rep = el.get("svmRepresentation", "SupportVectors")
    if rep not in ("SupportVectors", "Coefficients"):
        raise fail(el, f"svmRepresentation='{rep}' not supported")
    if rep == "Coefficients" and params["kernel"] != "linear":
        raise fail(el, "svmRepresentation='Coefficients' needs the linear kernel")
    vd = el.find("VectorDictionary")
    vf = vd.find("VectorFields") if vd is not None else None
    if vf is None:
        raise fail(el, "has no VectorDictionary/VectorFields")
    cols = _vector_fields(rd, vf, scope)
    nf = len(cols)
    if any(c is el for c in rd.root.children):
        # JPMML refuses a missing vector field value: so does the schema of an input field
        # read as it is (no missingValueReplacement); inside a segment a predicate may keep
        # such rows away, and a derived field's NaN propagates
        rd.g.require([c for c in cols if c in rd.g.fields], nan=False, inf=True)
    machines = el.findall("SupportVectorMachine")
    if not machines:
        raise fail(el, "has no SupportVectorMachine")

    # vectors used by some machine, in order of first use
    dictionary = {vi.get("id"): vi for vi in vd.findall("VectorInstance")}
    nv = vd.get("numberOfVectors")
    if nv is not None and integer(nv, vd, "numberOfVectors") != len(dictionary):
        raise fail(vd, f"numberOfVectors={nv} but it holds {len(dictionary)} VectorInstances")
    rows: dict[str, int] = {}
    vectors: list[np.ndarray] = []
    entries: list[tuple[int, int, float]] = []
    intercepts: list[float] = []
    for m, svm in enumerate(machines):
        co = svm.find("Coefficients")
        if co is None:
            raise fail(svm, "has no Coefficients")
        coefs = [_number(c, "value", "0") for c in co.findall("Coefficient")]
        n = co.get("numberOfCoefficients")
        if n is not None and integer(n, co, "numberOfCoefficients") != len(coefs):
            raise fail(co, f"numberOfCoefficients={n} but it holds {len(coefs)}")
        intercepts.append(_number(co, "absoluteValue", "0"))
        if rep == "Coefficients":
            if len(coefs) != nf:
                raise fail(co, f"has {len(coefs)} coefficients for {nf} vector fields")
            # w . x as a linear kernel against the vector w, weighted by 1
            entries.append((m, len(vectors), 1.0))
            vectors.append(np.array(coefs, dtype=np.float64))
            continue
        svs = svm.find("SupportVectors")
        ids = [s.get("vectorId") for s in svs.findall("SupportVector")] if svs else []
        if len(ids) != len(coefs):
            raise fail(svm, f"has {len(ids)} support vectors but {len(coefs)} coefficients")
        for vid, c in zip(ids, coefs, strict=True):
            if vid not in rows:
                vi = dictionary.get(vid)
                if vi is None:
                    raise fail(svm, f"support vector '{vid}' is not in the VectorDictionary")
                rows[vid] = len(vectors)
                vectors.append(_instance(vi, nf))
            entries.append((m, rows[vid], c))
    vmat = np.array(vectors, dtype=np.float64).reshape(len(vectors), nf)
    k = len(machines)
    dec = rd.g.new_columns("svm.decision", k)
    ent = np.array(entries, dtype=np.float64).reshape(-1, 3)
    rd.g.add_step("svm", name="svm", inputs=cols, outputs=dec, family="svm", params=params,
                  tables={
                      "vectors": {f"x_{f}": np.ascontiguousarray(vmat[:, f]) for f in range(nf)},
                      "coefficients": {"machine": ent[:, 0].astype(np.int64),
                                       "vector": ent[:, 1].astype(np.int64),
                                       "coef": ent[:, 2]},
                      "machines": {"intercept": np.array(intercepts, dtype=np.float64)}})
    if res.function == "regression":
        if k != 1:
            raise fail(machines[1], "a regression model has one SupportVectorMachine")
        res.value = dec[0]
        return
    _classify(rd, el, machines, dec, res)


def _class_index(res: Result, svm: Element, attr: str) -> int:
    v = svm.get(attr)
    if v is None:
        raise fail(svm, f"has no {attr}")
    hit = [i for i, c in enumerate(res.classes) if same_class(c, v)]
    if not hit:
        raise fail(svm, f"{attr}='{v}' is not a category of the target")
    return hit[0]


def _classify(rd: Reader, el: Element, machines: list[Element], dec: list[str],
              res: Result) -> None:
    method = el.get("classificationMethod")
    if method is None:  # older producers omit it (JPMML infers it the same way)
        method = "OneAgainstOne" if machines[0].get("alternateTargetCategory") is not None \
            else "OneAgainstAll"
    max_wins = el.get("maxWins", "false") == "true"
    nc = len(res.classes)
    if method == "OneAgainstOne":
        model_thr = _number(el, "threshold", "0")
        first = [_class_index(res, m, "targetCategory") for m in machines]
        second = [_class_index(res, m, "alternateTargetCategory") for m in machines]
        # a machine's own threshold, else the model's
        thr = [model_thr if m.get("threshold") is None else _number(m, "threshold", "0")
               for m in machines]
        outs = rd.g.new_columns("svm_vote", nc + 1)
        rd.g.add_step("svm_vote", name="svm_vote", inputs=dec, outputs=outs, family="svm",
                      params={"compare": "gt" if max_wins else "lt", "tie": "first_voted",
                              "scores": "fraction"},
                      tables={"machines": {"first": np.array(first, dtype=np.int64),
                                           "second": np.array(second, dtype=np.int64),
                                           "threshold": np.array(thr, dtype=np.float64)}})
        res.probs = outs[:nc]
        res.label = outs[nc]
        return
    if method != "OneAgainstAll":
        raise fail(el, f"classificationMethod='{method}' not supported")
    cls = []
    for m in machines:
        if m.get("alternateTargetCategory") is not None:
            raise fail(m, "alternateTargetCategory in a OneAgainstAll model")
        cls.append(_class_index(res, m, "targetCategory"))
    # the machine with the smallest value wins (largest under maxWins), the first on ties
    k = len(machines)
    prog = Program(rd.budget)
    for j, d in enumerate(dec):
        prog.load(d)
        if not max_wins:
            prog.emit("NEG")
        prog.emit("STORE", j)
    emit_argmax(prog, list(range(k)), k, k + 1)
    prog.select(lambda: prog.emit("LOADOUT", k), [float(c) for c in cls])
    prog.emit("STORE", k + 1)
    res.label = rd.program_step("svm_label", prog, k + 2)[k + 1]
    res.probs = None  # one-against-all yields distances, not probabilities
