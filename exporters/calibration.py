"""Family ``calibration``: scikit-learn's ``CalibratedClassifierCV`` (and ``FrozenEstimator``,
how a prefit classifier is calibrated since scikit-learn 1.6).

Per element of ``calibrated_classifiers_`` (``_CalibratedClassifier.predict_proba``):

1. the member's response: ``decision_function`` if it has one, else ``predict_proba``; for a
   two-class member only the positive class's column (``classes_[-1]``);
2. per column, its calibrator: ``sigmoid`` -> ``expit(-(a_ * f + b_))`` (an ``expression``
   program; ``EXPIT`` is ``1 / (1 + exp(-x))`` as SciPy's ``expit``), ``isotonic`` -> the
   ``interpolate`` op over ``(X_thresholds_, y_thresholds_)`` (``np.interp``, what
   ``interp1d`` delegates to for float64; its ``np.clip`` to ``[X_min_, X_max_]`` changes no
   result because those are the first and last thresholds, checked at export);
3. the column goes to its class's slot (``LabelEncoder`` of the classes; slot 1 for binary;
   classes the member never saw stay 0.0);
4. binary: ``p0 = 1.0 - p1``; multiclass: ``p / sum(p)`` (the sum in NumPy's pairwise order),
   ``1 / n_classes`` where the sum is 0;
5. values in ``(1.0, 1.0 + 1e-5]`` become 1.0.

Then the mean over ``calibrated_classifiers_``: ``0.0 + p_0 + p_1 ...`` divided by their
number. The label is the argmax (first on ties). ``method='temperature'`` is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.outputs import set_classifier_outputs
from scorer.errors import ExportError

from .programs import Program, add_program, class_values, export_sub, pairwise_sum
from .registry import export_into, register

FAMILY = "calibration"


@register("sklearn.FrozenEstimator")
def export_frozen(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return export_into(est.estimator, g, cols)


def _response(cc: Any, g: Graph, cols: list[str]) -> list[str]:
    """The member's calibrated-on columns, as ``_get_response_values`` returns them."""
    member = cc.estimator
    sub = export_sub(member, g, cols)
    name = type(member).__name__
    binary = len(member.classes_) == 2
    if hasattr(member, "decision_function"):
        dec = sub.columns("decision")
        if not dec:
            raise ExportError(f"CalibratedClassifierCV: {name}.decision_function is not "
                              "exported")
        if binary and len(dec) != 1:
            raise ExportError(f"CalibratedClassifierCV: {name} gives {len(dec)} decision "
                              "columns for two classes")
        return dec
    probs = sub.columns("probability")
    if len(probs) != len(member.classes_):
        raise ExportError(f"CalibratedClassifierCV: {name}.predict_proba is not exported")
    return probs[1:] if binary else probs


def _isotonic(g: Graph, cols: list[str], calibrators: list[Any]) -> list[str]:
    inputs, xs, ys = [], [], []
    for j, cal in enumerate(calibrators):
        x = np.asarray(cal.X_thresholds_, dtype=np.float64)
        y = np.asarray(cal.y_thresholds_, dtype=np.float64)
        if cal.out_of_bounds != "clip":
            raise ExportError(f"IsotonicRegression(out_of_bounds={cal.out_of_bounds!r}) "
                              "as a calibrator is not supported")
        if len(x) > 1 and (x[0] != cal.X_min_ or x[-1] != cal.X_max_):
            raise ExportError("isotonic calibrator whose clip bounds are not its first and "
                              "last thresholds")
        inputs += [j] * len(x)
        xs.append(x)
        ys.append(y)
    outs = g.new_columns("isotonic", len(cols))
    g.add_step("interpolate", name="isotonic", inputs=cols, outputs=outs, family=FAMILY,
               tables={"points": {"input": np.array(inputs, dtype=np.int32),
                                  "x": np.concatenate(xs), "y": np.concatenate(ys)}})
    return outs


def _calibrated(cc: Any, g: Graph, cols: list[str], k: int, index: int) -> list[str]:
    if cc.method not in ("sigmoid", "isotonic"):
        raise ExportError(f"CalibratedClassifierCV(method={cc.method!r}) is not supported "
                          "(sigmoid and isotonic are)")
    f = _response(cc, g, cols)
    if len(f) != len(cc.calibrators):
        raise ExportError(f"CalibratedClassifierCV: {len(f)} response columns for "
                          f"{len(cc.calibrators)} calibrators")
    if cc.method == "isotonic":
        f = _isotonic(g, f, cc.calibrators)
    # LabelEncoder().fit(classes).transform(member.classes_): the member's classes' slots
    all_classes = class_values(cc.classes)
    slots = [all_classes.index(c) for c in class_values(cc.estimator.classes_)]
    p = Program()
    filled = set()
    for j, cal in enumerate(cc.calibrators):
        slot = slots[j] + 1 if k == 2 else slots[j]
        p.load(j)
        if cc.method == "sigmoid":  # expit(-(a_ * T + b_))
            p.const(float(cal.a_)).emit("MUL").const(float(cal.b_)).emit("ADD")
            p.emit("NEG").emit("EXPIT")
        p.store(slot)
        filled.add(slot)
    for s in range(k):
        if s not in filled and not (k == 2 and s == 0):
            p.const(0.0).store(s)  # np.zeros
    if k == 2:
        p.const(1.0).loadout(1).emit("SUB").store(0)
    else:
        denom = k
        pairwise_sum(p, list(range(k)))
        p.store(denom)
        for s in range(k):  # np.divide(..., out=uniform, where=denominator != 0)
            p.loadout(denom).const(0.0).emit("NE")
            p.loadout(s).loadout(denom).emit("DIV").const(1 / k).emit("IF").store(s)
    for s in range(k):  # proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        p.loadout(s).const(1.0).emit("GT").loadout(s).const(1.0 + 1e-5).emit("LE")
        p.emit("AND").const(1.0).loadout(s).emit("IF").store(s)
    outs = add_program(g, f"calibrated{index}", f, k + (0 if k == 2 else 1), p)
    return outs[:k]


@register("sklearn.CalibratedClassifierCV")
def export_calibrated_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    k = len(est.classes_)
    parts = [_calibrated(cc, g, cols, k, i) for i, cc in enumerate(est.calibrated_classifiers_)]
    inputs = [c for part in parts for c in part]
    p = Program()
    for s in range(k):  # mean_proba = zeros; += each; /= n
        p.const(0.0)
        for i in range(len(parts)):
            p.load(i * k + s).emit("ADD")
        p.const(float(len(parts))).emit("DIV").store(s)
    proba = add_program(g, "calibrated_mean", inputs, k, p)
    set_classifier_outputs(g, est.classes_, proba=proba)
    return proba
