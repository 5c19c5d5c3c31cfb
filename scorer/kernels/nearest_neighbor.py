"""Family ``nearest_neighbor``: k-nearest-neighbour models (scikit-learn KNeighbors*, PMML
NearestNeighborModel). Distances come from the ``clustering`` family's shared functions.

Op ``nearest_neighbor`` version 1 (normative)
---------------------------------------------
Step inputs are the ``f`` KNN inputs. Distances to every training instance are computed
exactly as for the ``clustering`` op (params ``measure``, ``p``, ``expansion`` and table
``fields``, same meaning; see :mod:`scorer.kernels.clustering`).

params
    ``k`` (int >= 1): number of neighbours.
    ``threshold`` (number >= 0): weighted methods weigh a neighbour at distance ``d`` by
    ``1 / (d + threshold)``.
    ``zero_rule`` (bool): scikit-learn's ``weights='distance'``: when some neighbour is at
    distance 0, the neighbours at distance 0 weigh 1 and the others 0.
    ``search`` (string, default ``"stable"``): how neighbours at equal distances are chosen
    (below): ``"stable"`` or ``"heap"`` (scikit-learn's brute-force search).
    ``too_few`` (string, default ``"nan"``): a row with fewer than ``k`` instances at a
    finite distance outputs ``"nan"`` where it lacks neighbours (below), or is refused
    (``"error"``: the row fails with an input error).

tables
    ``instances``: one row per training instance: float64 ``x_0 .. x_{f-1}``, float64 ``id``
    (the value the neighbour outputs hold), float64 ``y_0 .. y_{t-1}`` (target values: the
    number for a continuous target, the 0-based class index for a categorical one).
    ``targets``: one row per target: int32 ``n_classes`` (0: continuous), string ``method``
    (``average``, ``median``, ``weightedAverage`` for continuous targets; ``majorityVote``,
    ``weightedMajorityVote`` for categorical ones).
    ``fields``: as for ``clustering``.

Neighbours (``search="stable"``): the ``k`` instances with the smallest distance, in
increasing distance; ties go to the instance that comes first in the table (a stable sort).
Instances at NaN or +inf distance are never neighbours, so a row may have fewer than ``k``.

``search="heap"`` (scikit-learn's ``ArgKmin``): the search compares the *reduced* distance,
the squared distance for ``euclidean`` (before the square root; the distance itself for the
other measures). A max-heap of ``k`` slots ``(v[0..k), idx[0..k))``, every ``v`` = +inf,
receives the instances in table order; an instance at reduced distance ``d`` enters only if
``d < v[0]``: it replaces the root (slot 0) and sinks: at slot ``c`` with children
``l = 2c + 1``, ``r = l + 1``: stop if ``l >= k``; if ``r >= k`` the candidate is ``l`` when
``v[l] > d``; else the candidate is ``l`` when ``v[l] >= v[r]`` and ``d < v[l]``, ``r`` when
``v[l] < v[r]`` and ``d < v[r]``; without a candidate stop; otherwise move the candidate up
to slot ``c`` and continue at the candidate's slot; finally store ``(d, j)`` at the slot
reached. The slots are then sorted by ``v`` with a stable insertion sort (slot order on
ties); the neighbours are the slots holding an instance, in that order. (Which instance a
tie at the ``k``-th distance keeps thus depends on the heap, as in scikit-learn.)

Outputs, in order: ``k`` columns ``id`` of the 1st .. k-th neighbour (NaN where there is
none); then, per target in table order: a continuous target -> one column: ``average`` the
mean of the neighbours' ``y`` (summed in neighbour order, divided by their count),
``median`` their median (mean of the two middle values for an even count),
``weightedAverage`` ``sum(w * y) / sum(w)``; a categorical target with ``c`` classes ->
``c`` probability columns ``votes[j] / sum(votes)`` (votes added in neighbour order, the sum
in class order), each neighbour voting 1 (``majorityVote``) or ``w`` (weighted) for its
class, then one column with the winning class index: the largest vote, the smallest index on
ties. A row without neighbours outputs NaN throughout. A NaN ``y`` propagates. With
``too_few="error"`` a row with fewer than ``k`` neighbours is refused instead.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, param_float, table
from .clustering import (
    bind_distance,
    expanded_distance,
    point_distance,
    points,
    reference_distances,
    row_adjustment,
    squared_norm,
    writable,
)

METHODS = {"average": 0, "median": 1, "weightedAverage": 2, "majorityVote": 3,
           "weightedMajorityVote": 4}


@njit(cache=True, nogil=True, error_model="numpy")
def _place(bd, bi, pos, d, j):
    """Put ``(d, j)`` into sorted ``bd[:pos + 1]`` whose slot ``pos`` is free, after every entry
    at an equal distance (stable: ties keep their order)."""
    while pos > 0 and bd[pos - 1] > d:
        bd[pos] = bd[pos - 1]
        bi[pos] = bi[pos - 1]
        pos -= 1
    bd[pos] = d
    bi[pos] = j


@njit(cache=True, nogil=True, error_model="numpy")
def _insert(bd, bi, d, j):
    """Insert instance ``j`` at distance ``d`` into the sorted buffer (kept if it beats the
    last entry; after every entry at an equal distance, so ties keep instance order)."""
    k = bd.shape[0]
    if d < bd[k - 1]:
        _place(bd, bi, k - 1, d, j)


@njit(cache=True, nogil=True, error_model="numpy")
def _heap_push(bd, bi, d, j):
    """scikit-learn's fixed-size max-heap push (``sklearn.utils._heap``); ``d < bd[0]``."""
    k = bd.shape[0]
    bd[0] = d
    bi[0] = j
    c = 0
    while True:
        lc = 2 * c + 1
        rc = lc + 1
        if lc >= k:
            break
        if rc >= k:
            if bd[lc] > d:
                s = lc
            else:
                break
        elif bd[lc] >= bd[rc]:
            if d < bd[lc]:
                s = lc
            else:
                break
        elif d < bd[rc]:
            s = rc
        else:
            break
        bd[c] = bd[s]
        bi[c] = bi[s]
        c = s
    bd[c] = d
    bi[c] = j


@njit(cache=True, nogil=True, error_model="numpy")
def _insertion_sort(bd, bi):
    """Stable sort of the heap slots by distance (scikit-learn's sort for k <= 15)."""
    for a in range(1, bd.shape[0]):
        _place(bd, bi, a, bd[a], bi[a])


@njit(cache=True, nogil=True, error_model="numpy")
def _weights(bd, m, threshold, zero_rule, w):
    zero = False
    if zero_rule:
        for r in range(m):
            if bd[r] == 0.0:
                zero = True
    for r in range(m):
        if zero:
            w[r] = 1.0 if bd[r] == 0.0 else 0.0
        else:
            w[r] = 1.0 / (bd[r] + threshold)


@njit(cache=True, nogil=True, error_model="numpy")
def _nn_row(ws, i, in_cols, out_cols, inst, ids, ys, weight, compare, scale, missing_weight,
            measure, p, expansion, cc, threshold, zero_rule, n_classes, methods, starts,
            heap, refuse, x, bd, bi, w, tmp, votes):
    """Score row ``i``; returns True when the row is refused (``too_few="error"``)."""
    f = in_cols.shape[0]
    k = bd.shape[0]
    for j in range(f):
        x[j] = ws[i, in_cols[j]]
    for r in range(k):
        bd[r] = math.inf
        bi[r] = -1
    # the heap search compares squared euclidean distances (scikit-learn's reduced distance)
    reduced = 1 if heap and measure == 0 else measure
    if expansion:
        xx = squared_norm(x)
        for j in range(inst.shape[0]):
            d = expanded_distance(x, inst[j], xx, cc[j], reduced)
            if not heap:
                _insert(bd, bi, d, j)
            elif d < bd[0]:
                _heap_push(bd, bi, d, j)
    else:
        adj = row_adjustment(x, missing_weight)
        if adj == adj:
            for j in range(inst.shape[0]):
                d = point_distance(x, inst[j], weight, compare, scale, reduced, p, adj)
                if not heap:
                    _insert(bd, bi, d, j)
                elif d < bd[0]:
                    _heap_push(bd, bi, d, j)
    if heap:
        _insertion_sort(bd, bi)
        if reduced != measure:
            for r in range(k):
                bd[r] = math.sqrt(bd[r])
    m = 0
    while m < k and bi[m] >= 0:
        m += 1
    if refuse and m < k:
        return True
    for r in range(k):
        ws[i, out_cols[r]] = ids[bi[r]] if r < m else math.nan
    _weights(bd, m, threshold, zero_rule, w)
    for t in range(n_classes.shape[0]):
        o = starts[t]
        c = n_classes[t]
        meth = methods[t]
        if m == 0:
            for q in range(c + 1 if c > 0 else 1):
                ws[i, out_cols[o + q]] = math.nan
            continue
        if c == 0:
            if meth == 0:
                s = 0.0
                for r in range(m):
                    s += ys[bi[r], t]
                ws[i, out_cols[o]] = s / m
            elif meth == 2:
                s = 0.0
                sw = 0.0
                for r in range(m):
                    s += ys[bi[r], t] * w[r]
                for r in range(m):
                    sw += w[r]
                ws[i, out_cols[o]] = s / sw
            else:
                nan = False
                for r in range(m):
                    tmp[r] = ys[bi[r], t]
                    if math.isnan(tmp[r]):
                        nan = True
                if nan:
                    ws[i, out_cols[o]] = math.nan
                else:
                    srt = np.sort(tmp[:m])
                    h = m // 2
                    ws[i, out_cols[o]] = srt[h] if m % 2 == 1 else (srt[h - 1] + srt[h]) / 2.0
        else:
            for q in range(c):
                votes[q] = 0.0
            bad = False
            for r in range(m):
                y = ys[bi[r], t]
                if not (y >= 0.0 and y < c):
                    bad = True
                    break
                votes[int(y)] += 1.0 if meth == 3 else w[r]
            if bad:
                for q in range(c + 1):
                    ws[i, out_cols[o + q]] = math.nan
                continue
            total = 0.0
            for q in range(c):
                total += votes[q]
            best = 0
            for q in range(c):
                ws[i, out_cols[o + q]] = votes[q] / total
                if votes[q] > votes[best]:
                    best = q
            ws[i, out_cols[o + c]] = float(best)
    return False


@njit(cache=True, nogil=True, error_model="numpy")
def nearest_neighbor_kernel(ws, in_cols, out_cols, inst, ids, ys, weight, compare, scale,
                            missing_weight, measure, p, expansion, cc, k, threshold, zero_rule,
                            n_classes, methods, starts, heap, refuse):
    c_max = 1
    for t in range(n_classes.shape[0]):
        c_max = max(c_max, n_classes[t])
    x = np.empty(in_cols.shape[0])
    bd = np.empty(k)
    bi = np.empty(k, dtype=np.int64)
    w = np.empty(k)
    tmp = np.empty(k)
    votes = np.empty(c_max)
    for i in range(ws.shape[0]):
        if _nn_row(ws, i, in_cols, out_cols, inst, ids, ys, weight, compare, scale,
                   missing_weight, measure, p, expansion, cc, threshold, zero_rule, n_classes,
                   methods, starts, heap, refuse, x, bd, bi, w, tmp, votes):
            return i
    return -1


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def nearest_neighbor_kernel_parallel(ws, in_cols, out_cols, inst, ids, ys, weight, compare,
                                     scale, missing_weight, measure, p, expansion, cc, k,
                                     threshold, zero_rule, n_classes, methods, starts, heap,
                                     refuse):
    c_max = 1
    for t in range(n_classes.shape[0]):
        c_max = max(c_max, n_classes[t])
    n = ws.shape[0]
    block = 64
    n_blocks = (n + block - 1) // block
    first_bad = np.full(n_blocks, n, dtype=np.int64)  # per block: its first refused row
    for b in prange(n_blocks):
        x = np.empty(in_cols.shape[0])
        bd = np.empty(k)
        bi = np.empty(k, dtype=np.int64)
        w = np.empty(k)
        tmp = np.empty(k)
        votes = np.empty(c_max)
        for i in range(b * block, min(n, (b + 1) * block)):
            if _nn_row(ws, i, in_cols, out_cols, inst, ids, ys, weight, compare, scale,
                       missing_weight, measure, p, expansion, cc, threshold, zero_rule,
                       n_classes, methods, starts, heap, refuse, x, bd, bi, w, tmp, votes):
                first_bad[b] = i
                break
    bad = n
    for b in range(n_blocks):
        bad = min(bad, first_bad[b])
    return bad if bad < n else -1


def nearest_neighbor_reference(ws, in_cols, out_cols, inst, ids, ys, weight, compare, scale,
                               missing_weight, measure, p, expansion, cc, k, threshold,
                               zero_rule, n_classes, methods, starts, heap, refuse):
    X = ws[:, in_cols]
    n = X.shape[0]
    reduced = 1 if heap and measure == 0 else measure
    with np.errstate(over="ignore", invalid="ignore"):  # huge inputs: inf distances, by spec
        d = reference_distances(X, inst, weight, compare, scale, missing_weight, reduced, p,
                                expansion)
    usable = d < np.inf  # False for NaN and +inf
    key = np.where(usable, d, np.inf)
    if heap:
        order = np.array([_heap_reference(row, k) for row in key], dtype=np.int64).reshape(
            n, k)
    else:
        order = np.argsort(key, axis=1, kind="stable")[:, :k]  # stable: ties in instance order
    dist = np.take_along_axis(key, np.maximum(order, 0), axis=1)
    dist[order < 0] = np.inf
    if reduced != measure:
        dist = np.sqrt(dist)
    m = np.minimum((dist < np.inf).sum(axis=1), k)
    if refuse and (m < k).any():
        return int(np.flatnonzero(m < k)[0])
    out = np.full((n, len(out_cols)), np.nan)
    for i in range(n):
        mi = int(m[i])
        nb = order[i, :mi]
        di = dist[i, :mi]
        out[i, :mi] = ids[nb]
        if mi == 0:
            continue
        if zero_rule and (di == 0.0).any():
            w = (di == 0.0).astype(np.float64)
        else:
            with np.errstate(divide="ignore"):
                w = 1.0 / (di + threshold)
        for t in range(len(n_classes)):
            o, c, meth = int(starts[t]), int(n_classes[t]), int(methods[t])
            y = ys[nb, t]
            if c == 0:
                if meth == 0:
                    out[i, o] = _seq_sum(y) / mi
                elif meth == 2:
                    out[i, o] = _seq_sum(y * w) / _seq_sum(w)
                else:
                    out[i, o] = np.nan if np.isnan(y).any() else float(np.median(y))
                continue
            if not ((y >= 0) & (y < c)).all():
                continue  # NaN outputs
            votes = np.zeros(c)
            for r in range(mi):
                votes[int(y[r])] += 1.0 if meth == 3 else w[r]
            out[i, o:o + c] = votes / _seq_sum(votes)
            out[i, o + c] = float(np.argmax(votes))
    ws[:, out_cols] = out
    return -1


def _heap_reference(d: np.ndarray, k: int) -> list[int]:
    """The ``heap`` search spelled out: scikit-learn's max-heap fed in instance order, then
    a stable sort of the slots. Returns the ``k`` slot indices (-1: empty slot)."""
    v = [math.inf] * k
    idx = [-1] * k
    for j, dj in enumerate(d.tolist()):
        if not dj < v[0]:
            continue
        c = 0
        while True:
            kids = [q for q in (2 * c + 1, 2 * c + 2) if q < k]
            if not kids:
                break
            big = kids[0] if len(kids) == 1 or v[kids[0]] >= v[kids[1]] else kids[1]
            if not dj < v[big]:
                break
            v[c], idx[c] = v[big], idx[big]
            c = big
        v[c], idx[c] = dj, j
    slots = sorted(range(k), key=lambda s: v[s])  # Python's sort is stable
    return [idx[s] for s in slots]


def _seq_sum(v: np.ndarray) -> float:
    s = 0.0
    for a in v:
        s += float(a)
    return s


@register_op("nearest_neighbor", family="nearest_neighbor")
def bind_nearest_neighbor(step: Step, ctx: BindContext) -> Bound:
    f = len(step.inputs)
    weight, compare, scale, qw, measure, p, expansion = bind_distance(step, f)
    t_inst = table(step, "instances")
    inst = points(t_inst, f)
    n = inst.shape[0]
    ids = writable(f64(t_inst["id"]))
    tt = table(step, "targets")
    n_classes = writable(i64(tt["n_classes"]))
    names = [str(m) for m in tt["method"]]
    nt = len(n_classes)
    ys = (np.ascontiguousarray(np.column_stack([f64(t_inst[f"y_{t}"]) for t in range(nt)]))
          if nt else np.zeros((n, 0)))
    k = int(step.params["k"])
    if k < 1 or n == 0:
        raise ValueError(f"nearest_neighbor needs k >= 1 and instances (k={k}, {n} instances)")
    methods = np.empty(nt, dtype=np.int64)
    starts = np.empty(nt, dtype=np.int64)
    o = k
    for t in range(nt):
        if names[t] not in METHODS:
            raise ValueError(f"scoring method '{names[t]}' unknown (known: {', '.join(METHODS)})")
        methods[t] = METHODS[names[t]]
        if (n_classes[t] == 0) != (methods[t] <= 2) or n_classes[t] < 0:
            raise ValueError(f"target {t}: method '{names[t]}' does not fit n_classes "
                             f"{n_classes[t]}")
        starts[t] = o
        o += 1 if n_classes[t] == 0 else n_classes[t] + 1
    if len(step.outputs) != o:
        raise ValueError(f"nearest_neighbor has {len(step.outputs)} outputs, expected {o}")
    threshold = param_float(step, "threshold", 0.0)
    zero_rule = bool(step.params.get("zero_rule", False))
    cc = np.array([float(squared_norm(inst[j])) for j in range(n)]) if expansion else \
        np.zeros(n)
    search = str(step.params.get("search", "stable"))
    too_few = str(step.params.get("too_few", "nan"))
    if search not in ("stable", "heap"):
        raise ValueError(f"nearest_neighbor search '{search}' unknown (known: stable, heap)")
    if too_few not in ("nan", "error"):
        raise ValueError(f"nearest_neighbor too_few '{too_few}' unknown (known: nan, error)")
    in_cols = ctx.cols(step.inputs, step=step)
    args = (in_cols, ctx.cols(step.outputs, step=step), inst, ids, ys, weight, compare, scale,
            qw, measure, p, expansion, cc, k, threshold, zero_rule, n_classes, methods, starts,
            search == "heap", too_few == "error")
    return Bound(nearest_neighbor_kernel, nearest_neighbor_reference, args,
                 parallel=nearest_neighbor_kernel_parallel,
                 parallel_min_rows=max(512, 4_000_000 // max(1, n * max(f, 1))),
                 error=_too_few_error(step, in_cols, k), name=step.name)


def _too_few_error(step: Step, in_cols: np.ndarray, k: int):
    """The Bound's ``error(ws, row)`` for ``too_few="error"``: says why the row has no
    ``k`` nearest neighbours."""

    def error(ws: np.ndarray, row: int) -> Exception:
        x = ws[row, in_cols]
        big = int(np.argmax(np.where(np.isnan(x), -np.inf, np.abs(x))))
        if np.isnan(x).any():
            why = f"input '{step.inputs[int(np.flatnonzero(np.isnan(x))[0])]}' is missing"
        else:
            why = (f"input '{step.inputs[big]}' = {x[big]:.6g} is so large that the distances "
                   "overflow to inf")
        return InputError(
            f"row {row}: fewer than k={k} training instances are at a finite distance "
            f"({why}), so its {k} nearest neighbours are undefined; step '{step.name}' "
            "refuses the row (scikit-learn's own result there is arbitrary: it returns "
            "training instance 0 at distance inf)")

    return error
