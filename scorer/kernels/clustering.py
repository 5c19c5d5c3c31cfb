"""Family ``clustering``: center-based cluster models (k-means, PMML ClusteringModel).

Also home of the distance machinery the ``nearest_neighbor`` family shares
(:func:`row_adjustment`, :func:`point_distance`, :func:`expanded_distance`).

Op ``clustering`` version 1 (normative)
---------------------------------------
Step inputs are the ``f`` clustering fields (``x[0..f)``); step outputs are ``k`` columns, the
distance of the row to each cluster center in table order, then one column holding the
0-based index of the winning cluster.

params
    ``measure`` (string): ``"euclidean"``, ``"squaredEuclidean"``, ``"cityBlock"``,
    ``"chebychev"`` or ``"minkowski"``.
    ``p`` (number, minkowski only, ``p > 0``): the exponent.
    ``expansion`` (bool, default false): scikit-learn's squared-norm expansion (below);
    only with ``euclidean`` / ``squaredEuclidean``, unit weights and ``absDiff``.

tables
    ``fields``: one row per input: float64 ``weight`` (PMML ``fieldWeight``), int8 ``compare``
    (0 ``absDiff``, 1 ``gaussSim``, 2 ``delta``, 3 ``equal``), float64 ``scale`` (``gaussSim``'s
    ``similarityScale``; ignored otherwise), float64 ``missing_weight`` (PMML
    ``MissingValueWeights``; 1.0 when the model has none).

    ``centers``: one row per cluster, float64 ``x_0 .. x_{f-1}``.

Distance of row ``x`` to center ``c`` (PMML's, evaluated in exactly this order)::

    c_j   = |x_j - c_j|                          absDiff
          = exp(-ln(2) * z*z / (s*s)), z = x_j - c_j   gaussSim
          = 0 if x_j == c_j else 1               delta
          = 1 if x_j == c_j else 0               equal
    t_j   = weight_j * c_j ** q        q = 2 (euclidean, squaredEuclidean), 1 (cityBlock,
                                       chebychev), p (minkowski); c ** 2 is c * c
    adj   = (sum_j missing_weight_j) / (sum over non-missing j of missing_weight_j)
    D     = (sum over non-missing j of t_j, left to right) * adj, then
            sqrt(D) (euclidean), D ** (1 / p) (minkowski), D (squaredEuclidean, cityBlock);
            chebychev: (max over non-missing j of t_j) * adj

A missing (NaN) input contributes no term. When every input is missing, every distance and
the winner are NaN.

With ``expansion`` (scikit-learn's ``KMeans.transform`` / ``euclidean_distances``), with
``xx = sum_j x_j * x_j``, ``cc = sum_j c_j * c_j`` and ``xc = sum_j x_j * c_j``, each summed
left to right: ``D = max(((-2 * xc) + xx) + cc, 0)``, and ``sqrt(D)`` for euclidean; a NaN
input makes every distance NaN.

Winner: the cluster with the smallest distance, the first in table order on ties; NaN
distances never win; NaN if no distance is a number. With ``expansion`` the winner is
instead the smallest ``cc + (-2 * xc)`` (what scikit-learn's ``KMeans.predict`` compares;
it can differ from the smallest expanded distance only between nearly equidistant centers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, param_float, table

MEASURES = {"euclidean": 0, "squaredEuclidean": 1, "cityBlock": 2, "chebychev": 3,
            "minkowski": 4}
COMPARES = {"absDiff": 0, "gaussSim": 1, "delta": 2, "equal": 3}
_LN2 = math.log(2.0)


# --- shared distance machinery (also used by the nearest_neighbor family) ---------------------
@njit(cache=True, nogil=True, error_model="numpy")
def row_adjustment(x, missing_weight):
    """PMML's missing-value adjustment for one row ``x`` (float64[f]); NaN if all missing."""
    total = 0.0
    present = 0.0
    for j in range(x.shape[0]):
        total += missing_weight[j]
        if not math.isnan(x[j]):
            present += missing_weight[j]
    if present == 0.0:
        return math.nan
    return total / present


@njit(cache=True, nogil=True, error_model="numpy")
def point_distance(x, ref, weight, compare, scale, measure, p, adj):
    """Distance between row ``x`` and reference point ``ref`` (both float64[f])."""
    if math.isnan(adj):
        return math.nan
    acc = 0.0
    for j in range(x.shape[0]):
        v = x[j]
        if math.isnan(v):
            continue
        cf = compare[j]
        if cf == 0:
            c = abs(v - ref[j])
        elif cf == 1:
            z = v - ref[j]
            c = math.exp(-_LN2 * (z * z) / (scale[j] * scale[j]))
        elif cf == 2:
            c = 0.0 if v == ref[j] else 1.0
        else:
            c = 1.0 if v == ref[j] else 0.0
        if measure <= 1:
            t = weight[j] * (c * c)
        elif measure <= 3:
            t = weight[j] * c
        else:
            t = weight[j] * c ** p
        if measure == 3:
            if t > acc or math.isnan(t):
                acc = t
        else:
            acc += t
    d = acc * adj
    if measure == 0:
        return math.sqrt(d)
    if measure == 4:
        return d ** (1.0 / p)
    return d


@njit(cache=True, nogil=True, error_model="numpy")
def expanded_distance(x, ref, xx, cc, measure):
    """scikit-learn's ``euclidean_distances``: ``max(-2 x.c + xx + cc, 0)`` (sqrt'ed for
    euclidean). ``xx`` / ``cc`` are the squared norms of ``x`` / ``ref``."""
    xc = 0.0
    for j in range(x.shape[0]):
        xc += x[j] * ref[j]
    d = ((-2.0 * xc) + xx) + cc
    if d < 0.0:
        d = 0.0
    return math.sqrt(d) if measure == 0 else d


@njit(cache=True, nogil=True, error_model="numpy")
def squared_norm(x):
    s = 0.0
    for j in range(x.shape[0]):
        s += x[j] * x[j]
    return s


# --- clustering --------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _cluster_row(ws, i, in_cols, out_cols, centers, weight, compare, scale, missing_weight,
                 measure, p, expansion, cc, x):
    f = in_cols.shape[0]
    k = centers.shape[0]
    for j in range(f):
        x[j] = ws[i, in_cols[j]]
    best = -1
    best_score = 0.0
    if expansion:
        xx = squared_norm(x)
        for c in range(k):
            ref = centers[c]
            d = expanded_distance(x, ref, xx, cc[c], measure)
            ws[i, out_cols[c]] = d
            xc = 0.0
            for j in range(f):
                xc += x[j] * ref[j]
            s = cc[c] + (-2.0 * xc)
            if s == s and (best < 0 or s < best_score):
                best = c
                best_score = s
    else:
        adj = row_adjustment(x, missing_weight)
        for c in range(k):
            d = point_distance(x, centers[c], weight, compare, scale, measure, p, adj)
            ws[i, out_cols[c]] = d
            if d == d and (best < 0 or d < best_score):
                best = c
                best_score = d
    ws[i, out_cols[k]] = math.nan if best < 0 else float(best)


@njit(cache=True, nogil=True, error_model="numpy")
def clustering_kernel(ws, in_cols, out_cols, centers, weight, compare, scale, missing_weight,
                      measure, p, expansion, cc):
    x = np.empty(in_cols.shape[0])
    for i in range(ws.shape[0]):
        _cluster_row(ws, i, in_cols, out_cols, centers, weight, compare, scale, missing_weight,
                     measure, p, expansion, cc, x)
    return -1


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def clustering_kernel_parallel(ws, in_cols, out_cols, centers, weight, compare, scale,
                               missing_weight, measure, p, expansion, cc):
    n = ws.shape[0]
    block = 256
    for b in prange((n + block - 1) // block):
        x = np.empty(in_cols.shape[0])
        for i in range(b * block, min(n, (b + 1) * block)):
            _cluster_row(ws, i, in_cols, out_cols, centers, weight, compare, scale,
                         missing_weight, measure, p, expansion, cc, x)
    return -1


def reference_distances(X, refs, weight, compare, scale, missing_weight, measure, p,
                        expansion):
    """NumPy reference of the distance of every row of ``X`` (n, f) to every row of ``refs``
    (m, f): float64[n, m]. Same formulas and summation order as :func:`point_distance`."""
    n, f = X.shape
    m = refs.shape[0]
    if expansion:
        xx = np.zeros(n)
        cc = np.zeros(m)
        xc = np.zeros((n, m))
        for j in range(f):  # left-to-right sums, as the kernel adds them
            xx = xx + X[:, j] * X[:, j]
            cc = cc + refs[:, j] * refs[:, j]
            xc = xc + X[:, j][:, None] * refs[:, j][None, :]
        d = np.maximum(((-2.0 * xc) + xx[:, None]) + cc[None, :], 0.0)
        return np.sqrt(d) if measure == 0 else d
    present = ~np.isnan(X)
    total = np.zeros(n)
    have = np.zeros(n)
    for j in range(f):
        total = total + missing_weight[j]
        have = have + np.where(present[:, j], missing_weight[j], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        adj = np.where(have == 0.0, np.nan, total / np.where(have == 0.0, 1.0, have))
    acc = np.zeros((n, m))
    for j in range(f):
        z = X[:, j][:, None] - refs[:, j][None, :]
        if compare[j] == 0:
            c = np.abs(z)
        elif compare[j] == 1:
            c = np.exp(-_LN2 * (z * z) / (scale[j] * scale[j]))
        elif compare[j] == 2:
            c = np.where(X[:, j][:, None] == refs[:, j][None, :], 0.0, 1.0)
        else:
            c = np.where(X[:, j][:, None] == refs[:, j][None, :], 1.0, 0.0)
        if measure <= 1:
            t = weight[j] * (c * c)
        elif measure <= 3:
            t = weight[j] * c
        else:
            t = weight[j] * c ** p
        keep = present[:, j][:, None]
        if measure == 3:
            acc = np.where(keep & ((t > acc) | np.isnan(t)), t, acc)
        else:
            acc = acc + np.where(keep, t, 0.0)
    d = acc * adj[:, None]
    with np.errstate(invalid="ignore"):
        if measure == 0:
            return np.sqrt(d)
        if measure == 4:
            return d ** (1.0 / p)
    return d


def clustering_reference(ws, in_cols, out_cols, centers, weight, compare, scale,
                         missing_weight, measure, p, expansion, cc):
    X = ws[:, in_cols]
    k = centers.shape[0]
    d = reference_distances(X, centers, weight, compare, scale, missing_weight, measure, p,
                            expansion)
    if expansion:
        xc = np.zeros((X.shape[0], k))
        for j in range(X.shape[1]):
            xc = xc + X[:, j][:, None] * centers[:, j][None, :]
        score = cc[None, :] + (-2.0 * xc)
    else:
        score = d
    masked = np.where(np.isnan(score), np.inf, score)
    win = np.argmin(masked, axis=1).astype(np.float64)  # first minimum on ties
    none = np.isnan(score).all(axis=1)
    # a row whose only numbers are +inf: argmin picked the first column, maybe a NaN one
    first_num = np.argmax(~np.isnan(score), axis=1)
    only_inf = ~none & np.isinf(masked).all(axis=1)
    win[only_inf] = first_num[only_inf]
    win[none] = np.nan
    ws[:, out_cols[:k]] = d
    ws[:, out_cols[k]] = win
    return -1


# --- binding -----------------------------------------------------------------------------------
def bind_distance(step: Step, n_inputs: int) -> tuple:
    """``(weight, compare, scale, missing_weight, measure, p, expansion)`` from a step's
    ``fields`` table and params (shared with ``nearest_neighbor``)."""
    name = step.params["measure"]
    if name not in MEASURES:
        raise ValueError(f"measure '{name}' unknown (known: {', '.join(MEASURES)})")
    measure = MEASURES[name]
    p = param_float(step, "p", 2.0) if measure == 4 else 2.0
    if measure == 4 and not p > 0:
        raise ValueError(f"minkowski p must be > 0, got {p}")
    t = table(step, "fields")
    weight = writable(f64(t["weight"]))
    compare = writable(i64(t["compare"]))
    scale = writable(f64(t["scale"]))
    missing_weight = writable(f64(t["missing_weight"]))
    if not (len(weight) == len(compare) == len(scale) == len(missing_weight) == n_inputs):
        raise ValueError(f"fields table has {len(weight)} rows for {n_inputs} inputs")
    if ((compare < 0) | (compare > 3)).any():
        raise ValueError("fields.compare must be 0..3")
    expansion = bool(step.params.get("expansion", False))
    if expansion and (measure > 1 or (compare != 0).any() or (weight != 1.0).any()):
        raise ValueError("expansion needs (squared)euclidean, absDiff and unit weights")
    return weight, compare, scale, missing_weight, measure, p, expansion


def writable(a: np.ndarray) -> np.ndarray:
    """``a``, copied if read-only (tables read from Parquet may be): Numba compiles a
    separate specialization for read-only arrays, so every binding passes writable ones."""
    return a if a.flags.writeable else a.copy()


def points(t, n_inputs: int) -> np.ndarray:
    """The ``x_0 .. x_{f-1}`` columns of a table as a C-contiguous float64[rows, f]."""
    cols = [f64(t[f"x_{j}"]) for j in range(n_inputs)]
    rows = len(next(iter(t.values()))) if t else 0
    if not cols:
        return np.zeros((rows, 0))
    return np.ascontiguousarray(np.column_stack(cols))


@register_op("clustering", family="clustering")
def bind_clustering(step: Step, ctx: BindContext) -> Bound:
    f = len(step.inputs)
    weight, compare, scale, qw, measure, p, expansion = bind_distance(step, f)
    centers = points(table(step, "centers"), f)
    k = centers.shape[0]
    if k == 0:
        raise ValueError("clustering needs at least one center")
    if len(step.outputs) != k + 1:
        raise ValueError(f"clustering with {k} centers has {k + 1} outputs, "
                         f"not {len(step.outputs)}")
    cc = np.array([float(squared_norm(centers[c])) for c in range(k)])
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), centers,
            weight, compare, scale, qw, measure, p, expansion, cc)
    return Bound(clustering_kernel, clustering_reference, args,
                 parallel=clustering_kernel_parallel,
                 parallel_min_rows=max(4096, 2_000_000 // max(1, k * max(f, 1))))
