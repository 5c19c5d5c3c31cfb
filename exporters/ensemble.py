"""Meta-estimators of ``sklearn.ensemble``: ``VotingClassifier`` / ``VotingRegressor``,
``StackingClassifier`` / ``StackingRegressor``, ``BaggingClassifier`` / ``BaggingRegressor``.

No op of their own: each member is exported by its own exporter (reading the member's
columns), and an ``expression`` step combines the members' outputs with scikit-learn's float64
operations in scikit-learn's order:

- soft voting: ``np.average(probas, axis=0, weights)``: ``sum_i p_i`` (or ``p_i * w_i``)
  accumulated in member order, divided by ``n`` (or ``sum(weights)`` as NumPy sums it);
- hard voting: ``argmax(bincount(predictions, weights))``: per class, ``0.0`` plus ``w_i``
  (1 without weights) for each member predicting it, in member order; the label is the argmax
  of those sums, the smallest class index on ties;
- voting regressor: the same average over the members' predictions (NumPy sums a row of
  8 or more members pairwise when it is contiguous: then a few ulp, within the tolerance);
- stacking: the members' ``stack_method_`` outputs (binary ``predict_proba`` without its first
  column), then ``passthrough`` inputs, feed the exported ``final_estimator_``;
- bagging: per job of ``_partition_estimators`` (``n_jobs``), ``0.0`` plus each member's
  ``predict_proba`` (on its ``estimators_features_`` columns, into its ``classes_``) or, for a
  member without ``predict_proba``, 1.0 for its predicted class; the jobs summed from 0, then
  ``/ n_estimators``; the regressor the same over ``predict``.

Members are fitted on label-encoded targets (``0 .. k-1``); the outputs carry the
meta-estimator's ``classes_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .programs import (
    Program,
    SubOutputs,
    add_program,
    export_sub,
    label_index,
    relabel_classifier_outputs,
    require_encoded,
)
from .registry import export_into, register


def _one_column(sub: SubOutputs, kind: str, what: str, member: Any) -> str:
    cols = sub.columns(kind)
    if len(cols) != 1:
        raise ExportError(f"{what}: member {type(member).__name__} gives {len(cols)} "
                          f"'{kind}' columns, expected 1")
    return cols[0]


def _probabilities(sub: SubOutputs, member: Any, n: int, what: str) -> list[str]:
    cols = sub.columns("probability")
    if len(cols) != n:
        raise ExportError(f"{what}: member {type(member).__name__} exports no predict_proba "
                          f"({len(cols)} probability columns, expected {n})")
    return cols


def _average(inputs: list[str], groups: list[list[int]], weights: Any) -> Program:
    """Output ``j`` = ``np.average`` over members of input ``groups[i][j]`` (member ``i``)."""
    p = Program()
    n_members = len(groups)
    if weights is None:
        scale = float(n_members)
    else:
        w = np.asarray(weights)
        # np.average's own normaliser: the weights broadcast along the averaged axis, summed
        scale = float(np.broadcast_to(w, (1, 1, n_members)).swapaxes(-1, 0)
                      .sum(axis=0, dtype=np.result_type(w.dtype, "f8")).item())
    for j in range(len(groups[0])):
        for i, grp in enumerate(groups):
            p.load(grp[j])
            if weights is not None:
                p.const(float(weights[i])).emit("MUL")
            if i:
                p.emit("ADD")
        p.const(scale).emit("DIV").store(j)
    return p


@register("sklearn.VotingClassifier")
def export_voting_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    what = "VotingClassifier"
    k = len(est.classes_)
    weights = est._weights_not_none
    inputs: list[str] = []
    if est.voting == "soft":
        groups = []
        for member in est.estimators_:
            sub = export_sub(member, g, cols)
            probs = _probabilities(sub, member, k, what)
            groups.append(list(range(len(inputs), len(inputs) + k)))
            inputs += probs
        proba = add_program(g, "soft_vote", inputs, k, _average(inputs, groups, weights))
        set_classifier_outputs(g, est.classes_, proba=proba)
        return proba
    # hard: argmax(bincount(encoded predictions, weights)); votes start at 0.0
    member_classes = []
    for i, member in enumerate(est.estimators_):
        sub = export_sub(member, g, cols)
        inputs.append(label_index(g, sub, f"vote{i}"))
        member_classes.append(require_encoded(member, what))
    p = Program()
    for c in range(k):
        p.const(0.0)
        for i, mc in enumerate(member_classes):
            if c not in mc:
                continue
            p.load(i).const(float(mc.index(c))).emit("EQ")
            if weights is not None:
                p.const(float(weights[i])).emit("MUL")
            p.emit("ADD")
        p.store(c)
    votes = add_program(g, "hard_vote", inputs, k, p)
    set_classifier_outputs(g, est.classes_)
    g.outputs[-1].columns = votes  # label = argmax of the vote sums (first on ties)
    return votes


@register("sklearn.VotingRegressor")
def export_voting_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    inputs = []
    for member in est.estimators_:
        inputs.append(_one_column(export_sub(member, g, cols), "value", "VotingRegressor",
                                  member))
    groups = [[i] for i in range(len(inputs))]
    value = add_program(g, "vote_average", inputs, 1,
                        _average(inputs, groups, est._weights_not_none))
    set_regressor_outputs(g, value)
    return value


def _stack_features(est: Any, g: Graph, cols: list[str], binary: bool) -> list[str]:
    what = type(est).__name__
    meta: list[str] = []
    for member, method in zip(est.estimators_, est.stack_method_, strict=True):
        sub = export_sub(member, g, cols)
        if method == "predict_proba":
            probs = _probabilities(sub, member, len(member.classes_), what)
            meta += probs[1:] if binary else probs
        elif method == "decision_function":
            dec = sub.columns("decision")
            if not dec:
                raise ExportError(f"{what}: member {type(member).__name__} exports no "
                                  "decision_function")
            meta += dec
        elif method == "predict":
            if sub.task == "classification":
                classes = require_encoded(member, what)
                idx = label_index(g, sub, f"stack_predict.{len(meta)}")
                if classes != list(range(len(classes))):  # predicted value = classes_[idx]
                    raise ExportError(f"{what}: member {type(member).__name__} classes "
                                      f"{classes} are not 0 .. k-1")
                meta.append(idx)
            else:
                meta += sub.columns("value")
        else:
            raise ExportError(f"{what}: stack_method {method!r} is not supported")
    if est.passthrough:
        meta += cols
    return meta


@register("sklearn.StackingClassifier")
def export_stacking_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if isinstance(est.classes_, list):
        raise ExportError("StackingClassifier with a multilabel target is not supported")
    meta = _stack_features(est, g, cols, binary=len(est.classes_) == 2)
    out = export_into(est.final_estimator_, g, meta)
    relabel_classifier_outputs(g, est.classes_)
    return out


@register("sklearn.StackingRegressor")
def export_stacking_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return export_into(est.final_estimator_, g, _stack_features(est, g, cols, binary=False))


def _jobs(est: Any) -> list[range]:
    from sklearn.ensemble._base import _partition_estimators

    n_jobs, _, starts = _partition_estimators(est.n_estimators, est.n_jobs)
    return [range(starts[i], starts[i + 1]) for i in range(n_jobs)]


def _member_columns(est: Any, i: int, cols: list[str]) -> list[str]:
    feats = np.asarray(est.estimators_features_[i])
    if len(feats) and feats.max() >= len(cols):
        raise ExportError(f"{type(est).__name__}: member {i} reads feature {feats.max()} of "
                          f"{len(cols)}")
    return [cols[int(f)] for f in feats]


@register("sklearn.BaggingClassifier")
def export_bagging_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    what = "BaggingClassifier"
    k = int(est.n_classes_)
    inputs: list[str] = []
    # contributions[i] = [(class, input position)] of member i
    contributions: list[list[tuple[int, ...]]] = []
    # decision_function, where scikit-learn has it: the members' decision columns summed
    # (every member must have seen every class: scikit-learn adds their arrays)
    decisions: list[list[str]] | None = [] if hasattr(est, "decision_function") else None
    for i, member in enumerate(est.estimators_):
        sub = export_sub(member, g, _member_columns(est, i, cols))
        classes = require_encoded(member, what)
        if decisions is not None:
            dec = sub.columns("decision")
            if len(classes) == k and len(dec) == (1 if k == 2 else k):
                decisions.append(dec)
            else:
                decisions = None
        if hasattr(member, "predict_proba"):
            cols_i = _probabilities(sub, member, len(classes), what)
            contributions.append([(c, len(inputs) + j) for j, c in enumerate(classes)])
            inputs += cols_i
        else:  # proba[i, prediction] += 1: an indicator per class of the member
            idx = label_index(g, sub, f"bag{i}")
            contributions.append([(c, len(inputs), j) for j, c in enumerate(classes)])
            inputs.append(idx)
    p = Program()
    jobs = _jobs(est)
    for c in range(k):
        p.const(0.0)  # sum(all_proba) starts from 0
        for job in jobs:
            p.const(0.0)  # each job's np.zeros
            for i in job:
                for entry in contributions[i]:
                    if entry[0] != c:
                        continue
                    p.load(entry[1])
                    if len(entry) == 3:  # a vote: 1.0 if the member predicted this class
                        p.const(float(entry[2])).emit("EQ")
                    p.emit("ADD")
            p.emit("ADD")
        p.const(float(est.n_estimators)).emit("DIV").store(c)
    proba = add_program(g, "bagging_proba", inputs, k, p)
    decision = None
    if decisions:
        width = len(decisions[0])
        flat = [c for dec in decisions for c in dec]
        d = Program()
        for c in range(width):
            d.const(0.0)  # sum(all_decisions) starts from 0
            for job in jobs:
                d.const(0.0)  # each job's sum(... for estimator in estimators)
                for i in job:
                    d.load(i * width + c).emit("ADD")
                d.emit("ADD")
            d.const(float(est.n_estimators)).emit("DIV").store(c)
        decision = add_program(g, "bagging_decision", flat, width, d)
    set_classifier_outputs(g, est.classes_, proba=proba, decision=decision)
    return proba


@register("sklearn.BaggingRegressor")
def export_bagging_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    inputs = []
    for i, member in enumerate(est.estimators_):
        sub = export_sub(member, g, _member_columns(est, i, cols))
        inputs.append(_one_column(sub, "value", "BaggingRegressor", member))
    p = Program().const(0.0)
    for job in _jobs(est):
        p.const(0.0)  # sum(generator) starts from 0
        for i in job:
            p.load(i).emit("ADD")
        p.emit("ADD")
    p.const(float(est.n_estimators)).emit("DIV").store(0)
    value = add_program(g, "bagging_average", inputs, 1, p)
    set_regressor_outputs(g, value)
    return value
