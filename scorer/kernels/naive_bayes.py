"""Family ``naive_bayes``: naive Bayes classifiers (scikit-learn's five, PMML NaiveBayesModel).

Op ``naive_bayes`` version 1 (normative)
----------------------------------------
Step inputs are the model's features; step outputs are ``k`` class probabilities, in the
class order of the tables, optionally followed by the ``k`` joint log-likelihoods ``jll``
(the step then has ``2k`` outputs; scikit-learn's ``predict`` is the argmax of ``jll``).

Per row, class ``j``'s joint log-likelihood is ``jll[j] = (sum over inputs f, in input order,
of l[f, j]) + log_prior[j]``, the sum starting from 0.0 and skipping the inputs whose factor
is skipped (below). Then the ``jll`` are normalised into probabilities.

params
    ``n_classes`` (int ``k``)
        Number of classes, = number of outputs.
    ``density`` (``"log"`` or ``"probability"``)
        How a *continuous* factor (``gaussian``, ``poisson``) is computed: ``"log"``, the log
        density in closed form (scikit-learn); ``"probability"``, the density / probability
        ``p`` itself, replaced by ``threshold`` when ``p < threshold``, then ``l = ln(p)``
        (PMML). The two differ where ``p`` underflows to 0: ``"log"`` keeps the finite log
        density, ``"probability"`` gives ``ln(threshold)`` (``-inf`` for threshold 0).
    ``threshold`` (float, >= 0)
        The floor of continuous probabilities with ``density="probability"``; unused otherwise.
    ``missing`` (``"skip"`` or ``"error"``)
        A NaN input value: ``"skip"`` leaves that input's factor out of every class's sum
        (PMML: "missing values are ignored"); ``"error"`` refuses the row.
    ``normalize`` (``"logsumexp"`` or ``"softmax"``)
        With ``M = max_j jll[j]``:

        - ``"logsumexp"`` (scikit-learn): ``c`` = number of ``j`` with ``jll[j] == M``;
          ``s`` = sum, in class order from 0.0, of ``exp(jll[j] - h)`` over the other ``j``,
          with ``h = M`` if ``M`` is finite else ``0``; ``s = s / c`` unless ``s == 0``;
          ``L = (log1p(s) + ln(c)) + M``; ``y[j] = exp(jll[j] - L)``.
        - ``"softmax"`` (PMML): ``e[j] = exp(jll[j] - M)``, ``y[j] = e[j] / sum_j e[j]`` (sum
          in class order from 0.0).

        If any ``jll[j]`` is NaN every output is NaN. (All ``jll`` = -inf gives NaN too.)

tables
    ``classes``: ``k`` rows, float64 ``log_prior`` (any additive per-class constant).

    ``inputs``: one row per step input, in input order:

    - int8 ``kind``: 0 ``gaussian``, 1 ``poisson``, 2 ``linear``, 3 ``categorical``;
    - float64 ``binarize``: NaN for none; otherwise a non-missing ``x`` is first replaced by
      1.0 if ``x > binarize`` else 0.0 (scikit-learn's BernoulliNB);
    - bool ``truncate``: a non-missing ``x`` is first truncated toward zero (scikit-learn's
      CategoricalNB casts its input to integers);
    - int8 ``unknown`` (``categorical`` only): a value that matches no category row is
      0 skipped, 1 refused (the row cannot be scored);
    - float64 ``mean_0 .. mean_{k-1}``, ``variance_0 .. variance_{k-1}``,
      ``weight_0 .. weight_{k-1}``: the input's parameters for each class (0 where unused).

    ``categories`` (present iff an input is ``categorical``): one row per category of such an
    input: int32 ``input`` (position in the step's inputs), float64 ``value`` (the workspace
    value it matches by ``==``: the number, or for a string input the category's code, its
    index in the input's vocabulary), float64 ``log_p_0 .. log_p_{k-1}`` (the factor ``l``
    for each class, ``-inf`` allowed). An input never repeats a ``value``.

Factors, for a non-missing (and possibly binarized) value ``x``, ``m = mean_j``,
``v = variance_j`` (> 0), ``w = weight_j``:

- ``gaussian``: ``"log"``: ``l = -0.5 * ln(2 * pi * v) - 0.5 * ((x - m) ** 2 / v)``;
  ``"probability"``: ``z = (x - m) / sqrt(v)``,
  ``p = exp(-0.5 * z * z - (ln(sqrt(v)) + 0.5 * ln(2 * pi)))``.
- ``poisson`` (``m`` is the rate ``lambda`` >= 0): ``n = trunc(x)``; ``n < 0``: ``p = 0``
  (``l = -inf`` with ``"log"``); ``n == 0``: ``ln p = -lambda``; otherwise
  ``ln p = n * ln(lambda) - lambda - lgamma(n + 1)``; ``"log"`` uses ``l = ln p``,
  ``"probability"`` ``p = exp(ln p)``.
- ``linear``: ``l = x * w`` (multinomial / complement / Bernoulli event models).
- ``categorical``: ``l = log_p_j`` of the matching category row (no threshold: a producer that
  floors zero counts writes the floor's log into the table).

Outputs are always written (NaN rows included); the kernel returns the first refused row or -1.

Implementation
--------------
The per-(input, class) constants ``-0.5 * ln(2 pi v)``, ``sqrt(v)``,
``ln(sqrt(v)) + 0.5 * ln(2 pi)`` and ``ln(lambda)`` are computed once at bind time with NumPy and
shared by the Numba kernel and the NumPy reference. A categorical input whose values are
exactly ``0 .. m-1`` in table order is looked up by index instead of by scanning. The parallel
kernel scores blocks of rows on separate threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from ..errors import MissingValueError, UnknownCategoryError
from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, i64, param_choice, param_float, table

KINDS = {"gaussian": 0, "poisson": 1, "linear": 2, "categorical": 3}
DENSITY = {"log": 0, "probability": 1}
NORMALIZE = {"logsumexp": 0, "softmax": 1}
MISSING = {"skip": 0, "error": 1}
#: rows per parallel work item, and the batch size from which the parallel kernel is used
BLOCK_ROWS = 512
PARALLEL_MIN_ROWS = 4096
_HALF_LN_2PI = 0.5 * math.log(2.0 * math.pi)


# --- kernel ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _factor(kind, x, f, j, mean, weight, c0, c1, density, threshold):
    """Log factor of a continuous / linear input ``f`` for class ``j`` (see the module doc).

    The scoring loop inlines the gaussian and linear cases (Numba does not inline this call,
    which made them ~20x slower); this function is their definition and the poisson path."""
    if kind == 2:
        return x * weight[f, j]
    if kind == 0:
        if density == 0:
            d = x - mean[f, j]
            return c0[f, j] - 0.5 * (d * d / c1[f, j])
        z = (x - mean[f, j]) / c0[f, j]
        p = math.exp(-0.5 * z * z - c1[f, j])
    else:
        n = np.trunc(x)
        lam = mean[f, j]
        if n < 0.0:
            lp = -math.inf
        elif n == 0.0:
            lp = -lam
        else:
            lp = n * c0[f, j] - lam - math.lgamma(n + 1.0)
        if density == 0:
            return lp
        p = math.exp(lp)
    if p < threshold:
        p = threshold
    return math.log(p)


@njit(cache=True, nogil=True, error_model="numpy")
def _normalize(jll, out, normalize):
    k = jll.shape[0]
    m = jll[0]
    for j in range(k):
        if math.isnan(jll[j]):
            for t in range(k):
                out[t] = math.nan
            return
        if jll[j] > m:
            m = jll[j]
    if normalize == 1:
        s = 0.0
        for j in range(k):
            e = math.exp(jll[j] - m)
            out[j] = e
            s += e
        for j in range(k):
            out[j] = out[j] / s
        return
    h = m if math.isfinite(m) else 0.0
    c = 0.0
    s = 0.0
    for j in range(k):
        if jll[j] == m:
            c += 1.0
        else:
            s += math.exp(jll[j] - h)
    if s != 0.0:
        s = s / c
    lse = (math.log1p(s) + math.log(c)) + m
    for j in range(k):
        out[j] = math.exp(jll[j] - lse)


@njit(cache=True, nogil=True, error_model="numpy")
def _score_rows(ws, r0, r1, in_cols, out_cols, log_prior, kind, binarize, truncate, unknown,
                mean, weight, c0, c1, cat_start, cat_end, dense, cat_value, cat_logp, density,
                threshold, missing, normalize):
    k = log_prior.shape[0]
    emit_jll = out_cols.shape[0] == 2 * k
    nf = in_cols.shape[0]
    acc = np.empty(k)
    prob = np.empty(k)
    bad = -1
    for i in range(r0, r1):
        for j in range(k):
            acc[j] = 0.0
        refused = False
        for f in range(nf):
            x = ws[i, in_cols[f]]
            if math.isnan(x):
                if missing == 1:
                    refused = True
                    break
                continue
            b = binarize[f]
            if not math.isnan(b):
                x = 1.0 if x > b else 0.0
            if truncate[f]:
                x = np.trunc(x)
            kd = kind[f]
            if kd == 3:
                r = -1
                s0 = cat_start[f]
                if dense[f]:
                    if x >= 0.0 and x < cat_end[f] - s0 and x == math.floor(x):
                        r = s0 + int(x)
                else:
                    for t in range(s0, cat_end[f]):
                        if cat_value[t] == x:
                            r = t
                            break
                if r < 0:
                    if unknown[f] == 1:
                        refused = True
                        break
                    continue
                for j in range(k):
                    acc[j] += cat_logp[r, j]
            elif kd == 2:  # the common shapes inline (same operations as _factor)
                for j in range(k):
                    acc[j] += x * weight[f, j]
            elif kd == 0 and density == 0:
                for j in range(k):
                    d = x - mean[f, j]
                    acc[j] += c0[f, j] - 0.5 * (d * d / c1[f, j])
            elif kd == 0:
                for j in range(k):
                    z = (x - mean[f, j]) / c0[f, j]
                    p = math.exp(-0.5 * z * z - c1[f, j])
                    acc[j] += math.log(threshold if p < threshold else p)
            else:
                for j in range(k):
                    acc[j] += _factor(kd, x, f, j, mean, weight, c0, c1, density, threshold)
        if refused:
            if bad < 0:
                bad = i
            for j in range(out_cols.shape[0]):
                ws[i, out_cols[j]] = math.nan
            continue
        for j in range(k):
            acc[j] = acc[j] + log_prior[j]
        _normalize(acc, prob, normalize)
        for j in range(k):
            ws[i, out_cols[j]] = prob[j]
        if emit_jll:
            for j in range(k):
                ws[i, out_cols[k + j]] = acc[j]
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def naive_bayes_kernel(ws, in_cols, out_cols, log_prior, kind, binarize, truncate, unknown,
                       mean, weight, c0, c1, cat_start, cat_end, dense, cat_value, cat_logp,
                       density, threshold, missing, normalize):
    """Score every row of ``ws`` (float64, shape ``(n_rows, n_columns)``).

    ``in_cols`` (int64, ``(n_inputs,)``) and ``out_cols`` (int64, ``(k,)`` or ``(2k,)``) are
    workspace columns; ``mean``, ``weight``, ``c0``, ``c1`` are float64 ``(n_inputs, k)``
    (``c0``, ``c1``: the bind-time constants of :func:`constants`); ``cat_start`` /
    ``cat_end`` (int64, ``(n_inputs,)``) delimit each input's rows of ``cat_value``
    (``(m,)``) and ``cat_logp`` (``(m, k)``). Returns the first refused row, or -1.
    """
    return _score_rows(ws, 0, ws.shape[0], in_cols, out_cols, log_prior, kind, binarize,
                       truncate, unknown, mean, weight, c0, c1, cat_start, cat_end, dense,
                       cat_value, cat_logp, density, threshold, missing, normalize)


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def naive_bayes_parallel(ws, in_cols, out_cols, log_prior, kind, binarize, truncate, unknown,
                         mean, weight, c0, c1, cat_start, cat_end, dense, cat_value, cat_logp,
                         density, threshold, missing, normalize):
    n = ws.shape[0]
    n_blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    first = np.full(n_blocks, -1, dtype=np.int64)
    for b in prange(n_blocks):
        r0 = b * BLOCK_ROWS
        first[b] = _score_rows(ws, r0, min(r0 + BLOCK_ROWS, n), in_cols, out_cols, log_prior,
                               kind, binarize, truncate, unknown, mean, weight, c0, c1,
                               cat_start,
                               cat_end, dense, cat_value, cat_logp, density, threshold,
                               missing, normalize)
    for b in range(n_blocks):
        if first[b] >= 0:
            return first[b]
    return -1


# --- NumPy reference -------------------------------------------------------------------------
def naive_bayes_reference(ws, in_cols, out_cols, log_prior, kind, binarize, truncate, unknown,
                          mean, weight, c0, c1, cat_start, cat_end, dense, cat_value, cat_logp,
                          density, threshold, missing, normalize):
    """The same semantics, vectorised over rows with NumPy (``dense`` is not used)."""
    n, k = ws.shape[0], len(log_prior)
    jll = np.zeros((n, k))
    refused = np.zeros(n, dtype=bool)
    with np.errstate(all="ignore"):
        for f in range(len(in_cols)):
            x = ws[:, in_cols[f]].copy()
            miss = np.isnan(x)
            if missing == 1:
                refused |= miss
            if not np.isnan(binarize[f]):
                x = np.where(x > binarize[f], 1.0, 0.0)
            if truncate[f]:
                x = np.trunc(x)
            xx = x[:, None]
            if kind[f] == 3:
                rows = np.arange(cat_start[f], cat_end[f])
                hit = cat_value[rows][None, :] == x[:, None]
                found = hit.any(axis=1) & ~miss
                if unknown[f] == 1:
                    refused |= ~found & ~miss
                lf = np.zeros((n, k))
                if len(rows):
                    lf[found] = cat_logp[rows[np.argmax(hit[found], axis=1)]]
                use = found
            else:
                if kind[f] == 2:
                    lf = xx * weight[f]
                elif kind[f] == 0 and density == 0:
                    d = xx - mean[f]
                    lf = c0[f] - 0.5 * (d * d / c1[f])
                else:
                    if kind[f] == 0:
                        z = (xx - mean[f]) / c0[f]
                        p = np.exp(-0.5 * z * z - c1[f])
                    else:
                        nn = np.trunc(xx) + np.zeros(k)
                        lg = np.vectorize(math.lgamma)(np.where(nn >= 0.0, nn, 0.0) + 1.0)
                        lp = nn * c0[f] - mean[f] - lg
                        lp = np.where(nn == 0.0, -mean[f], lp)
                        lp = np.where(nn < 0.0, -np.inf, lp)
                        p = lp if density == 0 else np.exp(lp)
                    if kind[f] == 1 and density == 0:
                        lf = p
                    else:
                        lf = np.log(np.where(p < threshold, threshold, p))
                use = ~miss
            jll[use] += lf[use]
        jll = jll + log_prior
        out = np.empty((n, k))
        nan_row = np.isnan(jll).any(axis=1)
        m = np.where(nan_row, 0.0, np.nanmax(np.where(np.isnan(jll), -np.inf, jll), axis=1))
        m = m[:, None]
        if normalize == 1:
            e = np.exp(jll - m)
            s = np.zeros(n)
            for j in range(k):
                s = s + e[:, j]
            out = e / s[:, None]
        else:
            h = np.where(np.isfinite(m), m, 0.0)
            at_max = jll == m
            c = at_max.sum(axis=1).astype(np.float64)
            s = np.zeros(n)
            for j in range(k):
                s = s + np.where(at_max[:, j], 0.0, np.exp(jll[:, j] - h[:, 0]))
            s = np.where(s != 0.0, s / c, s)
            lse = (np.log1p(s) + np.log(c)) + m[:, 0]
            out = np.exp(jll - lse[:, None])
        out[nan_row | refused] = np.nan
        jll[refused] = np.nan
    ws[:, out_cols[:k]] = out
    if len(out_cols) == 2 * k:
        ws[:, out_cols[k:]] = jll
    bad = np.flatnonzero(refused)
    return int(bad[0]) if len(bad) else -1


# --- binder ----------------------------------------------------------------------------------
def constants(kind: np.ndarray, mean: np.ndarray, variance: np.ndarray,
              density: int) -> tuple[np.ndarray, np.ndarray]:
    """Bind-time constants per (input, class), float64 arrays of shape ``(n_inputs, k)``.

    gaussian: ``"log"`` -> (``-0.5 * ln(2 pi v)``, ``v``); ``"probability"`` ->
    (``sqrt(v)``, ``ln(sqrt(v)) + 0.5 ln(2 pi)``). poisson: (``ln(lambda)``, 0).
    """
    c0 = np.zeros_like(mean)
    c1 = np.ones_like(mean)
    g = kind == KINDS["gaussian"]
    p = kind == KINDS["poisson"]
    with np.errstate(divide="ignore"):
        if density == DENSITY["log"]:
            c0[g] = -0.5 * np.log(2.0 * np.pi * variance[g])
            c1[g] = variance[g]
        else:
            sd = np.sqrt(variance[g])
            c0[g] = sd
            c1[g] = np.log(sd) + _HALF_LN_2PI
        c0[p] = np.log(mean[p])
    return np.ascontiguousarray(c0), np.ascontiguousarray(c1)


@register_op("naive_bayes", family="naive_bayes")
def bind_naive_bayes(step: Step, ctx: BindContext) -> Bound:
    k = int(step.params["n_classes"])
    nf = len(step.inputs)
    what = f"naive_bayes step '{step.name}'"
    if k < 1 or len(step.outputs) not in (k, 2 * k):
        raise ValueError(f"{what}: {len(step.outputs)} outputs for {k} classes")
    density = param_choice(step, "density", DENSITY, "log")
    normalize = param_choice(step, "normalize", NORMALIZE, "logsumexp")
    missing = param_choice(step, "missing", MISSING, "skip")
    threshold = param_float(step, "threshold", 0.0)
    if not threshold >= 0.0:
        raise ValueError(f"{what}: threshold must be >= 0")
    log_prior = f64(table(step, "classes")["log_prior"])
    inp = table(step, "inputs")
    kind = i64(inp["kind"])
    if len(log_prior) != k or len(kind) != nf:
        raise ValueError(f"{what}: tables have {len(log_prior)} classes and {len(kind)} inputs "
                         f"for {k} classes and {nf} inputs")
    if np.any((kind < 0) | (kind > 3)):
        raise ValueError(f"{what}: input kind out of range")
    binarize = f64(inp["binarize"])
    truncate = np.ascontiguousarray(np.asarray(inp["truncate"], dtype=np.bool_))
    unknown = i64(inp["unknown"])

    def per_class(name: str) -> np.ndarray:
        return np.ascontiguousarray(np.column_stack([f64(inp[f"{name}_{j}"]) for j in range(k)])
                                    if nf else np.zeros((0, k)))

    mean, variance, weight = per_class("mean"), per_class("variance"), per_class("weight")
    g = kind == KINDS["gaussian"]
    if not np.all(variance[g] > 0.0) or not np.all(np.isfinite(mean[g])):
        raise ValueError(f"{what}: a gaussian input needs finite means and variances > 0")
    if not np.all(mean[kind == KINDS["poisson"]] >= 0.0):
        raise ValueError(f"{what}: a poisson input needs rates lambda >= 0")
    c0, c1 = constants(kind, mean, variance, density)
    cat_start = np.zeros(nf, dtype=np.int64)
    cat_end = np.zeros(nf, dtype=np.int64)
    dense = np.zeros(nf, dtype=np.bool_)
    if "categories" in step.tables:
        ct = step.tables["categories"]
        cin = i64(ct["input"])
        cval = f64(ct["value"])
        clogp = np.ascontiguousarray(np.column_stack([f64(ct[f"log_p_{j}"]) for j in range(k)])
                                     if len(cin) else np.zeros((0, k)))
        if np.any((cin < 0) | (cin >= nf)) or np.any(kind[np.unique(cin)] != 3):
            raise ValueError(f"{what}: a category row names an input that is not categorical")
        order = np.argsort(cin, kind="stable")  # each input's rows contiguous, table order kept
        cin, cval, clogp = cin[order], cval[order], np.ascontiguousarray(clogp[order])
        for f in range(nf):
            rows = np.flatnonzero(cin == f)
            if len(rows):
                cat_start[f], cat_end[f] = rows[0], rows[-1] + 1
                v = cval[rows]
                if len(np.unique(v)) != len(v) or np.isnan(v).any():
                    raise ValueError(f"{what}: input {f} repeats a category value")
                dense[f] = bool(np.array_equal(v, np.arange(len(v), dtype=np.float64)))
    else:
        cval, clogp = np.zeros(0), np.zeros((0, k))
        if np.any(kind == KINDS["categorical"]):
            raise ValueError(f"{what}: categorical inputs need a 'categories' table")
    in_cols = ctx.cols(step.inputs, step=step)
    args = (in_cols, ctx.cols(step.outputs, step=step), log_prior, kind, binarize, truncate,
            unknown, mean, weight, c0, c1, cat_start, cat_end, dense, cval, clogp, density,
            threshold, missing, normalize)
    return Bound(naive_bayes_kernel, naive_bayes_reference, args, parallel=naive_bayes_parallel,
                 parallel_min_rows=PARALLEL_MIN_ROWS,
                 error=_error(step, in_cols, kind, binarize, truncate, unknown, cat_start,
                              cat_end, cval, missing))


def _error(step: Step, in_cols: np.ndarray, kind: np.ndarray, binarize: np.ndarray,
           truncate: np.ndarray, unknown: np.ndarray, cat_start: np.ndarray,
           cat_end: np.ndarray, cval: np.ndarray,
           missing: int) -> Callable[[np.ndarray, int], Exception]:
    """The Bound's ``error(ws, row)``: names the first input that made ``row`` unscorable."""

    def error(ws: np.ndarray, row: int) -> Exception:
        for f in range(len(in_cols)):
            x = float(ws[row, in_cols[f]])
            if math.isnan(x):
                if missing == MISSING["error"]:
                    return MissingValueError(
                        f"'{step.inputs[f]}' is missing in row {row}; the naive Bayes model "
                        f"(step '{step.name}') refuses missing values")
                continue
            if kind[f] != KINDS["categorical"] or unknown[f] != 1:
                continue
            if not math.isnan(binarize[f]):
                x = 1.0 if x > binarize[f] else 0.0
            if truncate[f]:
                x = float(np.trunc(x))
            known = cval[cat_start[f]:cat_end[f]]
            if not np.any(known == x):
                shown = ", ".join(f"{v:g}" for v in known[:20])
                return UnknownCategoryError(
                    f"'{step.inputs[f]}' is {x!r} in row {row}, a category the naive Bayes "
                    f"model (step '{step.name}') did not see in training (known: {shown})")
        return UnknownCategoryError(f"step '{step.name}' refused row {row}")

    return error
