"""Family ``nearest_neighbor`` exporters: scikit-learn ``KNeighborsClassifier`` /
``KNeighborsRegressor`` -> one ``nearest_neighbor`` step holding the training set.

Supported: ``weights`` ``uniform`` / ``distance``; metrics euclidean, manhattan, chebyshev,
minkowski (any ``p > 0``). ``distance`` weights are ``1 / d``, except that a query at
distance 0 from some training points weighs those 1 and the others 0 (scikit-learn's rule:
``zero_rule``). Brute-force euclidean search in scikit-learn computes distances with the
squared-norm expansion; the step then does too (``expansion``).

Neighbours at exactly equal distances (ties at the k-th distance change the prediction):

- brute force (``_fit_method == 'brute'``, e.g. more than 15 features): the step replays
  scikit-learn's ``ArgKmin`` heap (``search="heap"``), so bit-identical distances tie as in
  scikit-learn when it searches the training rows in order: ``predict_proba`` with uniform
  weights (always ``parallel_on_X``), or one thread, or batches with at least as many rows as
  the training set. Otherwise (``parallel_on_Y``, used for smaller batches) each thread keeps
  its own heap over part of the training rows, so scikit-learn's choice depends on its
  thread count. Distances that are equal in exact arithmetic but computed from different
  numbers (e.g. one-hot rows differing in different columns) tie or not depending on the
  rounding of scikit-learn's BLAS ``dgemm`` / ``ddot`` (CPU-specific kernels, and dependent
  on the position of the row in its 256-row chunk, so scikit-learn can score the same row
  differently alone and in a batch); the step sums left to right and may pick the other
  neighbour. For ``k > 15`` scikit-learn sorts the heap with an introsort, so the order (not
  the set) of tied neighbours may differ.
- KD / ball tree: the order of ties is the tree traversal's; the step keeps training order
  (``search="stable"``), so such ties may pick other neighbours (not for continuous data).

Rows with fewer than ``k`` training instances at a finite distance (inputs so large that
the squared distances overflow to inf) are refused (``too_few="error"``): scikit-learn
returns training instance 0 ``k`` times at distance inf there, a meaningless result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .clustering import numeric_inputs, unit_fields
from .registry import register

FAMILY = "nearest_neighbor"
_METRICS = {"euclidean": "euclidean", "l2": "euclidean", "manhattan": "cityBlock",
            "cityblock": "cityBlock", "l1": "cityBlock", "chebyshev": "chebychev",
            "infinity": "chebychev", "minkowski": "minkowski"}


def _common(est: Any, g: Graph, cols: list[str]) -> tuple[dict, dict, np.ndarray]:
    name = type(est).__name__
    fit_dtype = getattr(getattr(est, "_fit_X", None), "dtype", np.dtype(np.float64))
    if fit_dtype != np.float64:
        raise ExportError(f"{name} was fitted on {fit_dtype} data; its distances are then "
                          "computed in that dtype: refit it on float64 data")
    metric = est.effective_metric_
    if not isinstance(metric, str) or metric not in _METRICS:
        raise ExportError(f"{name} with metric {metric!r} is not supported (euclidean, "
                          "manhattan, chebyshev, minkowski)")
    mparams = dict(est.effective_metric_params_ or {})
    p = mparams.pop("p", None)
    if mparams.get("w") is None:
        mparams.pop("w", None)  # minkowski's unset per-feature weights
    if mparams:
        raise ExportError(f"{name} with metric_params {sorted(mparams)} is not supported")
    if est.weights not in ("uniform", "distance"):
        raise ExportError(f"{name} with weights={est.weights!r} is not supported "
                          "('uniform', 'distance')")
    X = est._fit_X
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ExportError(f"{name} fitted on sparse data is not supported")
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] != len(cols):
        raise ExportError(f"{name} has {X.shape[1]} features but receives {len(cols)} columns")
    numeric_inputs(g, cols, name)
    measure = _METRICS[metric]
    params: dict = {"measure": measure, "k": int(est.n_neighbors), "threshold": 0.0,
                    "zero_rule": est.weights == "distance"}
    if measure == "minkowski":
        if p is None or not p > 0:
            raise ExportError(f"{name}: minkowski needs p > 0")
        if p == 2:
            params["measure"] = "euclidean"
        elif p == 1:
            params["measure"] = "cityBlock"
        else:
            params["p"] = float(p)
    if est._fit_method == "brute":
        # ArgKmin: a max-heap of k fed the training rows in order, ties decided as it does
        params["search"] = "heap"
        if params["measure"] == "euclidean":
            params["expansion"] = True  # ArgKmin's GEMM-based squared distances
    # a row whose distances overflow to inf has no nearest neighbours; scikit-learn then
    # returns training row 0 k times, an artifact of its search: refuse such rows
    params["too_few"] = "error"
    if params["k"] > X.shape[0]:
        raise ExportError(f"{name}: n_neighbors={params['k']} exceeds the {X.shape[0]} "
                          "training samples")
    inst = {f"x_{j}": X[:, j].copy() for j in range(X.shape[1])}
    inst["id"] = np.arange(X.shape[0], dtype=np.float64)  # kneighbors' indices
    return params, inst, unit_fields(X.shape[1])


@register("sklearn.KNeighborsClassifier")
def export_knn_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if getattr(est, "outputs_2d_", False):
        raise ExportError("KNeighborsClassifier with several outputs is not supported")
    params, inst, fields = _common(est, g, cols)
    c = len(est.classes_)
    inst["y_0"] = np.asarray(est._y, dtype=np.float64)  # class indices into classes_
    method = "weightedMajorityVote" if est.weights == "distance" else "majorityVote"
    k = params["k"]
    outs = g.new_columns("knn", names=[f"neighbor({r})" for r in range(k)] + [
        f"p{j}" for j in range(c)] + ["index"])
    g.add_step("nearest_neighbor", name="kneighbors_classifier", inputs=cols, outputs=outs,
               family=FAMILY, params=params, tables={
                   "fields": fields, "instances": inst,
                   "targets": {"n_classes": np.array([c], dtype=np.int32),
                               "method": np.array([method], dtype=object)}})
    proba = outs[k:k + c]
    set_classifier_outputs(g, est.classes_, proba=proba, label="proba")
    return proba


@register("sklearn.KNeighborsRegressor")
def export_knn_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    params, inst, fields = _common(est, g, cols)
    y = np.asarray(est._y, dtype=np.float64)
    y = y.reshape(len(y), -1)
    t = y.shape[1]
    for j in range(t):
        inst[f"y_{j}"] = y[:, j].copy()
    method = "weightedAverage" if est.weights == "distance" else "average"
    k = params["k"]
    outs = g.new_columns("knn", names=[f"neighbor({r})" for r in range(k)] + [
        f"value{j}" for j in range(t)])
    g.add_step("nearest_neighbor", name="kneighbors_regressor", inputs=cols, outputs=outs,
               family=FAMILY, params=params, tables={
                   "fields": fields, "instances": inst,
                   "targets": {"n_classes": np.zeros(t, dtype=np.int32),
                               "method": np.array([method] * t, dtype=object)}})
    # (a y of shape (n, 1) is kept 2-D by scikit-learn: predict is (n, 1))
    set_regressor_outputs(g, outs[k:], two_dimensional=np.ndim(est._y) == 2)
    return outs[k:]
