"""Family ``svm``: support vector machines (kernel expansions and one-vs-one voting).

Ops
---
``svm`` v1
    One decision value per *machine*: ``y[m] = (sum over entries e of machine m, in table
    order, of coef[e] * K(x, sv[vector[e]])) + intercept[m]``, the sum starting from 0.0.
    ``K`` is computed once per (row, support vector) and shared by every machine.
    Table ``vectors``: one row per support vector, float64 columns ``x_0 .. x_{f-1}`` (one per
    input, step input order). Table ``coefficients`` (long form, sparse): int64 ``machine``,
    int64 ``vector`` (row of ``vectors``), float64 ``coef``. Table ``machines``: one row per
    output, float64 ``intercept``. Params ``kernel`` (``linear`` / ``poly`` / ``rbf`` /
    ``sigmoid``), ``gamma``, ``coef0``, ``degree`` and ``power`` (``pow``: libm ``pow``;
    ``squaring``: libsvm's ``powi``, repeated squaring over an integer degree).
``svm_vote`` v1
    One-vs-one voting over ``k`` machine values. Table ``machines`` (``k`` rows): int64
    ``first``, int64 ``second`` (class indices), float64 ``threshold``. Machine ``m`` votes
    for ``first[m]`` if ``x[m] > threshold[m]`` (``compare = "gt"``) or ``x[m] < threshold[m]``
    (``compare = "lt"``), otherwise for ``second[m]``. Outputs ``n_classes`` scores then one
    label column (class index): ``scores`` is ``count`` (votes), ``fraction`` (votes / k) or
    ``ovr_confidence`` (scikit-learn's one-vs-rest decision: ``votes + s / (3 * (|s| + 1))``
    with ``s[first[m]] -= x[m]``, ``s[second[m]] += x[m]`` in machine order from 0.0). The
    label is the class with the most votes; ties go to the lowest class index (``tie =
    "lowest"``, libsvm) or to the class whose first vote came earliest (``"first_voted"``,
    JPMML). A NaN machine value makes every output of that row NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, param_choice, param_float, table

KERNELS = {"linear": 0, "poly": 1, "rbf": 2, "sigmoid": 3}
POWERS = {"pow": 0, "squaring": 1}
COMPARES = {"gt": 0, "lt": 1}
TIES = {"lowest": 0, "first_voted": 1}
SCORES = {"count": 0, "fraction": 1, "ovr_confidence": 2}

#: rows per parallel work item, and the batch size from which the parallel kernel is used
BLOCK_ROWS = 256
PARALLEL_MIN_ROWS = 4096


# --- svm -------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _powi(base, times):
    # libsvm's powi: square-and-multiply over the bits of the (non-negative) degree
    tmp = base
    ret = 1.0
    t = times
    while t > 0:
        if t % 2 == 1:
            ret *= tmp
        tmp = tmp * tmp
        t //= 2
    return ret


@njit(cache=True, nogil=True, error_model="numpy")
def _svm_rows(ws, lo, hi, in_cols, out_cols, vectors, ptr, vec, coef, intercept, kind, gamma,
              coef0, degree, power):
    nf = in_cols.shape[0]
    nsv = vectors.shape[0]
    k = out_cols.shape[0]
    x = np.empty(nf)
    kv = np.empty(nsv)
    ideg = int(degree)
    for i in range(lo, hi):
        for f in range(nf):
            x[f] = ws[i, in_cols[f]]
        for s in range(nsv):
            acc = 0.0
            if kind == 2:
                for f in range(nf):
                    d = x[f] - vectors[s, f]
                    acc += d * d
                kv[s] = math.exp(-gamma * acc)
                continue
            for f in range(nf):
                acc += x[f] * vectors[s, f]
            if kind == 0:
                kv[s] = acc
            elif kind == 1:
                t = gamma * acc + coef0
                kv[s] = _powi(t, ideg) if power == 1 else math.pow(t, degree)
            else:
                kv[s] = math.tanh(gamma * acc + coef0)
        for m in range(k):
            acc = 0.0
            for e in range(ptr[m], ptr[m + 1]):
                acc += coef[e] * kv[vec[e]]
            ws[i, out_cols[m]] = acc + intercept[m]


@njit(cache=True, nogil=True, error_model="numpy")
def svm_kernel(ws, in_cols, out_cols, vectors, ptr, vec, coef, intercept, kind, gamma, coef0,
               degree, power):
    _svm_rows(ws, 0, ws.shape[0], in_cols, out_cols, vectors, ptr, vec, coef, intercept, kind,
              gamma, coef0, degree, power)
    return -1


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def svm_parallel(ws, in_cols, out_cols, vectors, ptr, vec, coef, intercept, kind, gamma, coef0,
                 degree, power):
    n = ws.shape[0]
    n_blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        _svm_rows(ws, b * BLOCK_ROWS, min(n, (b + 1) * BLOCK_ROWS), in_cols, out_cols, vectors,
                  ptr, vec, coef, intercept, kind, gamma, coef0, degree, power)
    return -1


def _powi_reference(base: np.ndarray, times: int) -> np.ndarray:
    tmp, ret, t = base.copy(), np.ones_like(base), times
    while t > 0:
        if t % 2 == 1:
            ret = ret * tmp
        tmp = tmp * tmp
        t //= 2
    return ret


def svm_reference(ws, in_cols, out_cols, vectors, ptr, vec, coef, intercept, kind, gamma, coef0,
                  degree, power):
    """NumPy version of :func:`svm_kernel`: ``ws`` (n, c); ``vectors`` (n_sv, f); ``ptr``
    (k + 1,) offsets of each machine's entries in ``vec`` / ``coef``."""
    X = ws[:, in_cols]
    acc = np.zeros((X.shape[0], vectors.shape[0]))
    for f in range(X.shape[1]):  # per feature, in order: the kernel's summation order
        if kind == 2:
            d = X[:, f : f + 1] - vectors[None, :, f]
            acc += d * d
        else:
            acc += X[:, f : f + 1] * vectors[None, :, f]
    if kind == 2:
        K = np.exp(-gamma * acc)
    elif kind == 0:
        K = acc
    elif kind == 1:
        t = gamma * acc + coef0
        K = _powi_reference(t, int(degree)) if power == 1 else np.power(t, degree)
    else:
        K = np.tanh(gamma * acc + coef0)
    for m in range(out_cols.shape[0]):
        y = np.zeros(X.shape[0])
        for e in range(ptr[m], ptr[m + 1]):
            y += coef[e] * K[:, vec[e]]
        ws[:, out_cols[m]] = y + intercept[m]
    return -1


@register_op("svm", family="svm")
def bind_svm(step: Step, ctx: BindContext) -> Bound:
    nf, k = len(step.inputs), len(step.outputs)
    vt = table(step, "vectors")
    vectors = np.ascontiguousarray(
        np.column_stack([f64(vt[f"x_{f}"]) for f in range(nf)]) if nf else
        np.zeros((len(next(iter(vt.values()), [])), 0)))
    ct = table(step, "coefficients")
    machine, vec, coef = i64(ct["machine"]), i64(ct["vector"]), f64(ct["coef"])
    intercept = f64(table(step, "machines")["intercept"])
    if intercept.shape[0] != k:
        raise ValueError(f"svm step '{step.name}': {intercept.shape[0]} machines for {k} outputs")
    if machine.size and (machine.min() < 0 or machine.max() >= k):
        raise ValueError(f"svm step '{step.name}': coefficient machine index out of range")
    if vec.size and (vec.min() < 0 or vec.max() >= vectors.shape[0]):
        raise ValueError(f"svm step '{step.name}': coefficient vector index out of range")
    order = np.argsort(machine, kind="stable")  # CSR by machine, table order kept within one
    ptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(machine, minlength=k), out=ptr[1:])
    kind = param_choice(step, "kernel", KERNELS)
    power = param_choice(step, "power", POWERS, "pow")
    degree = param_float(step, "degree", 1.0)
    if kind == 1 and power == 1 and (degree != int(degree) or degree < 0):
        raise ValueError(f"svm step '{step.name}': power='squaring' needs a non-negative "
                         f"integer degree, not {degree}")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), vectors, ptr,
            np.ascontiguousarray(vec[order]), np.ascontiguousarray(coef[order]), intercept, kind,
            param_float(step, "gamma", 1.0), param_float(step, "coef0", 0.0), degree, power)
    return Bound(svm_kernel, svm_reference, args, parallel=svm_parallel,
                 parallel_min_rows=PARALLEL_MIN_ROWS)


# --- svm_vote --------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def svm_vote_kernel(ws, in_cols, out_cols, first, second, threshold, compare, tie, scores):
    n = ws.shape[0]
    k = in_cols.shape[0]
    nc = out_cols.shape[0] - 1
    votes = np.empty(nc)
    s = np.empty(nc)
    firstvote = np.empty(nc, dtype=np.int64)
    for i in range(n):
        bad = False
        for c in range(nc):
            votes[c] = 0.0
            s[c] = 0.0
            firstvote[c] = k
        for m in range(k):
            x = ws[i, in_cols[m]]
            if x != x:
                bad = True
                break
            win = x > threshold[m] if compare == 0 else x < threshold[m]
            c = first[m] if win else second[m]
            votes[c] += 1.0
            if firstvote[c] == k:
                firstvote[c] = m
            s[first[m]] -= x
            s[second[m]] += x
        if bad:
            for c in range(nc + 1):
                ws[i, out_cols[c]] = np.nan
            continue
        best = 0
        for c in range(1, nc):
            if votes[c] > votes[best] or (tie == 1 and votes[c] == votes[best]
                                          and firstvote[c] < firstvote[best]):
                best = c
        for c in range(nc):
            if scores == 0:
                ws[i, out_cols[c]] = votes[c]
            elif scores == 1:
                ws[i, out_cols[c]] = votes[c] / k
            else:
                ws[i, out_cols[c]] = votes[c] + s[c] / (3.0 * (abs(s[c]) + 1.0))
        ws[i, out_cols[nc]] = best
    return -1


def svm_vote_reference(ws, in_cols, out_cols, first, second, threshold, compare, tie, scores):
    """NumPy version of :func:`svm_vote_kernel`: ``ws`` (n, c); ``first`` / ``second`` /
    ``threshold`` (k,); ``out_cols`` (n_classes + 1,)."""
    X = ws[:, in_cols]
    n, k = X.shape
    nc = out_cols.shape[0] - 1
    votes = np.zeros((n, nc))
    s = np.zeros((n, nc))
    firstvote = np.full((n, nc), k)
    rows = np.arange(n)
    for m in range(k):
        x = X[:, m]
        win = x > threshold[m] if compare == 0 else x < threshold[m]
        c = np.where(win, first[m], second[m])
        votes[rows, c] += 1.0
        fresh = firstvote[rows, c] == k
        firstvote[rows[fresh], c[fresh]] = m
        s[:, first[m]] -= x
        s[:, second[m]] += x
    key = votes * (k + 1) - firstvote if tie == 1 else votes
    best = np.argmax(key, axis=1).astype(np.float64)  # first maximum: lowest index
    if scores == 0:
        out = votes
    elif scores == 1:
        out = votes / k
    else:
        out = votes + s / (3.0 * (np.abs(s) + 1.0))
    res = np.column_stack([out, best])
    res[np.isnan(X).any(axis=1)] = np.nan
    ws[:, out_cols] = res
    return -1


@register_op("svm_vote", family="svm")
def bind_svm_vote(step: Step, ctx: BindContext) -> Bound:
    t = table(step, "machines")
    first, second, thr = i64(t["first"]), i64(t["second"]), f64(t["threshold"])
    k, nc = len(step.inputs), len(step.outputs) - 1
    if first.shape[0] != k or nc < 1:
        raise ValueError(f"svm_vote step '{step.name}': {first.shape[0]} machines for {k} "
                         f"inputs, {nc + 1} outputs")
    if k and (min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= nc):
        raise ValueError(f"svm_vote step '{step.name}': class index out of range")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), first, second,
            thr, param_choice(step, "compare", COMPARES), param_choice(step, "tie", TIES, "lowest"),
            param_choice(step, "scores", SCORES, "count"))
    return Bound(svm_vote_kernel, svm_vote_reference, args)


# --- svm_probability -------------------------------------------------------------------------
# libsvm's svm_predict_probability (scikit-learn's SVC / NuSVC ``predict_proba``): Platt
# sigmoids of the pairwise decisions, clipped, then coupled into class probabilities by
# multiclass_probability (Wu, Lin & Weng 2004, method 2), for two classes too (scikit-learn's
# libsvm has no two-class shortcut). Every operation follows svm.cpp's order, so results are
# those of libsvm up to libm's exp.
MIN_PROB = 1e-7


@njit(cache=True, nogil=True, error_model="numpy")
def _sigmoid_predict(x, a, b):
    # libsvm's sigmoid_predict, the form that avoids cancellation in 1 - p
    f = x * a + b
    if f >= 0:
        return math.exp(-f) / (1.0 + math.exp(-f))
    return 1.0 / (1.0 + math.exp(f))


@njit(cache=True, nogil=True, error_model="numpy")
def _couple(r, p, q, qp):
    """libsvm's multiclass_probability: ``r`` (k, k) pairwise probabilities -> ``p`` (k,)."""
    k = np.int64(p.shape[0])
    max_iter = max(np.int64(100), k)
    eps = 0.005 / k
    for t in range(k):
        p[t] = 1.0 / k
        q[t, t] = 0.0
        for j in range(t):
            q[t, t] += r[j, t] * r[j, t]
            q[t, j] = q[j, t]
        for j in range(t + 1, k):
            q[t, t] += r[j, t] * r[j, t]
            q[t, j] = -r[j, t] * r[t, j]
    for _ in range(max_iter):
        # stopping condition, with Qp and pQp recomputed (libsvm: for numerical accuracy)
        pqp = 0.0
        for t in range(k):
            qp[t] = 0.0
            for j in range(k):
                qp[t] += q[t, j] * p[j]
            pqp += p[t] * qp[t]
        max_error = 0.0
        for t in range(k):
            error = abs(qp[t] - pqp)
            if error > max_error:
                max_error = error
        if max_error < eps:
            break
        for t in range(k):
            diff = (-qp[t] + pqp) / q[t, t]
            p[t] += diff
            pqp = (pqp + diff * (diff * q[t, t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff)
            for j in range(k):
                qp[j] = (qp[j] + diff * q[t, j]) / (1.0 + diff)
                p[j] /= 1.0 + diff


@njit(cache=True, nogil=True, error_model="numpy")
def svm_probability_kernel(ws, in_cols, out_cols, first, second, a, b, min_prob):
    n = np.int64(ws.shape[0])
    m_count = np.int64(in_cols.shape[0])
    k = np.int64(out_cols.shape[0])
    r = np.zeros((k, k))
    q = np.zeros((k, k))
    p = np.empty(k)
    qp = np.empty(k)
    hi = 1.0 - min_prob
    for i in range(n):
        bad = False
        for m in range(m_count):
            x = ws[i, in_cols[m]]
            if x != x:
                bad = True
                break
            s = _sigmoid_predict(x, a[m], b[m])
            s = s if s > min_prob else min_prob  # libsvm: min(max(s, min_prob), 1 - min_prob)
            s = s if s < hi else hi
            r[first[m], second[m]] = s
            r[second[m], first[m]] = 1.0 - s
        if bad:
            for c in range(k):
                ws[i, out_cols[c]] = np.nan
            continue
        _couple(r, p, q, qp)
        for c in range(k):
            ws[i, out_cols[c]] = p[c]
    return -1


_libm_exp = np.vectorize(math.exp, otypes=[np.float64])


def svm_probability_reference(ws, in_cols, out_cols, first, second, a, b, min_prob):
    """NumPy version of :func:`svm_probability_kernel`, vectorised over rows: the same
    operations in the same order per row, a row leaving the iteration once it meets libsvm's
    stopping condition. ``first`` / ``second`` / ``a`` / ``b`` (m,); ``out_cols`` (k,)."""
    X = ws[:, in_cols]
    n, k = X.shape[0], out_cols.shape[0]
    f = X * a[None, :] + b[None, :]
    # libm's exp (as libsvm and the kernel call it), not NumPy's SIMD exp, which differs in
    # the last ulp; only the branch libsvm takes is evaluated (no overflow in the other)
    e = _libm_exp(np.where(f >= 0, -f, f))
    s = np.where(f >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
    s = np.where(s > min_prob, s, min_prob)
    s = np.where(s < 1.0 - min_prob, s, 1.0 - min_prob)
    r = np.zeros((n, k, k))
    r[:, first, second] = s
    r[:, second, first] = 1.0 - s
    q = np.zeros((n, k, k))
    for t in range(k):
        for j in range(t):
            q[:, t, t] += r[:, j, t] * r[:, j, t]
            q[:, t, j] = q[:, j, t]
        for j in range(t + 1, k):
            q[:, t, t] += r[:, j, t] * r[:, j, t]
            q[:, t, j] = -r[:, j, t] * r[:, t, j]
    p = np.full((n, k), 1.0 / k)
    active = ~np.isnan(X).any(axis=1)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        qp = np.zeros((n, k))
        pqp = np.zeros(n)
        for t in range(k):
            for j in range(k):
                qp[:, t] += q[:, t, j] * p[:, j]
            pqp += p[:, t] * qp[:, t]
        max_error = np.zeros(n)
        for t in range(k):
            max_error = np.maximum(max_error, np.abs(qp[:, t] - pqp))
        active &= ~(max_error < eps)
        if not active.any():
            break
        for t in range(k):
            with np.errstate(divide="ignore", invalid="ignore"):  # rows that have stopped
                diff = np.where(active, (-qp[:, t] + pqp) / q[:, t, t], 0.0)
            p[:, t] = np.where(active, p[:, t] + diff, p[:, t])
            new_pqp = (pqp + diff * (diff * q[:, t, t] + 2.0 * qp[:, t])) / (1.0 + diff) / (
                1.0 + diff)
            pqp = np.where(active, new_pqp, pqp)
            for j in range(k):
                qp[:, j] = np.where(active, (qp[:, j] + diff * q[:, t, j]) / (1.0 + diff),
                                    qp[:, j])
                p[:, j] = np.where(active, p[:, j] / (1.0 + diff), p[:, j])
    p[np.isnan(X).any(axis=1)] = np.nan
    ws[:, out_cols] = p
    return -1


@register_op("svm_probability", family="svm")
def bind_svm_probability(step: Step, ctx: BindContext) -> Bound:
    """``svm_probability`` v1: class probabilities from one-vs-one machine values.

    Table ``machines`` (one row per input): int64 ``first``, int64 ``second`` (class indices),
    float64 ``a``, ``b``. Every unordered pair of the ``len(outputs)`` classes appears exactly
    once. Param ``min_prob`` (default 1e-7). See docs/bundle-format.md §6.9c.
    """
    t = table(step, "machines")
    first, second = i64(t["first"]), i64(t["second"])
    a, b = f64(t["a"]), f64(t["b"])
    m, k = len(step.inputs), len(step.outputs)
    if k < 2 or not (first.shape[0] == second.shape[0] == a.shape[0] == b.shape[0] == m):
        raise ValueError(f"svm_probability step '{step.name}': {first.shape[0]} machines for "
                         f"{m} inputs and {k} classes")
    if m and (min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= k):
        raise ValueError(f"svm_probability step '{step.name}': class index out of range")
    # int64 pair keys: k*k cannot overflow for any k an int64 index table can hold rows for
    pairs = np.minimum(first, second) * np.int64(k) + np.maximum(first, second)
    if (first == second).any() or np.unique(pairs).shape[0] != m or m != k * (k - 1) // 2:
        raise ValueError(f"svm_probability step '{step.name}': the machines must pair every "
                         f"two of the {k} classes exactly once")
    min_prob = param_float(step, "min_prob", MIN_PROB)
    if not 0.0 <= min_prob < 0.5:
        raise ValueError(f"svm_probability step '{step.name}': min_prob={min_prob} outside "
                         "[0, 0.5)")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), first, second,
            a, b, min_prob)
    return Bound(svm_probability_kernel, svm_probability_reference, args)
