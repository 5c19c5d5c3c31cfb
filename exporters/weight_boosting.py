"""``sklearn.ensemble.AdaBoostClassifier`` (SAMME) and ``AdaBoostRegressor``.

No op of their own. Members that are scikit-learn CART trees (the default
``DecisionTreeClassifier(max_depth=1)`` / ``DecisionTreeRegressor(max_depth=3)``, any
``DecisionTree*`` / ``ExtraTree*``) go into one ``tree_ensemble`` step; any other member is
exported by its own exporter (a member without one is refused by its name).

Classifier (``decision_function``, scikit-learn 1.9): ``pred = sum(where(member predicts c,
w, -1 / (K - 1) * w))`` over the members in order, from 0, then ``pred /= sum(
estimator_weights_)``; binary: ``-pred[:, 0] + pred[:, 1]``. For tree members each leaf holds
that per-class vector for the class its tree predicts there (``argmax`` of ``tree_.value``,
the first on ties: the tree's own ``predict``), so the ``tree_ensemble`` sum is scikit-learn's
sum, term for term. ``predict_proba``: ``softmax(pred / (K - 1))`` (binary: of ``[-d / 2,
d / 2]``), scikit-learn's ``softmax`` (row maximum subtracted, ``exp``, divided by the row
sum, which NumPy adds column by column: the decision array is Fortran-ordered). ``predict``:
binary ``d > 0``, else the argmax of the decision.

Regressor (``predict`` = ``_get_median_predict``): the members' predictions, then the
``expression`` opcode ``WMEDIAN`` (sorted predictions, cumulative weights in that order, the
first whose cumulative weight is ``>= 0.5 * total``). Tied predictions are ordered by member
(a stable sort) where NumPy's ``argsort`` (quicksort / SIMD sort, not stable) may order them
otherwise: the tied values are equal, so only the rounding of the cumulative weights can
differ (docs/families.md).

Both refuse NaN and infinity, as ``AdaBoost*._check_X`` does, and values beyond float32 for
tree members (their ``predict`` casts to float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .programs import Program, add_program, class_values, export_sub, label_index
from .registry import register
from .tree_ensemble import _add_cart_values, _cart_inputs, _Forest, _single_output, _tree_step

_CART = ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier",
         "ExtraTreeRegressor")


def _members(est: Any) -> tuple[list[Any], np.ndarray]:
    """The fitted members and their weights (``estimator_weights_`` is as long as
    ``n_estimators``; boosting that stopped early leaves fewer members)."""
    members = list(getattr(est, "estimators_", []))
    if not members:
        raise ExportError(f"{type(est).__name__} has no fitted estimators")
    weights = np.asarray(est.estimator_weights_, dtype=np.float64)
    if len(weights) < len(members):
        raise ExportError(f"{type(est).__name__}: {len(members)} estimators but "
                          f"{len(weights)} weights")
    return members, weights


def _all_cart(members: list[Any]) -> bool:
    return all(type(m).__module__.startswith("sklearn.tree") and type(m).__name__ in _CART
               for m in members)


def _inputs(est: Any, g: Graph, cols: list[str], members: list[Any]) -> None:
    _single_output(est)
    if _all_cart(members):
        # _check_X refuses NaN / inf; the trees' float32 cast refuses what overflows it
        _cart_inputs(g, cols, est, members[0], nan=False)
    else:
        g.require(cols, nan=False, inf=False)


# --- classifier ------------------------------------------------------------------------------
def _samme_sums(est: Any, g: Graph, cols: list[str], members: list[Any],
                weights: np.ndarray) -> list[str]:
    """The ``k`` columns ``sum_i where(pred_i == c, w_i, -1 / (k - 1) * w_i)``."""
    classes = class_values(est.classes_)
    k = len(classes)
    for m in members:
        if class_values(m.classes_) != classes:
            raise ExportError(f"AdaBoostClassifier: member {type(m).__name__} has classes "
                              f"{class_values(m.classes_)[:5]}, the ensemble {classes[:5]}")
    if _all_cart(members):
        forest = _Forest(width=k)
        for m, w in zip(members, weights, strict=False):
            # the tree's predict: classes_[argmax(tree_.value)] (the first maximum)
            pred = np.argmax(m.tree_.value[:, 0, :k], axis=1)
            vec = np.where(pred[:, None] == np.arange(k)[None, :], w, -1 / (k - 1) * w)
            _add_cart_values(forest, m, vec)
        return _tree_step(g, cols, forest, name="adaboostclassifier", n_outputs=k,
                          aggregation="sum", base=0.0, compare_dtype="float32",
                          refuse_overflow=True)
    inputs = [label_index(g, export_sub(m, g, cols), f"adaboost{i}")
              for i, m in enumerate(members)]
    p = Program()
    for c in range(k):
        p.const(0.0)  # sum() starts from 0
        for i, w in enumerate(weights[:len(members)]):
            p.load(i).const(float(c)).emit("EQ").const(float(w))
            p.const(float(-1 / (k - 1) * w)).emit("IF").emit("ADD")
        p.store(c)
    return add_program(g, "adaboost_sums", inputs, k, p)


def _softmax(p: Program, z: list[int], m: int, s: int, out: list[int]) -> None:
    """``out = softmax(z)`` as scikit-learn's ``extmath.softmax``: ``z - max`` (max in
    slot ``m``), ``exp``, divided by the sum (slot ``s``) taken left to right."""
    p.loadout(z[0])
    for j in z[1:]:
        p.loadout(j).emit("MAX")
    p.store(m)
    for j, o in zip(z, out, strict=True):
        p.loadout(j).loadout(m).emit("SUB").emit("EXP").store(o)
    p.const(0.0)
    for o in out:
        p.loadout(o).emit("ADD")
    p.store(s)
    for o in out:
        p.loadout(o).loadout(s).emit("DIV").store(o)


@register("sklearn.AdaBoostClassifier")
def export_adaboost_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    algorithm = getattr(est, "algorithm", "SAMME")
    if algorithm not in ("SAMME", "deprecated"):
        raise ExportError(f"AdaBoostClassifier(algorithm={algorithm!r}) is not supported "
                          "(SAMME is: scikit-learn 1.6 removed SAMME.R)")
    k = int(est.n_classes_)
    if k < 2:
        raise ExportError("AdaBoostClassifier fitted on a single class is not supported")
    members, weights = _members(est)
    _inputs(est, g, cols, members)
    sums = _samme_sums(est, g, cols, members, weights)
    total = float(np.asarray(est.estimator_weights_).sum())  # pred /= weights.sum()
    p = Program()
    n_dec = 1 if k == 2 else k
    dec, proba = list(range(n_dec)), list(range(n_dec, n_dec + k))
    z = list(range(n_dec + k, n_dec + 2 * k))
    m, s = n_dec + 2 * k, n_dec + 2 * k + 1
    if k == 2:
        # pred[:, 0] *= -1; pred.sum(axis=1); then proba of vstack([-d, d]).T / 2
        p.load(0).const(total).emit("DIV").emit("NEG")
        p.load(1).const(total).emit("DIV").emit("ADD").store(0)
        p.loadout(0).emit("NEG").const(2.0).emit("DIV").store(z[0])
        p.loadout(0).const(2.0).emit("DIV").store(z[1])
    else:
        for c in range(k):
            p.load(c).const(total).emit("DIV").store(c)
            p.loadout(c).const(float(k - 1)).emit("DIV").store(z[c])
    _softmax(p, z, m, s, proba)
    outs = add_program(g, "adaboost", sums, s + 1, p)
    set_classifier_outputs(g, est.classes_, proba=[outs[j] for j in proba],
                           decision=[outs[j] for j in dec], label="decision")
    return [outs[j] for j in proba]


# --- regressor -------------------------------------------------------------------------------
@register("sklearn.AdaBoostRegressor")
def export_adaboost_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    members, weights = _members(est)
    _inputs(est, g, cols, members)
    n = len(members)
    if _all_cart(members):
        forest = _Forest(width=1)
        for i, m in enumerate(members):
            _add_cart_values(forest, m, m.tree_.value[:, 0, :1], output=i)
        preds = _tree_step(g, cols, forest, name="adaboostregressor", n_outputs=n,
                           aggregation="sum", base=0.0, compare_dtype="float32",
                           refuse_overflow=True)
    else:
        preds = []
        for m in members:
            sub = export_sub(m, g, cols)
            value = sub.columns("value")
            if len(value) != 1:
                raise ExportError(f"AdaBoostRegressor: member {type(m).__name__} gives "
                                  f"{len(value)} value columns, expected 1")
            preds += value
    p = Program()
    for i in range(n):
        p.load(i)
    for w in weights[:n]:
        p.const(float(w))
    p.emit("WMEDIAN", n).store(0)
    value = add_program(g, "adaboost_median", preds, 1, p)
    set_regressor_outputs(g, value)
    return value
