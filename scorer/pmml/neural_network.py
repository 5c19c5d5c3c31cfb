"""NeuralNetwork -> one ``neural_network`` step (see :mod:`scorer.kernels.neural_network`).

``NeuralInputs``: each ``NeuralInput`` holds a DerivedField (``FieldRef``, ``NormContinuous``,
``NormDiscrete`` or any other expression the reader compiles); inputs that are a plain
``FieldRef`` read their column directly, the others are compiled into one ``expression``
step. ``NeuralLayer`` elements become dense layers: a neuron's ``Con`` elements must come from
the previous layer (the inputs, for the first); a source a neuron does not connect to has
weight 0. ``activationFunction``, ``threshold``, ``leakage``, ``width``, ``altitude`` and
``normalizationMethod`` of a layer override the model's (defaults: threshold 0, altitude 1,
normalization none); a ``Neuron``'s own ``width`` / ``altitude`` override its layer's.

``NeuralOutputs``: the output neurons must be in the last layer. Regression: for each target
one ``NeuralOutput`` whose DerivedField is a ``FieldRef`` to the target (the neuron's value)
or a ``NormContinuous`` of it (the normalization inverted: piecewise linear in the norm
values, extrapolated beyond the first and last points; ``outliers`` is not applied). Several
targets (a multi-output network) each get their value. Classification: ``NormDiscrete``
outputs; the probability of a class is its neuron's value as the network computed it (no
further normalization, as JPMML does), 0 for a class without an output neuron; the label is
the argmax. A DerivedField that refers to a derived field is followed to that field's
expression (as JPMML does).

A missing input makes every output missing (JPMML returns no result).

Refused (named with line numbers): connections that skip a layer or repeat a source,
output neurons outside the last layer, other NeuralOutput expressions, a ``radialBasis``
neuron not connected to every source or without a width, ``x-mathContext='float'``, unknown
activation / normalization names.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from ..build.neural_network import add_network
from ..kernels.neural_network import ACTIVATIONS, NORMALIZATIONS
from .expressions import expression, resolve
from .fields import Pending, Scope, attr_number, children, fail, same_class
from .program import Program
from .reader import register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result


def _num(el: Element, attr: str, default: str | None = None) -> float | None:
    return attr_number(el, attr, default)


def _one_expression(el: Element) -> Element:
    exprs = [c for c in el.children if c.tag not in ("Extension", "Value")]
    if len(exprs) != 1:
        raise fail(el, "must hold exactly one expression")
    return exprs[0]


def _inputs(rd: Reader, el: Element, scope: Scope) -> tuple[list[str], list[str]]:
    """(input neuron ids, their workspace columns)."""
    ni = [c for c in el.children if c.tag == "NeuralInputs"]
    if len(ni) != 1:
        raise fail(el, "needs exactly one NeuralInputs")
    ids: list[str] = []
    cols: list[str | None] = []
    prog = Program(rd.budget)
    computed: list[int] = []
    for c in children(ni[0], "NeuralInput", where="NeuralInputs"):
        nid = c.get("id")
        if nid is None:
            raise fail(c, "has no id")
        df = c.find("DerivedField")
        if df is None:
            raise fail(c, "has no DerivedField")
        e = _one_expression(df)
        ids.append(nid)
        if e.tag == "FieldRef" and e.get("mapMissingTo") is None and \
                df.get("dataType") != "float":
            col = resolve(rd, e.get("field"), scope, e)
            if col.vocab is not None:
                raise fail(e, f"field '{e.get('field')}' holds strings: a neural input must "
                              "be numeric (use NormDiscrete)")
            cols.append(col.column)
            continue
        typ = expression(rd, e, scope, prog)
        if typ.col is not None:
            raise fail(e, "a neural input must be numeric")
        if df.get("dataType") == "float":
            prog.emit("F32")
        prog.emit("STORE", len(computed))
        computed.append(len(cols))
        cols.append(None)
    if not ids:
        raise fail(ni[0], "has no NeuralInput")
    if computed:
        outs = rd.program_step("neural_inputs", prog, len(computed))
        for pos, out in zip(computed, outs, strict=True):
            cols[pos] = out
    return ids, [c for c in cols if c is not None]


def _layers(el: Element, input_ids: list[str]) -> tuple[dict, list[str]]:
    """The layer tables for :func:`add_network`, and the last layer's neuron ids."""
    prev = {nid: i for i, nid in enumerate(input_ids)}
    if len(prev) != len(input_ids):
        raise fail(el, "two NeuralInputs share an id")
    seen_ids = set(prev)
    spec: dict[str, list] = {k: [] for k in (
        "coefs", "intercepts", "activations", "normalizations", "thresholds", "leakages",
        "widths", "altitudes")}
    layers = [c for c in el.children if c.tag == "NeuralLayer"]
    if not layers:
        raise fail(el, "has no NeuralLayer")
    ids: list[str] = []
    for layer in layers:
        act = layer.get("activationFunction") or el.get("activationFunction")
        if act is None:
            raise fail(el, "has no activationFunction")
        if act not in ACTIVATIONS:
            raise fail(layer if layer.get("activationFunction") else el,
                       f"activationFunction='{act}' not supported")
        norm = layer.get("normalizationMethod") or el.get("normalizationMethod", "none")
        if norm not in NORMALIZATIONS:
            raise fail(layer if layer.get("normalizationMethod") else el,
                       f"normalizationMethod='{norm}' not supported")
        threshold = _num(layer, "threshold") if layer.get("threshold") else _num(
            el, "threshold", "0")
        leak = _num(layer, "leakage") if layer.get("leakage") else _num(el, "leakage", "0")
        lwidth = _num(layer, "width") if layer.get("width") else _num(el, "width")
        lalt = _num(layer, "altitude") if layer.get("altitude") else _num(el, "altitude", "1")
        neurons = children(layer, "Neuron", where="a NeuralLayer")
        if not neurons:
            raise fail(layer, "has no Neuron")
        w = np.zeros((len(prev), len(neurons)))
        bias = np.zeros(len(neurons))
        width = np.full(len(neurons), math.nan)
        alt = np.ones(len(neurons))
        ids = []
        for j, nr in enumerate(neurons):
            nid = nr.get("id")
            if nid is None:
                raise fail(nr, "has no id")
            if nid in seen_ids:
                raise fail(nr, f"id '{nid}' is used twice")
            seen_ids.add(nid)
            ids.append(nid)
            bias[j] = _num(nr, "bias", "0")
            sources: set[str] = set()
            for con in children(nr, "Con", where="a Neuron"):
                src = con.get("from")
                if src not in prev:
                    raise fail(con, f"connects from '{src}', which is not a neuron of the "
                                    "previous layer (connections that skip a layer are not "
                                    "supported)")
                if src in sources:
                    raise fail(con, f"a second connection from '{src}'")
                sources.add(src)
                wt = _num(con, "weight")
                if wt is None:
                    raise fail(con, "has no weight")
                w[prev[src], j] = wt
            if act == "radialBasis":
                if len(sources) != len(prev):
                    raise fail(nr, "a radialBasis neuron must connect to every neuron of the "
                                   "previous layer")
                nw = _num(nr, "width") if nr.get("width") else lwidth
                if nw is None:
                    raise fail(nr, "radialBasis needs a width (Neuron, NeuralLayer or "
                                   "NeuralNetwork)")
                width[j] = nw
                alt[j] = _num(nr, "altitude") if nr.get("altitude") else lalt
        spec["coefs"].append(w)
        spec["intercepts"].append(bias)
        spec["activations"].append(act)
        spec["normalizations"].append(norm)
        spec["thresholds"].append(threshold)
        spec["leakages"].append(leak)
        spec["widths"].append(width)
        spec["altitudes"].append(alt)
        prev = {nid: i for i, nid in enumerate(ids)}
    return spec, ids


def _output_expression(rd: Reader, df: Element, scope: Scope) -> Element:
    """The DerivedField's expression, following a FieldRef to a derived field."""
    e = _one_expression(df)
    for _ in range(100):
        if e.tag != "FieldRef":
            return e
        ent = scope.names.get(e.get("field"))
        if not isinstance(ent, Pending):
            return e
        e = _one_expression(ent.el)
    raise fail(df, "derived fields refer to each other in a cycle")


def _targets(el: Element, res: Result) -> list[str]:
    ms = el.find("MiningSchema")
    names = [mf.get("name") for mf in (ms.findall("MiningField") if ms is not None else [])
             if mf.get("usageType", "active") in ("target", "predicted")]
    return names or ([res.target] if res.target is not None else [])


def _denormalize(rd: Reader, e: Element, column: str) -> str:
    """The inverse of NormContinuous ``e`` applied to ``column`` (one expression step)."""
    pts = [(_num(n, "orig"), _num(n, "norm")) for n in e.findall("LinearNorm")]
    if len(pts) < 2:
        raise fail(e, "needs at least two LinearNorm elements")
    if any(b[1] <= a[1] for a, b in itertools.pairwise(pts)):
        raise fail(e, "cannot invert a normalization whose norm values do not increase")
    prog = Program(rd.budget)

    def seg(i: int) -> None:  # o_i + (y - n_i) * (o_{i+1} - o_i) / (n_{i+1} - n_i)
        (o0, n0), (o1, n1) = pts[i], pts[i + 1]
        prog.interpolate(column, n0, o0, n1, o1)

    m = len(pts) - 1
    for i in range(m - 1):  # IF(y < n_1, seg0, IF(y < n_2, seg1, ... seg_last))
        prog.load(column)
        prog.const(pts[i + 1][1])
        prog.emit("LT")
        seg(i)
    seg(m - 1)
    for _ in range(m - 1):
        prog.emit("IF")
    prog.emit("STORE", 0)
    return rd.expr_column("denormalize", prog).column


@register_model("NeuralNetwork", parts=("NeuralInputs", "NeuralLayer", "NeuralOutputs"))
def neural_network(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    """Compile a NeuralNetwork element (see the module docstring)."""
    from .reader import Result

    if scope.math32:
        raise fail(el, "x-mathContext='float' is not supported for NeuralNetwork")
    input_ids, cols = _inputs(rd, el, scope)
    spec, last_ids = _layers(el, input_ids)
    outs = add_network(rd.g, cols, spec["coefs"], spec["intercepts"], spec["activations"],
                       normalizations=spec["normalizations"], thresholds=spec["thresholds"],
                       leakages=spec["leakages"], widths=spec["widths"],
                       altitudes=spec["altitudes"], name="neural_network")
    neuron = dict(zip(last_ids, outs, strict=True))
    no = [c for c in el.children if c.tag == "NeuralOutputs"]
    if len(no) != 1:
        raise fail(el, "needs exactly one NeuralOutputs")
    mapped: list[tuple[Element, Element, str]] = []  # (NeuralOutput, expression, column)
    for o in children(no[0], "NeuralOutput", where="NeuralOutputs"):
        nid = o.get("outputNeuron")
        if nid not in neuron:
            raise fail(o, f"outputNeuron '{nid}' is not a neuron of the last NeuralLayer")
        df = o.find("DerivedField")
        if df is None:
            raise fail(o, "has no DerivedField")
        mapped.append((o, _output_expression(rd, df, scope), neuron[nid]))
    if res.function == "regression":
        values = []
        for t in _targets(el, res):
            hit = [(o, e, c) for o, e, c in mapped
                   if e.tag in ("FieldRef", "NormContinuous") and e.get("field") == t]
            if len(hit) != 1:
                raise fail(no[0], f"needs one NeuralOutput (FieldRef or NormContinuous) for "
                                  f"target '{t}', has {len(hit)}")
            o, e, c = hit[0]
            values.append((t, c if e.tag == "FieldRef" else _denormalize(rd, e, c)))
        for _o, e, _c in mapped:
            if e.tag not in ("FieldRef", "NormContinuous"):
                raise fail(e, "a regression NeuralOutput must be a FieldRef or NormContinuous")
        if not values:
            raise fail(el, "has no target field")
        res.value = values[0][1]
        if len(values) > 1:
            if el.find("Targets") is not None:
                raise fail(el.find("Targets"), "Targets on a network with several targets")
            res.multi = [Result(function="regression", target=t, value=v) for t, v in values]
        return
    probs: list[str | None] = [None] * len(res.classes)
    for o, e, c in mapped:
        if e.tag != "NormDiscrete":
            raise fail(e, "a classification NeuralOutput must be a NormDiscrete")
        if res.target is not None and e.get("field") != res.target:
            raise fail(e, f"refers to '{e.get('field')}', not the target '{res.target}'")
        hit = [k for k, cls in enumerate(res.classes) if same_class(cls, e.get("value", ""))]
        if not hit:
            raise fail(e, f"'{e.get('value')}' is not a class of the target")
        if probs[hit[0]] is not None:
            raise fail(o, f"a second output neuron for class '{e.get('value')}'")
        probs[hit[0]] = c
    if all(p is None for p in probs):
        raise fail(no[0], "maps no neuron to a class")
    if any(p is None for p in probs):  # a class without a neuron: probability 0
        prog = Program(rd.budget)
        prog.const(0.0)
        prog.emit("STORE", 0)
        zero = rd.expr_column("zero", prog).column
        probs = [zero if p is None else p for p in probs]
    res.probs = probs
    rd._label_of(res)

