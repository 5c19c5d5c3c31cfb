"""Family ``svm`` exporters: scikit-learn's libsvm estimators -> ``svm`` (+ ``svm_vote``) steps.

Supported: ``SVC`` / ``NuSVC`` (decision function in ``ovr`` shape, ``predict`` with and
without ``break_ties``), ``SVR`` / ``NuSVR``, ``OneClassSVM``; kernels ``linear``, ``poly``,
``rbf``, ``sigmoid``. Refused: ``kernel='precomputed'`` and callable kernels.

``probability=True`` models also export ``predict_proba``: an ``svm_probability`` step applies
libsvm's pairwise Platt sigmoids (``probA_`` / ``probB_``) to the machines' decisions and
couples them into class probabilities as libsvm does (for two classes too).

Not exported: the decision columns of multiclass ``decision_function_shape='ovo'`` models
(one per class pair, which the output schema has no naming for yet: the label is exported).

The machines keep libsvm's layout: for the pair of classes ``(i, j)``, ``i < j``, the sum runs
over class ``i``'s support vectors (coefficients ``dual_coef_[j - 1]``) then class ``j``'s
(``dual_coef_[i]``), plus ``intercept_`` (libsvm's ``-rho``), so votes and ties follow
libsvm: ``dec > 0`` votes ``i``, ties go to the lower class index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError
from scorer.ir import Output

from .registry import register

FAMILY = "svm"


def _dense(a: Any) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


def _kernel_params(est: Any) -> dict[str, Any]:
    kernel = est.kernel
    if callable(kernel) or kernel not in ("linear", "poly", "rbf", "sigmoid"):
        raise ExportError(f"{type(est).__name__} with kernel={kernel!r} is not supported "
                          "(supported: 'linear', 'poly', 'rbf', 'sigmoid')")
    # libsvm raises the polynomial to an integer degree by repeated squaring (powi)
    return {"kernel": kernel, "gamma": float(est._gamma), "coef0": float(est.coef0),
            "degree": float(int(est.degree)), "power": "squaring"}


def add_svm_step(g: Graph, cols: list[str], vectors: np.ndarray, entries: list[tuple[int, int,
                 float]], intercepts: np.ndarray, params: dict[str, Any], name: str
                 ) -> list[str]:
    """Append an ``svm`` step; ``vectors`` (n_sv, f), ``entries`` (machine, vector, coef) in
    summation order, ``intercepts`` (k,). Returns the k decision columns."""
    k = len(intercepts)
    outs = g.new_columns(f"{name}.decision", k)
    ent = np.array(entries, dtype=np.float64).reshape(-1, 3)
    g.add_step("svm", name=name, inputs=cols, outputs=outs, family=FAMILY, params=params,
               tables={
                   "vectors": {f"x_{f}": np.ascontiguousarray(vectors[:, f])
                               for f in range(vectors.shape[1])},
                   "coefficients": {"machine": ent[:, 0].astype(np.int64),
                                    "vector": ent[:, 1].astype(np.int64), "coef": ent[:, 2]},
                   "machines": {"intercept": np.asarray(intercepts, dtype=np.float64)},
               })
    return outs


def add_vote_step(g: Graph, decisions: list[str], pairs: list[tuple[int, int]],
                  n_classes: int, *, compare: str, scores: str, tie: str = "lowest",
                  thresholds: list[float] | None = None, name: str = "svm_vote") -> list[str]:
    """Append an ``svm_vote`` step; returns ``n_classes`` score columns then the label index."""
    outs = g.new_columns(name, n_classes + 1)
    thr = np.zeros(len(pairs)) if thresholds is None else np.asarray(thresholds, np.float64)
    g.add_step("svm_vote", name=name, inputs=decisions, outputs=outs, family=FAMILY,
               params={"compare": compare, "tie": tie, "scores": scores},
               tables={"machines": {
                   "first": np.array([p[0] for p in pairs], dtype=np.int64),
                   "second": np.array([p[1] for p in pairs], dtype=np.int64),
                   "threshold": thr}})
    return outs


def _prepare(est: Any, g: Graph, cols: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    name = type(est).__name__
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OneHotEncoder / OrdinalEncoder)")
    params = _kernel_params(est)
    vectors = _dense(est.support_vectors_)
    if vectors.shape[1] != len(cols):
        raise ExportError(f"{name} has support vectors of {vectors.shape[1]} features but "
                          f"receives {len(cols)} columns")
    # libsvm's predict refuses NaN and inf (check_array)
    g.require(cols, nan=False, inf=False)
    return vectors, params


@register("sklearn.SVR", "sklearn.NuSVR")
def export_svr(est: Any, g: Graph, cols: list[str]) -> list[str]:
    vectors, params = _prepare(est, g, cols)
    coef = _dense(est._dual_coef_)[0]
    entries = [(0, v, float(c)) for v, c in enumerate(coef)]
    dec = add_svm_step(g, cols, vectors, entries, _dense(est._intercept_), params,
                       type(est).__name__.lower())
    set_regressor_outputs(g, dec)
    return dec


@register("sklearn.OneClassSVM")
def export_one_class_svm(est: Any, g: Graph, cols: list[str]) -> list[str]:
    vectors, params = _prepare(est, g, cols)
    coef = _dense(est._dual_coef_)[0]
    entries = [(0, v, float(c)) for v, c in enumerate(coef)]
    dec = add_svm_step(g, cols, vectors, entries, _dense(est._intercept_), params,
                       "one_class_svm")
    # predict: +1 if decision > 0 else -1 (libsvm's one-class rule)
    set_classifier_outputs(g, [-1, 1], decision=dec, label="decision")
    return dec


@register("sklearn.SVC", "sklearn.NuSVC")
def export_svc(est: Any, g: Graph, cols: list[str]) -> list[str]:
    vectors, params = _prepare(est, g, cols)
    name = type(est).__name__.lower()
    classes = est.classes_
    nc = len(classes)
    if nc == 2:
        # scikit-learn's public dual_coef_ / intercept_ are libsvm's negated: the decision is
        # -dec exactly (negation commutes with rounding); libsvm predicts class 0 iff dec > 0
        coef = _dense(est.dual_coef_)[0]
        entries = [(0, v, float(c)) for v, c in enumerate(coef)]
        dec = add_svm_step(g, cols, vectors, entries, _dense(est.intercept_), params, name)
        votes = add_vote_step(g, dec, [(0, 1)], 2, compare="lt", scores="count")
        ab = _prob_ab(est)
        # libsvm's own decision is -dec: x * A == (-x) * (-A) exactly, so negate A
        proba = add_probability_step(g, dec, [(0, 1)], -ab[0], ab[1], 2) if ab else None
        set_classifier_outputs(g, classes, proba=proba, decision=dec, label="decision")
        _label_from(g, votes[:2])
        return dec
    dual = _dense(est._dual_coef_)  # (nc - 1, n_sv), libsvm's sv_coef
    start = np.concatenate([[0], np.cumsum(est.n_support_)])
    entries: list[tuple[int, int, float]] = []
    pairs = []
    for i in range(nc):
        for j in range(i + 1, nc):
            p = len(pairs)
            entries += [(p, v, float(dual[j - 1, v])) for v in range(start[i], start[i + 1])]
            entries += [(p, v, float(dual[i, v])) for v in range(start[j], start[j + 1])]
            pairs.append((i, j))
    dec = add_svm_step(g, cols, vectors, entries, _dense(est._intercept_), params, name)
    votes = add_vote_step(g, dec, pairs, nc, compare="gt", scores="count")
    ab = _prob_ab(est)
    proba = add_probability_step(g, dec, pairs, ab[0], ab[1], nc) if ab else None
    if est.decision_function_shape == "ovr":
        # _ovr_decision_function(dec < 0, -dec): dec < 0 votes j, otherwise i
        ovr = add_vote_step(g, dec, [(j, i) for i, j in pairs], nc, compare="lt",
                            scores="ovr_confidence", name="svm_ovr")
        set_classifier_outputs(g, classes, proba=proba, decision=ovr[:nc], label="decision")
        if not est.break_ties:
            _label_from(g, votes[:nc])
        return ovr[:nc]
    set_classifier_outputs(g, classes, proba=proba, label="decision", decision=None)
    _label_from(g, votes[:nc])
    return dec


def _prob_ab(est: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """libsvm's pairwise sigmoid parameters, or None for a model without probabilities."""
    if not getattr(est, "probability", False):
        return None
    # the private arrays: the public probA_ / probB_ warn (deprecated in scikit-learn 1.9)
    a = getattr(est, "_probA", None)
    b = getattr(est, "_probB", None)
    if a is None or b is None or np.size(a) == 0:
        return None
    return np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()


def add_probability_step(g: Graph, decisions: list[str], pairs: list[tuple[int, int]],
                         a: np.ndarray, b: np.ndarray, n_classes: int,
                         name: str = "svm_probability") -> list[str]:
    """Append an ``svm_probability`` step: machine ``m``'s decision ``x`` gives
    ``P(first beats second) = sigmoid(x * a[m] + b[m])`` (libsvm's sign: ``x > 0`` votes
    ``first``). Returns the ``n_classes`` probability columns."""
    outs = g.new_columns(name, n_classes)
    g.add_step("svm_probability", name=name, inputs=decisions, outputs=outs, family=FAMILY,
               params={"min_prob": 1e-7},
               tables={"machines": {
                   "first": np.array([p[0] for p in pairs], dtype=np.int64),
                   "second": np.array([p[1] for p in pairs], dtype=np.int64),
                   "a": np.asarray(a, dtype=np.float64), "b": np.asarray(b, dtype=np.float64)}})
    return outs


def _label_from(g: Graph, vote_columns: list[str]) -> None:
    """The label is the class with the most votes, the lowest class index on ties (libsvm)."""
    lab = g.outputs[-1]
    g.outputs[-1] = Output(name=lab.name, kind="label", type=lab.type, rule="argmax",
                           columns=list(vote_columns), classes=lab.classes)
