"""Family ``tree_ensemble``: decision trees, random forests and gradient-boosted trees.

Op ``tree_ensemble`` version 1 (normative)
------------------------------------------
Step inputs are the feature columns; a node's ``feature`` indexes into ``step.inputs``. Step
outputs are ``n_outputs`` raw columns, before any link (a separate ``link`` op of the
``linear`` family applies logistic / softmax / exp).

params
    ``n_outputs`` (int ``k``)
        Number of output columns.
    ``leaf_width`` (int ``W``)
        Values per leaf: 1 for boosting, ``k`` for a random-forest classifier's class
        probability vectors.
    ``aggregation`` ("sum" or "average")
        Per row: ``out[0..k) = base_score[0..k)``; then for each tree ``t`` in table order,
        ``out[output[t] + w] += scale[t] * leaf_value[w]`` for ``w < W``; then, for
        "average", ``out[j] /= n_trees`` (the number of rows of the ``trees`` table).
    ``base_score`` (list of ``k`` floats)
        Initial margins.
    ``accumulate_dtype`` ("float64" or "float32")
        float32: ``out`` is held in float32 and each addition rounds to float32 (as XGBoost
        does); ``scale * leaf`` is computed in float32 too, and so is the final division.
    ``compare_dtype`` ("float64" or "float32")
        The input value ``x`` is first rounded to that dtype (round to nearest), then
        compared in float64 arithmetic with the float64 threshold. Missing-value tests
        (below) apply to the rounded value.
    ``split_operator`` ("<=" or "<")
        Go left iff ``x <= threshold`` (scikit-learn, LightGBM) or ``x < threshold``
        (XGBoost).

tables
    ``trees``: one row per tree: ``root`` (int32, global node row), ``output`` (int32, first
    output column the tree adds into), ``scale`` (float64).

    ``nodes``: one row per node, global index = row number: ``feature`` (int32, -1 for a
    leaf), ``threshold`` (float64), ``left``, ``right`` (int32 global rows, -1 for leaves),
    ``default_left`` (bool: where a missing value goes), ``missing`` (int8: 0 = NaN is
    missing; 1 = NaN and ``|x| <= Z`` are missing, ``Z = 1.0000000180025095e-35`` (float32
    1e-35 as a double, LightGBM missing type Zero); 2 = NaN
    is replaced by 0.0, then compared normally (LightGBM missing type None)), ``kind``
    (int8: 0 numeric split, 1 categorical split), ``value_0`` .. ``value_{W-1}`` (float64 leaf
    values; 0 on internal nodes).

    ``categories`` (only if a node is categorical): rows (``node`` int32, ``category``
    int32) listing, per categorical node, the categories that go LEFT. A missing ``x`` (per
    the node's ``missing`` rule) goes to the default child; otherwise, with
    ``c = trunc(x)``, the row goes left iff ``x >= 0`` and ``c`` is in the node's set, else
    right.

    Version 2 adds an optional nodes column ``missing_child`` (int32, -1 = none; absent =
    all -1): at a numeric split (``kind`` 0) whose input is missing (per its ``missing``
    rule), the row goes to node ``missing_child`` instead of the default child. It must name
    a leaf; several nodes may name the same leaf (PMML's ``nullPrediction`` /
    ``lastPrediction``: a missing value ends the walk with a value of its own). A version 1
    step must not carry the column.

Optional extension (absent = false): ``refuse_overflow`` (bool). With ``compare_dtype``
float32, a row holding an input that is finite in float64 but rounds to +/-inf in float32 is
refused (scikit-learn's trees raise "value too large for dtype('float32')" on such input).

Implementation
--------------
At bind time the node table is re-laid out per tree in breadth-first order so that a node's
two children are adjacent (``right = left + 1``), split thresholds are converted to the
compare dtype with the operator folded in (every test becomes ``x <= t'``, exactly
equivalent: ``t'`` is the largest compare-dtype value ``<= t`` for "<=", the largest ``< t``
for "<"; a numeric split of missing kind 2 becomes one of kind 0 whose default child is
0.0's side, the same branch for every input, so it takes the fast step), and
``scale * leaf`` is precomputed in the accumulation dtype (the same single
rounding the per-row product would have). The kernel gathers a block of rows into a
contiguous ``(rows, features)`` array of the compare dtype, walks one tree for every row of
the block while that tree is in cache, then the next tree, so each row still sums its trees
in table order. The rows of a block walk a tree in lockstep, branch-free (a leaf loops to
itself), for as many steps as the tree is deep; a single row walks a group of trees in
lockstep instead. Trees whose splits are all plain numeric ones (the usual case) walk on
unsigned flat arrays (feature, left child, missing destination per slot), which spares each
access the negative-index test and halves the cost of a step. The parallel kernel runs
blocks on separate threads. When every tree is plain, a one-row workspace (a single request)
takes :func:`tree_ensemble_row_kernel` instead: fewer arguments, and a NaN-free row walks
eight trees at a time with their slots in registers rather than in a lane array.

A model verifies at load on one variant of the batch kernel shared by every tree ensemble,
the compare and accumulation arrays in float64 and float32 rounding done where the step
says (:func:`float64_args`, exact): Numba compiles a kernel per tuple of argument types, and
one compile per dtype pair was seconds of every empty-cache start. The step's own variant
is compiled in the background and replaces it (:attr:`scorer.ops.Bound.specialised`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..errors import FieldTypeError
from ..ir import Step
from ..ops import BindContext, Bound, compile_later, register_op
from ._common import pack_cols, table, unpack_cols
from .linear import link_row_kernel

#: rows that walk one tree together (the block's features and accumulators stay in L1)
BLOCK_ROWS = 128
#: batches use the parallel kernel from this many rows, or more for small models: enough rows
#: for about ``PARALLEL_MIN_STEPS`` node steps, so that thread start-up stays negligible
PARALLEL_MIN_ROWS = 256
PARALLEL_MIN_STEPS = 300_000
#: blocks of fewer rows walk this many trees at once per row instead (single-row latency)
TREE_LANES = 16
_ROW_LANES_MIN = 8
#: LightGBM's "zero" missing type: |x| <= this is missing. LightGBM's kZeroThreshold is the
#: float literal 1e-35f widened to double: 1.0000000180025095e-35, not 1e-35.
ZERO_THRESHOLD = float(np.float32(1e-35))
#: The rows of a block take as many lockstep steps down a tree as its deepest leaf needs (a
#: few wasted branch-free steps cost less than the mispredictions of rows finishing one by
#: one). Tree lanes of a single row take only enough steps for this share of rows if each
#: split sent half its rows each way; the rest finish one by one.
LOCKSTEP_SHARE = 0.97

# Compact layout. Per slot, ``nodes[s] = (feat, child, aux0, aux1)`` (int32) and ``thr[s]``:
# - plain numeric split (missing kind 0): ``feat = feature * 2 + default_right``, ``child`` =
#   slot of the left child (the right child is ``child + 1``);
# - every numeric split: ``aux1`` = the slot a missing value goes to (the default child, or
#   the slot of its ``missing_child`` leaf);
# - any other split: ``feat = ~(feature * 16 + flags)`` (negative), with flag bits below;
#   for a categorical split ``aux0, aux1`` = first word and word count of its left set;
# - leaf: ``feat = 0``, ``child`` = ``aux1`` = the slot itself, ``thr = +inf`` (so a step
#   from a leaf stays there, NaN or not), ``aux0`` = its row in the leaf value table.
_DEFAULT_LEFT = 1
_CATEGORICAL = 2
_MISSING_SHIFT = 2
_FLAG_BITS = 4
_MISSING_SLOW = 3  # missing kind 0 at a node whose threshold is NaN (no value passes)
#: the kernels' ``rounding`` argument: bits saying that the float64 variant (every array of
#: the compare and accumulation dtypes in float64) stands in for a step whose compare
#: (``ROUND_COMPARE``) or accumulation (``ROUND_ACCUMULATE``) dtype is float32, and rounds
#: to float32 where that dtype would (see :func:`float64_args`); None in the step's own
#: dtypes (Numba then compiles the kernel without any of it)
ROUND_COMPARE = 1
ROUND_ACCUMULATE = 2


# --- kernels ---------------------------------------------------------------------------------
# Calls between kernels pass their scalars as ``np.int64(...)`` / ``bool(...)`` / ``np.uint64``:
# Numba compiles a callee once per argument-type tuple, and a literal ``0`` or ``False``, an
# int32 table entry or a flag still typed ``Literal[bool]`` during type inference each made
# a specialisation of their own (12 of ``_walk_plain``, 8 of ``_walk`` for the demo models:
# compile time at start-up, never used at run time). Same values, same code.
@njit(cache=True, nogil=True)
def _slow_step(x, t, flags, child, aux0, aux1, cat_words, zero_thr):
    """The next slot from a node with a missing-value rule or a categorical split.

    ``x`` and ``t`` are in the compare dtype; ``t`` already has the operator folded in
    (go left iff ``x <= t``). ``child`` is the left child's slot; a numeric split's missing
    value goes to slot ``aux1``.
    """
    default = child if flags & _DEFAULT_LEFT else child + 1
    categorical = flags & _CATEGORICAL
    miss = flags >> _MISSING_SHIFT
    if math.isnan(x):
        if miss != 2:
            return default if categorical else aux1
        # missing type None: NaN is compared as 0.0 (category 0 at a categorical split)
        if categorical:
            return child if aux1 > 0 and cat_words[aux0] & 1 else child + 1
        return child if 0.0 <= t else child + 1
    if miss == 1 and abs(x) <= zero_thr:
        return default if categorical else aux1
    if categorical:
        if x >= 0 and x < aux1 * 32:
            c = int(x)
            if (cat_words[aux0 + (c >> 5)] >> (c & 31)) & 1:
                return child
        return child + 1
    return child if x <= t else child + 1


@njit(cache=True, nogil=True)
def _walk(xb, cur, n_lanes, steps, nan_free, thr, nodes, cat_words, zero_thr):
    """Move every lane ``l < n_lanes`` (row ``l`` of ``xb``, at slot ``cur[l]``) down to its
    leaf, leaving the leaf's slot in ``cur[l]``.

    The first ``steps`` steps go in lockstep: the lanes' walks are independent, so they
    overlap in the CPU, and no branch depends on the data (a leaf's step stays put). The few
    lanes still above a leaf then finish one by one. ``nan_free`` (no NaN in the lanes' rows)
    drops the NaN test from plain splits. (The step is written out several times because a
    helper taking arrays per step would cost reference counting.)
    """
    if nan_free:
        for _ in range(steps):
            for ln in range(n_lanes):
                nd = cur[ln]
                f = nodes[nd, 0]
                if f >= 0:
                    cur[ln] = nodes[nd, 1] + (xb[ln, f >> 1] > thr[nd])
                else:
                    cur[ln] = _slow_step(xb[ln, (~f) >> _FLAG_BITS], thr[nd], (~f) & 15,
                                         nodes[nd, 1], nodes[nd, 2], nodes[nd, 3], cat_words,
                                         zero_thr)
    else:
        for _ in range(steps):
            for ln in range(n_lanes):
                nd = cur[ln]
                f = nodes[nd, 0]
                if f >= 0:
                    x = xb[ln, f >> 1]
                    nxt = nodes[nd, 1] + (x > thr[nd])
                    if x != x:  # missing: the default child or a missing_child leaf
                        nxt = nodes[nd, 3]
                    cur[ln] = nxt
                else:
                    cur[ln] = _slow_step(xb[ln, (~f) >> _FLAG_BITS], thr[nd], (~f) & 15,
                                         nodes[nd, 1], nodes[nd, 2], nodes[nd, 3], cat_words,
                                         zero_thr)
    for ln in range(n_lanes):
        nd = cur[ln]
        while nodes[nd, 1] != nd:
            f = nodes[nd, 0]
            if f >= 0:
                x = xb[ln, f >> 1]
                nxt = nodes[nd, 1] + (x > thr[nd])
                if x != x:
                    nxt = nodes[nd, 3]
                nd = nxt
            else:
                nd = _slow_step(xb[ln, (~f) >> _FLAG_BITS], thr[nd], (~f) & 15, nodes[nd, 1],
                                nodes[nd, 2], nodes[nd, 3], cat_words, zero_thr)
        cur[ln] = nd


@njit(cache=True, nogil=True)
def _walk_plain(xf, nf, cur, n_lanes, steps, nan_free, thr, featu, childu, missu):
    """:func:`_walk` for trees whose splits are all plain numeric ones, on the unsigned flat
    arrays: lane ``l`` reads its row at ``xf[l * nf:]``, slots are uint32. Unsigned indexes
    spare every array access Python's negative-index wraparound test, which, with the 2-D
    address arithmetic, costs as much as the step itself."""
    nfu = np.uint32(nf)
    if nan_free:
        for _ in range(steps):
            off = np.uint32(0)
            for ln in range(n_lanes):
                nd = cur[ln]
                cur[ln] = childu[nd] + np.uint32(xf[off + featu[nd]] > thr[nd])
                off += nfu
    else:
        for _ in range(steps):
            off = np.uint32(0)
            for ln in range(n_lanes):
                nd = cur[ln]
                x = xf[off + featu[nd]]
                nxt = childu[nd] + np.uint32(x > thr[nd])
                if x != x:  # missing: the default child or a missing_child leaf
                    nxt = missu[nd]
                cur[ln] = nxt
                off += nfu
    off = np.uint32(0)
    for ln in range(n_lanes):
        nd = cur[ln]
        while childu[nd] != nd:
            x = xf[off + featu[nd]]
            nxt = childu[nd] + np.uint32(x > thr[nd])
            if x != x:
                nxt = missu[nd]
            nd = nxt
        cur[ln] = nd
        off += nfu


@njit(cache=True, nogil=True, inline="always")
def _walk8(x, featu, childu, thr, steps, n0, n1, n2, n3, n4, n5, n6, n7):
    """``steps`` lockstep steps of a NaN-free row ``x`` down eight plain trees at once, lane
    ``j`` starting at slot ``nj``; returns the eight slots reached (a lane at a leaf stays
    there; the caller finishes lanes still above one).

    The eight walks are independent, so they overlap in the CPU, and lanes held in local
    variables (not in a ``cur`` array that every step loads and stores) halve the cost of a
    step: one row through 200 depth-6 trees 3.0 -> 1.3 us. Inlined, with the steps written
    out (a helper call per step taking arrays would cost reference counting).
    """
    for _ in range(steps):
        n0 = childu[n0] + np.uint32(x[featu[n0]] > thr[n0])
        n1 = childu[n1] + np.uint32(x[featu[n1]] > thr[n1])
        n2 = childu[n2] + np.uint32(x[featu[n2]] > thr[n2])
        n3 = childu[n3] + np.uint32(x[featu[n3]] > thr[n3])
        n4 = childu[n4] + np.uint32(x[featu[n4]] > thr[n4])
        n5 = childu[n5] + np.uint32(x[featu[n5]] > thr[n5])
        n6 = childu[n6] + np.uint32(x[featu[n6]] > thr[n6])
        n7 = childu[n7] + np.uint32(x[featu[n7]] > thr[n7])
    return n0, n1, n2, n3, n4, n5, n6, n7


@njit(cache=True, nogil=True)
def _score_block(ws, r0, r1, in_cols, out_cols, thr, nodes, cat_words, zero_thr, leafv, trees,
                 base, divisor, refuse_overflow, featu, childu, missu, leafu, xf, acc, cur,
                 curu, xrep, rounding):
    """Score rows ``r0 .. r1`` of ``ws`` (at most ``xf.shape[0] // n_features`` rows).

    Scratch: ``xf`` (block * f,) and ``xrep`` (TREE_LANES * f,) of the compare dtype, ``acc``
    (block, k) of the accumulation dtype, ``cur`` int32 and ``curu`` uint32, both
    (max(block, TREE_LANES),). ``rounding``: None in the step's own dtypes, else
    :data:`ROUND_COMPARE` / :data:`ROUND_ACCUMULATE` bits (the shared float64 variant, see
    :func:`float64_args`). Returns -1, or the first row refused under ``refuse_overflow``.
    """
    if rounding is None:  # the step's own dtypes: Numba compiles no rounding at all
        cmp32 = False
        acc32 = False
    else:
        cmp32 = (rounding & ROUND_COMPARE) != 0
        acc32 = (rounding & ROUND_ACCUMULATE) != 0
    nb = r1 - r0
    nf = max(in_cols.shape[0], 1)  # a step from a leaf reads column 0
    k = out_cols.shape[0]
    w_leaf = leafv.shape[1]
    xb = xf[: nb * nf].reshape((nb, nf))  # the general walk's 2-D view of the same rows
    # Gather once: each row's features contiguous and already rounded to the compare dtype.
    nan_free = True
    for i in range(nb):
        for j in range(in_cols.shape[0]):
            v = ws[r0 + i, in_cols[j]]
            if cmp32:
                xb[i, j] = np.float32(v)
            else:
                xb[i, j] = v
            nan_free &= v == v
            if refuse_overflow and math.isinf(xb[i, j]) and not math.isinf(v):
                return r0 + i
        if in_cols.shape[0] == 0:
            xb[i, 0] = 0.0
        for j in range(k):
            acc[i, j] = base[j]
    n_trees = trees.shape[0]
    if nb >= _ROW_LANES_MIN:
        # Tree-major inside the block: the tree stays in cache while every row of the block
        # walks it (one lane per row); each row still adds its trees in table order, so sums
        # are bit-identical to a row-at-a-time walk.
        for t in range(n_trees):
            o = trees[t, 1]
            if trees[t, 4] == 0:
                root = np.uint32(trees[t, 0])
                for i in range(nb):
                    curu[i] = root
                _walk_plain(xf, np.int64(nf), curu, np.int64(nb), np.int64(trees[t, 2]),
                            bool(nan_free), thr, featu, childu, missu)
                # one loop per leaf width: an inner loop over the width, per row, cost
                # 11-15% of the kernel (XGBoost, sklearn GBM and forest, one thread)
                if w_leaf == 1:
                    for i in range(nb):
                        acc[i, o] += leafv[leafu[curu[i]], 0]
                elif w_leaf == 2:  # a binary classifier's class probabilities
                    for i in range(nb):
                        leaf = leafu[curu[i]]
                        acc[i, o] += leafv[leaf, 0]
                        acc[i, o + 1] += leafv[leaf, 1]
                else:
                    for i in range(nb):
                        leaf = leafu[curu[i]]
                        for w in range(w_leaf):
                            acc[i, o + w] += leafv[leaf, w]
            elif nodes is not None:  # (no general layout: Numba drops this branch)
                root = trees[t, 0]
                for i in range(nb):
                    cur[i] = root
                _walk(xb, cur, np.int64(nb), np.int64(trees[t, 2]), bool(nan_free), thr, nodes,
                      cat_words, zero_thr)
                if w_leaf == 1:
                    for i in range(nb):
                        acc[i, o] += leafv[nodes[cur[i], 2], 0]
                else:
                    for i in range(nb):
                        leaf = nodes[cur[i], 2]
                        for w in range(w_leaf):
                            acc[i, o + w] += leafv[leaf, w]
            if acc32:  # each row added one leaf to each of these columns: round the sums
                for i in range(nb):
                    for j in range(o, o + w_leaf):
                        acc[i, j] = np.float32(acc[i, j])
    else:
        # A few rows (a single-row request): one lane per tree of a group of trees instead,
        # so the walks still overlap; leaves are added afterwards in table order.
        g_max = xrep.shape[0] // nf
        xrep2 = xrep.reshape((g_max, nf))
        for i in range(nb):
            row_nan_free = True
            for f in range(nf):
                row_nan_free &= xb[i, f] == xb[i, f]
            copied = False  # the general walk's per-lane copies of the row, made on demand
            row = xf[i * nf:]
            for t0 in range(0, n_trees, g_max):
                g = min(g_max, n_trees - t0)
                steps = 0
                slow = 0
                for j in range(g):
                    steps = max(steps, trees[t0 + j, 3])
                    slow += trees[t0 + j, 4]
                if slow == 0:
                    for j in range(g):
                        curu[j] = np.uint32(trees[t0 + j, 0])
                    # every lane reads the same row (stride 0)
                    _walk_plain(row, np.int64(0), curu, np.int64(g), np.int64(steps),
                                bool(row_nan_free), thr, featu, childu, missu)
                    for j in range(g):
                        cur[j] = leafu[curu[j]]
                elif nodes is not None:
                    if not copied:
                        for j in range(g_max):
                            for f in range(nf):
                                xrep2[j, f] = xb[i, f]
                        copied = True
                    for j in range(g):
                        cur[j] = trees[t0 + j, 0]
                    _walk(xrep2, cur, np.int64(g), np.int64(steps), bool(row_nan_free), thr,
                          nodes, cat_words, zero_thr)
                    for j in range(g):
                        cur[j] = nodes[cur[j], 2]
                for j in range(g):
                    leaf = cur[j]
                    o = trees[t0 + j, 1]
                    for w in range(w_leaf):
                        acc[i, o + w] += leafv[leaf, w]
                        if acc32:
                            acc[i, o + w] = np.float32(acc[i, o + w])
    if divisor.shape[0] > 0:
        d = divisor[0]
        for i in range(nb):
            for j in range(k):
                q = acc[i, j] / d
                if acc32:
                    q = np.float32(q)
                ws[r0 + i, out_cols[j]] = q
    else:
        for i in range(nb):
            for j in range(k):
                ws[r0 + i, out_cols[j]] = acc[i, j]
    return -1


@njit(cache=True, nogil=True)
def tree_ensemble_kernel(ws, in_cols, out_cols, thr, nodes, cat_words, zero_thr, leafv, trees,
                         base, divisor, refuse_overflow, block, featu, childu, missu, leafu,
                         rounding):
    """Serial kernel. ``ws`` float64[n_rows, n_columns]; writes the step's output columns.

    Arguments after ``ws`` come from :func:`compile_tables`. Returns -1, or the first row
    refused (``refuse_overflow``).
    """
    n = ws.shape[0]
    rows = min(n, block)
    nf = max(in_cols.shape[0], 1)  # a step from a leaf reads column 0
    xf = np.empty(rows * nf, dtype=thr.dtype)
    acc = np.empty((rows, out_cols.shape[0]), dtype=leafv.dtype)
    cur = np.empty(max(rows, TREE_LANES), dtype=np.int32)
    curu = np.empty(max(rows, TREE_LANES), dtype=np.uint32)
    xrep = np.empty(TREE_LANES * nf, dtype=thr.dtype)
    for r0 in range(0, n, block):
        status = _score_block(ws, r0, min(r0 + block, n), in_cols, out_cols, thr, nodes,
                              cat_words, zero_thr, leafv, trees, base, divisor,
                              refuse_overflow, featu, childu, missu, leafu, xf, acc, cur,
                              curu, xrep, rounding)
        if status >= 0:
            return status
    return -1


@njit(cache=True, nogil=True)
def tree_ensemble_row_kernel(ws, io, thr, leafv, trees, consts, plain):
    """Single-row kernel for ensembles whose trees are all plain (numeric splits where NaN
    is the only missing value): results equal :func:`tree_ensemble_kernel`'s.

    ``ws`` float64[1, n_columns]. Each array argument costs the caller ~40 ns of unboxing
    (a fifth of the walk of a small model), so the small ones are packed: ``io`` is
    ``[refuse_overflow, n_in, in_cols..., out_cols...]`` (:func:`._common.pack_cols`);
    ``consts`` is the base score (k,) followed, for "average", by the divisor; ``plain``
    stacks the plain walk's ``featu, childu, missu, leafu`` (4, n_slots). A NaN-free row
    walks eight trees at a time in registers (:func:`_row_plain`). Returns -1, or 0 when the
    row is refused (``refuse_overflow``).
    """
    refuse, in_cols, out_cols = unpack_cols(io)
    refuse_overflow = refuse != 0
    featu = plain[0]
    childu = plain[1]
    missu = plain[2]
    leafu = plain[3]
    nf = max(in_cols.shape[0], 1)
    x = np.empty(nf, dtype=thr.dtype)
    nan_free = True
    for j in range(in_cols.shape[0]):
        v = ws[0, in_cols[j]]
        x[j] = v
        nan_free &= v == v
        if refuse_overflow and math.isinf(x[j]) and not math.isinf(v):
            return 0
    if in_cols.shape[0] == 0:
        x[0] = 0.0
    k = out_cols.shape[0]
    acc = np.empty(k, dtype=leafv.dtype)
    for j in range(k):
        acc[j] = consts[j]
    if nan_free:
        _row_plain(x, featu, childu, thr, leafu, leafv, trees, acc)
    else:
        _row_plain_nan(x, featu, childu, missu, thr, leafu, leafv, trees, acc)
    if consts.shape[0] > k:
        for j in range(k):
            ws[0, out_cols[j]] = acc[j] / consts[k]
    else:
        for j in range(k):
            ws[0, out_cols[j]] = acc[j]
    return -1


@njit(cache=True, nogil=True)
def tree_ensemble_row_link_kernel(ws, io, thr, leafv, trees, consts, plain, link):
    """:func:`tree_ensemble_row_kernel`, then the following link step
    (:func:`scorer.kernels.linear.link_row_kernel` with its packed ``link``) in the same
    call: a boosted classifier's one row then costs one call instead of two (the second
    call and its arguments' unboxing were ~0.4 µs of ~4.5). Same results, same statuses:
    -1, or 0 when the row is refused (the link then does not run)."""
    status = tree_ensemble_row_kernel(ws, io, thr, leafv, trees, consts, plain)
    if status >= 0:
        return status
    return link_row_kernel(ws, link)



@njit(cache=True, nogil=True)
def _leaf_of(x, featu, childu, thr, nd):
    """Walk a NaN-free row ``x`` on from slot ``nd`` of a plain tree to its leaf's slot."""
    while childu[nd] != nd:
        nd = childu[nd] + np.uint32(x[featu[nd]] > thr[nd])
    return nd


@njit(cache=True, nogil=True)
def _row_plain(x, featu, childu, thr, leafu, leafv, trees, acc):
    """A NaN-free row ``x`` (compare dtype) through every (plain) tree, eight trees at a
    time; adds the leaves to ``acc`` in table order. Its own function: with a second walk
    loop beside it (rows with NaN), the eight lanes no longer stay in registers."""
    w_leaf = leafv.shape[1]
    n_trees = trees.shape[0]
    single = acc.shape[0] == 1 and w_leaf == 1
    a0 = acc[0]
    t = 0
    while t + 8 <= n_trees:
        s8 = 0
        for j in range(8):
            s8 = max(s8, trees[t + j, 3])
        ls = _walk8(x, featu, childu, thr, s8, np.uint32(trees[t, 0]),
                    np.uint32(trees[t + 1, 0]), np.uint32(trees[t + 2, 0]),
                    np.uint32(trees[t + 3, 0]), np.uint32(trees[t + 4, 0]),
                    np.uint32(trees[t + 5, 0]), np.uint32(trees[t + 6, 0]),
                    np.uint32(trees[t + 7, 0]))
        for j in range(8):
            nd = ls[j]
            if childu[nd] != nd:  # (a call only for the few lanes still above a leaf)
                nd = _leaf_of(x, featu, childu, thr, np.uint64(nd))
            if single:  # one output, one value per leaf: the sum stays in a register
                a0 += leafv[leafu[nd], 0]
            else:
                o = trees[t + j, 1]
                for w in range(w_leaf):
                    acc[o + w] += leafv[leafu[nd], w]
        t += 8
    if single:
        acc[0] = a0
    while t < n_trees:
        leaf = leafu[_leaf_of(x, featu, childu, thr, np.uint64(trees[t, 0]))]
        o = trees[t, 1]
        for w in range(w_leaf):
            acc[o + w] += leafv[leaf, w]
        t += 1


@njit(cache=True, nogil=True)
def _row_plain_nan(x, featu, childu, missu, thr, leafu, leafv, trees, acc):
    """:func:`_row_plain` for a row holding NaN (lanes in memory: the rarer case)."""
    w_leaf = leafv.shape[1]
    n_trees = trees.shape[0]
    cur = np.empty(TREE_LANES, dtype=np.uint32)
    for t0 in range(0, n_trees, TREE_LANES):
        g = min(TREE_LANES, n_trees - t0)
        steps = 0
        for j in range(g):
            cur[j] = np.uint32(trees[t0 + j, 0])
            steps = max(steps, trees[t0 + j, 3])
        _walk_plain(x, np.int64(0), cur, np.int64(g), np.int64(steps), np.bool_(False), thr,
                    featu, childu, missu)
        for j in range(g):
            leaf = leafu[cur[j]]
            o = trees[t0 + j, 1]
            for w in range(w_leaf):
                acc[o + w] += leafv[leaf, w]


@njit(cache=True, nogil=True, parallel=True)
def tree_ensemble_parallel(ws, in_cols, out_cols, thr, nodes, cat_words, zero_thr, leafv,
                           trees, base, divisor, refuse_overflow, block, featu, childu, missu,
                           leafu, rounding):
    """Parallel kernel: row blocks on separate threads; results equal the serial kernel's."""
    n = ws.shape[0]
    n_blocks = (n + block - 1) // block
    status = np.full(n_blocks, -1, dtype=np.int64)
    nf = max(in_cols.shape[0], 1)  # a step from a leaf reads column 0
    for b in prange(n_blocks):
        xf = np.empty(block * nf, dtype=thr.dtype)
        acc = np.empty((block, out_cols.shape[0]), dtype=leafv.dtype)
        cur = np.empty(max(block, TREE_LANES), dtype=np.int32)
        curu = np.empty(max(block, TREE_LANES), dtype=np.uint32)
        xrep = np.empty(TREE_LANES * nf, dtype=thr.dtype)
        r0 = b * block
        status[b] = _score_block(ws, r0, min(r0 + block, n), in_cols, out_cols, thr, nodes,
                                 cat_words, zero_thr, leafv, trees, base, divisor,
                                 refuse_overflow, featu, childu, missu, leafu, xf, acc, cur,
                                 curu, xrep, rounding)
    for b in range(n_blocks):
        if status[b] >= 0:
            return status[b]
    return -1


# --- layout ----------------------------------------------------------------------------------
def _one_parent(roots: np.ndarray, feature: np.ndarray, left: np.ndarray, right: np.ndarray,
                missing_child: np.ndarray) -> bool:
    """Whether every node is the child of at most one node and not also a root, no two trees
    share a root, and every ``missing_child`` is a leaf (what exporters write): every walk
    from a root then reaches distinct nodes and ends."""
    n = feature.shape[0]
    internal = feature >= 0
    into = np.bincount(np.concatenate([left[internal], right[internal], roots]).astype(np.int64),
                       minlength=n)
    mc = missing_child[internal]
    return into.shape[0] == n and not (into > 1).any() and not (feature[mc[mc >= 0]] >= 0).any()


def _relayout(roots: np.ndarray, feature: np.ndarray, left: np.ndarray, right: np.ndarray,
              missing_child: np.ndarray) -> tuple:
    """:func:`_relayout_kernel` (its results, the same arrays): the kernel where it is
    compiled or in Numba's on-disk cache, or where the tables need its checks; else
    :func:`_relayout_levels` in NumPy, with the kernel's compile queued on the background
    thread (:func:`scorer.ops.compile_later`). The compile took half a second (2-core machine)
    of every empty-cache start that loads a tree ensemble; NumPy takes milliseconds for
    thousands of nodes, and about seven times the kernel's time for half a million."""
    args = (roots, feature, left, right, missing_child)
    if not _one_parent(*args):
        return _relayout_kernel(*args)
    ready: list[bool] = []
    compile_later(_relayout_kernel, args, lambda: ready.append(True))
    return _relayout_kernel(*args) if ready else _relayout_levels(*args)


def _relayout_levels(roots: np.ndarray, feature: np.ndarray, left: np.ndarray, right: np.ndarray,
              missing_child: np.ndarray) -> tuple:
    """:func:`_relayout_kernel` in NumPy, one level of every tree at a time, for tables
    where :func:`_one_parent` holds (there is then nothing to refuse)."""
    n = feature.shape[0]
    n_trees = roots.shape[0]
    # entries in the order they are made: level by level, each level grouped by tree (its
    # parents' order) and, per parent, left, right, then its missing_child leaf if that is
    # the tree's first mention of it; ids are positions in this order
    trees, nodes, depths = [np.arange(n_trees)], [roots.astype(np.int64)], [np.zeros(n_trees,
                                                                                    np.int64)]
    left_id = np.full(0, -1, dtype=np.int64)  # per entry id: its left child's id (-1 leaf)
    lefts, mrefs = [], []  # (parent ids, left child ids); (parent ids, their (tree, leaf) keys)
    m_keys, m_ids = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    seen = np.zeros(0, dtype=np.int64)
    f_tree, f_node, f_id = trees[0], nodes[0], np.arange(n_trees)
    next_id = n_trees
    level = 0
    while f_node.shape[0]:
        level += 1
        inner = feature[f_node] >= 0
        pt, pn, pid = f_tree[inner], f_node[inner], f_id[inner]
        m = missing_child[pn].astype(np.int64)
        has_m = m >= 0
        key = pt * n + m
        cand = np.flatnonzero(has_m)
        fresh = cand[~np.isin(key[cand], seen)]
        _, first = np.unique(key[fresh], return_index=True)
        add = np.zeros(pn.shape[0], dtype=bool)
        add[fresh[first]] = True
        seen = np.concatenate([seen, key[add]])
        counts = 2 + add
        start = np.cumsum(counts) - counts
        total = int(counts.sum())
        cn = np.empty(total, dtype=np.int64)
        cn[start] = left[pn]
        cn[start + 1] = right[pn]
        cn[start[add] + 2] = m[add]
        ct = np.repeat(pt, counts)
        ids = next_id + np.arange(total)
        lefts.append((pid, next_id + start))
        m_keys.append(key[add])
        m_ids.append(next_id + start[add] + 2)
        mrefs.append((pid[has_m], key[has_m]))
        trees.append(ct)
        nodes.append(cn)
        depths.append(np.full(total, level, dtype=np.int64))
        f_tree, f_node, f_id = ct, cn, ids
        next_id += total
    tree = np.concatenate(trees)
    node = np.concatenate(nodes)
    depth = np.concatenate(depths)
    order = np.argsort(tree, kind="stable")  # slots: tree by tree, each in level order
    slot = np.empty(next_id, dtype=np.int64)
    slot[order] = np.arange(next_id)
    left_id = np.full(next_id, -1, dtype=np.int64)
    mdest_id = np.full(next_id, -1, dtype=np.int64)
    all_keys = np.concatenate(m_keys)
    all_ids = np.concatenate(m_ids)
    by_key = np.argsort(all_keys)
    for (pid, lid), (mid, mkey) in zip(lefts, mrefs, strict=True):
        left_id[pid] = lid
        if mid.shape[0]:
            mdest_id[mid] = all_ids[by_key[np.searchsorted(all_keys, mkey, sorter=by_key)]]
    orig = node[order]
    leaf = feature[orig] < 0
    child = np.where(leaf, np.cumsum(leaf) - 1, slot[left_id[order]])
    md = mdest_id[order]
    mdest = np.where(md >= 0, slot[md], -1)
    i32 = np.int32
    return (orig.astype(i32), child.astype(i32), depth[order].astype(i32), mdest.astype(i32),
            slot[:n_trees].astype(i32), orig[leaf].astype(i32), tree[order][leaf].astype(i32),
            -1, -1)


@njit(cache=True, nogil=True)
def _relayout_kernel(roots, feature, left, right, missing_child):
    """Breadth-first copy of every tree, a node's two children in adjacent slots.

    Returns ``(orig, child, depth, mdest, croot, leaf_orig, leaf_tree, bad_tree, bad_node)``:
    per slot the original node row, the left child's slot (internal) or leaf ordinal (leaf),
    the depth, and the slot of its ``missing_child`` leaf (-1: none); per tree its root slot;
    per leaf ordinal the original row and tree. A ``missing_child`` leaf gets one slot per
    tree, however many nodes of the tree name it. ``bad_node >= 0`` reports a node reached
    twice within tree ``bad_tree`` (the rows do not form a tree); the arrays are then empty.
    (Numba; :func:`_relayout_levels` is the same in NumPy for the usual tables.)
    """
    n_nodes = feature.shape[0]
    n_trees = roots.shape[0]
    stamp = np.full(n_nodes, -1, dtype=np.int64)
    mstamp = np.full(n_nodes, -1, dtype=np.int64)
    mslot = np.full(n_nodes, -1, dtype=np.int32)
    stack = np.empty(n_nodes + 1, dtype=np.int64)
    total = 0
    leaves = 0
    for t in range(n_trees):  # pass 1: sizes; refuse cycles and nodes shared within a tree
        stack[0] = roots[t]
        top = 1
        while top > 0:
            top -= 1
            v = stack[top]
            if stamp[v] == t:
                e = np.empty(0, dtype=np.int32)
                return e, e, e, e, e, e, e, t, v
            stamp[v] = t
            total += 1
            if feature[v] >= 0:
                stack[top] = left[v]
                stack[top + 1] = right[v]
                top += 2
                m = missing_child[v]
                if m >= 0 and mstamp[m] != t:
                    mstamp[m] = t
                    total += 1
                    leaves += 1
            else:
                leaves += 1
    mstamp[:] = -1
    orig = np.empty(total, dtype=np.int32)
    child = np.empty(total, dtype=np.int32)
    depth = np.empty(total, dtype=np.int32)
    mdest = np.full(total, -1, dtype=np.int32)
    croot = np.empty(n_trees, dtype=np.int32)
    leaf_orig = np.empty(leaves, dtype=np.int32)
    leaf_tree = np.empty(leaves, dtype=np.int32)
    free = 0
    n_leaf = 0
    for t in range(n_trees):  # pass 2: the slots from head to free are the BFS queue
        croot[t] = free
        orig[free] = roots[t]
        depth[free] = 0
        head = free
        free += 1
        while head < free:
            v = orig[head]
            if feature[v] >= 0:
                child[head] = free
                orig[free] = left[v]
                orig[free + 1] = right[v]
                depth[free] = depth[free + 1] = depth[head] + 1
                free += 2
                m = missing_child[v]
                if m >= 0:
                    if mstamp[m] != t:  # the tree's one slot for this leaf
                        mstamp[m] = t
                        mslot[m] = free
                        orig[free] = m
                        depth[free] = depth[head] + 1
                        free += 1
                    mdest[head] = mslot[m]
            else:
                child[head] = n_leaf
                leaf_orig[n_leaf] = v
                leaf_tree[n_leaf] = t
                n_leaf += 1
            head += 1
    return orig, child, depth, mdest, croot, leaf_orig, leaf_tree, -1, -1


def _lockstep_depth(leaf_tree: np.ndarray, leaf_depth: np.ndarray, n_trees: int) -> np.ndarray:
    """Per tree ``(max depth, share depth)``: the share depth is the smallest depth that holds
    ``LOCKSTEP_SHARE`` of rows when every split halves them (a leaf at depth d gets
    ``2**-d``)."""
    out = np.zeros((n_trees, 2), dtype=np.int64)
    if leaf_tree.size == 0:
        return out
    max_d = int(leaf_depth.max())
    share = np.zeros((n_trees, max_d + 1))
    np.add.at(share, (leaf_tree, leaf_depth), np.ldexp(1.0, -leaf_depth.astype(np.int64)))
    reached = np.cumsum(share, axis=1) >= LOCKSTEP_SHARE - 1e-12
    reached[:, -1] = True
    out[:, 1] = np.argmax(reached, axis=1)
    np.maximum.at(out[:, 0], leaf_tree, leaf_depth)
    return out


def _below(t: np.ndarray, dtype: type, strict: bool) -> np.ndarray:
    """Per threshold ``t`` (float64), the largest ``dtype`` value ``<= t`` (``< t`` if strict).

    Then ``x <= result`` in ``dtype`` equals ``x <= t`` (``x < t``) for every non-NaN ``x`` of
    ``dtype``. A threshold no value can pass (``< -inf``, or NaN) becomes NaN.
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = t.astype(dtype)
        too_big = (r.astype(np.float64) >= t) if strict else (r.astype(np.float64) > t)
        r = np.where(too_big, np.nextafter(r, dtype(-np.inf)), r).astype(dtype)
    if strict:
        r = np.where(t == -np.inf, dtype(np.nan), r).astype(dtype)
    return r


# --- binding ---------------------------------------------------------------------------------
@dataclass
class TreeTables:
    """The validated op tables in their original (global-row) form, for the reference."""

    in_cols: np.ndarray        # (f,) workspace columns of the inputs
    out_cols: np.ndarray       # (k,) workspace columns of the outputs
    base: np.ndarray           # (k,) float64
    average: bool
    acc32: bool
    cmp32: bool
    strict: bool               # split operator "<"
    root: np.ndarray           # (T,) int64
    output: np.ndarray         # (T,) int64
    scale: np.ndarray          # (T,) float64
    feature: np.ndarray        # (N,) int64
    threshold: np.ndarray      # (N,) float64
    left: np.ndarray           # (N,) int64
    right: np.ndarray          # (N,) int64
    default_left: np.ndarray   # (N,) bool
    missing: np.ndarray        # (N,) int64
    kind: np.ndarray           # (N,) int64
    missing_child: np.ndarray  # (N,) int64, -1: none (op version 2)
    values: np.ndarray         # (N, W) float64
    cat_keys: np.ndarray       # (C,) int64, sorted: node * 2**32 + category, for left sets
    refuse_overflow: bool


def _choice(step: Step, key: str, options: tuple[str, ...]) -> str:
    value = step.params.get(key)
    if value not in options:
        raise ValueError(f"tree_ensemble: params.{key} is {value!r}; expected one of "
                         f"{', '.join(repr(o) for o in options)}")
    return value


def _int_col(t: dict, name: str, role: str) -> np.ndarray:
    if name not in t:
        raise ValueError(f"tree_ensemble: table '{role}' lacks column '{name}'")
    col = np.asarray(t[name])
    if col.dtype.kind == "f":
        if not np.all(np.isfinite(col)) or np.any(col != np.trunc(col)):
            raise ValueError(f"tree_ensemble: column '{role}.{name}' must hold integers")
    elif col.dtype.kind not in "iub":
        raise ValueError(f"tree_ensemble: column '{role}.{name}' must hold integers")
    return col.astype(np.int64)


def _f64_col(t: dict, name: str, role: str) -> np.ndarray:
    if name not in t:
        raise ValueError(f"tree_ensemble: table '{role}' lacks column '{name}'")
    return np.ascontiguousarray(np.asarray(t[name], dtype=np.float64))


def read_tables(step: Step, ctx: BindContext) -> TreeTables:
    """Validate the step's params and tables (raises ValueError naming the problem)."""
    p = step.params
    k = int(p["n_outputs"])
    w_leaf = int(p["leaf_width"])
    if k != len(step.outputs):
        raise ValueError(f"tree_ensemble: n_outputs is {k} but the step has "
                         f"{len(step.outputs)} outputs")
    if not 1 <= w_leaf <= k:
        raise ValueError(f"tree_ensemble: leaf_width {w_leaf} must be between 1 and "
                         f"n_outputs ({k})")
    average = _choice(step, "aggregation", ("sum", "average")) == "average"
    acc32 = _choice(step, "accumulate_dtype", ("float64", "float32")) == "float32"
    cmp32 = _choice(step, "compare_dtype", ("float64", "float32")) == "float32"
    strict = _choice(step, "split_operator", ("<=", "<")) == "<"
    base = np.asarray([float(b) for b in p["base_score"]], dtype=np.float64)
    if base.shape != (k,):
        raise ValueError(f"tree_ensemble: base_score has {base.size} values for {k} outputs")

    trees = table(step, "trees")
    root = _int_col(trees, "root", "trees")
    output = _int_col(trees, "output", "trees")
    scale = _f64_col(trees, "scale", "trees")
    nodes = table(step, "nodes")
    feature = _int_col(nodes, "feature", "nodes")
    n_nodes = feature.shape[0]
    threshold = _f64_col(nodes, "threshold", "nodes")
    left = _int_col(nodes, "left", "nodes")
    right = _int_col(nodes, "right", "nodes")
    default_left = _int_col(nodes, "default_left", "nodes").astype(bool)
    missing = _int_col(nodes, "missing", "nodes")
    kind = _int_col(nodes, "kind", "nodes")
    if "missing_child" in nodes:
        if step.op_version < 2:
            raise ValueError("tree_ensemble: column 'nodes.missing_child' needs op version 2 "
                             f"(the step says version {step.op_version})")
        missing_child = _int_col(nodes, "missing_child", "nodes")
    else:
        missing_child = np.full(n_nodes, -1, dtype=np.int64)
    values = np.column_stack([_f64_col(nodes, f"value_{w}", "nodes") for w in range(w_leaf)]
                             ) if n_nodes else np.zeros((0, w_leaf))
    for name, col, n in (("trees.output", output, root.shape[0]),
                         ("trees.scale", scale, root.shape[0]),
                         *((f"nodes.{c}", a, n_nodes) for c, a in (
                             ("threshold", threshold), ("left", left), ("right", right),
                             ("default_left", default_left), ("missing", missing),
                             ("kind", kind), ("missing_child", missing_child)))):
        if col.shape[0] != n:
            raise ValueError(f"tree_ensemble: column {name} has {col.shape[0]} rows, "
                             f"expected {n}")
    n_trees = root.shape[0]
    if average and n_trees == 0:
        raise ValueError("tree_ensemble: aggregation 'average' over an empty trees table")
    bad = np.flatnonzero((root < 0) | (root >= n_nodes))
    if bad.size:
        raise ValueError(f"tree_ensemble: tree {bad[0]} has root {root[bad[0]]}, outside the "
                         f"{n_nodes} rows of the nodes table")
    bad = np.flatnonzero((output < 0) | (output + w_leaf > k))
    if bad.size:
        raise ValueError(f"tree_ensemble: tree {bad[0]} writes outputs {output[bad[0]]}.."
                         f"{output[bad[0]] + w_leaf - 1}, but there are {k} outputs")
    n_in = len(step.inputs)
    bad = np.flatnonzero((feature < -1) | (feature >= n_in))
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]} reads feature {feature[bad[0]]}; the "
                         f"step has {n_in} inputs")
    internal = feature >= 0
    for name, col in (("left", left), ("right", right)):
        bad = np.flatnonzero(internal & ((col < 0) | (col >= n_nodes)))
        if bad.size:
            raise ValueError(f"tree_ensemble: node {bad[0]} has {name} child {col[bad[0]]}, "
                             f"outside the {n_nodes} rows of the nodes table")
    bad = np.flatnonzero((missing < 0) | (missing > 2))
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]} has missing kind {missing[bad[0]]} "
                         "(expected 0, 1 or 2)")
    bad = np.flatnonzero((kind < 0) | (kind > 1))
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]} has kind {kind[bad[0]]} "
                         "(expected 0 numeric or 1 categorical)")
    has_mc = missing_child >= 0
    bad = np.flatnonzero(has_mc & ~internal | (missing_child >= n_nodes)
                         | (missing_child < -1))
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]} has missing_child "
                         f"{missing_child[bad[0]]} (a split's leaf row, or -1)")
    bad = np.flatnonzero(has_mc & (kind != 0))
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]} is a categorical split with a "
                         "missing_child (only numeric splits may have one)")
    bad = np.flatnonzero(has_mc)
    bad = bad[feature[missing_child[bad]] >= 0]
    if bad.size:
        raise ValueError(f"tree_ensemble: node {bad[0]}'s missing_child "
                         f"{missing_child[bad[0]]} is not a leaf")

    cat_keys = np.zeros(0, dtype=np.int64)
    if "categories" in step.tables:
        cats = step.tables["categories"]
        cnode = _int_col(cats, "node", "categories")
        ccat = _int_col(cats, "category", "categories")
        if cnode.shape != ccat.shape:
            raise ValueError("tree_ensemble: categories.node and categories.category differ "
                             "in length")
        bad = np.flatnonzero((cnode < 0) | (cnode >= n_nodes))
        if bad.size:
            raise ValueError(f"tree_ensemble: categories row {bad[0]} names node "
                             f"{cnode[bad[0]]}, outside the nodes table")
        bad = np.flatnonzero((kind[cnode] != 1) | (feature[cnode] < 0))
        if bad.size:
            raise ValueError(f"tree_ensemble: categories row {bad[0]} names node "
                             f"{cnode[bad[0]]}, which is not a categorical split")
        bad = np.flatnonzero((ccat < 0) | (ccat >= 2**31))
        if bad.size:
            raise ValueError(f"tree_ensemble: categories row {bad[0]} has category "
                             f"{ccat[bad[0]]} (expected 0 .. 2**31-1)")
        cat_keys = np.unique(cnode * (1 << 32) + ccat)
    return TreeTables(
        in_cols=ctx.cols(step.inputs, step=step), out_cols=ctx.cols(step.outputs, step=step),
        base=base, average=average, acc32=acc32, cmp32=cmp32, strict=strict, root=root,
        output=output, scale=scale, feature=feature, threshold=threshold, left=left,
        right=right, default_left=default_left, missing=missing, kind=kind,
        missing_child=missing_child, values=values,
        cat_keys=cat_keys, refuse_overflow=bool(p.get("refuse_overflow", False)))


def compile_tables(tt: TreeTables) -> tuple:
    """The kernel's arguments after ``ws`` (see the layout notes above ``_slow_step``)."""
    cmp_dtype = np.float32 if tt.cmp32 else np.float64
    acc_dtype = np.float32 if tt.acc32 else np.float64
    if tt.feature.size and tt.feature.max() >= 2**26:
        raise ValueError("tree_ensemble: feature indexes above 2**26 are not supported")
    orig, child, depth, mdest, croot, leaf_orig, leaf_tree, bad_tree, bad_node = _relayout(
        tt.root.astype(np.int32), tt.feature.astype(np.int32), tt.left.astype(np.int32),
        tt.right.astype(np.int32), tt.missing_child.astype(np.int32))
    if bad_node >= 0:
        raise ValueError(f"tree_ensemble: tree {bad_tree} reaches node {bad_node} twice; the "
                         "nodes of a tree must form a tree (no cycles, no shared nodes)")
    if orig.shape[0] >= 2**31 - 2:
        raise ValueError("tree_ensemble: more than 2**31 nodes")
    n_slots = orig.shape[0]

    # per original node: threshold with the operator folded in, and flags
    thr_o = _below(tt.threshold, cmp_dtype, tt.strict)
    # Missing kind 2 at a numeric split (NaN is compared as 0.0) sends NaN to 0.0's side of
    # the split for every row: that is missing kind 0 with 0.0's side as the default child,
    # which the fast step takes (LightGBM's usual missing type "None" would otherwise send
    # every node of the model the slow way).
    none_fast = (tt.kind == 0) & (tt.missing == 2) & ~np.isnan(thr_o)
    missing = np.where(none_fast, 0, tt.missing)
    default_left = np.where(none_fast, thr_o >= 0, tt.default_left)
    flags = (default_left.astype(np.int64) * _DEFAULT_LEFT
             + (tt.kind == 1) * _CATEGORICAL + (missing << _MISSING_SHIFT))
    # A NaN t' defeats the fast step's NaN handling: send those nodes the slow way.
    flags = np.where(np.isnan(thr_o) & (tt.kind == 0) & (missing == 0),
                     flags | (_MISSING_SLOW << _MISSING_SHIFT), flags)
    fast = (flags & ~_DEFAULT_LEFT) == 0
    feat_o = np.where(fast, tt.feature * 2 + (1 - (flags & _DEFAULT_LEFT)),
                      ~(tt.feature * (1 << _FLAG_BITS) + flags))

    leaf = tt.feature[orig] < 0
    slots = np.arange(n_slots)
    nodes = np.zeros((n_slots, 4), dtype=np.int32)
    nodes[:, 0] = np.where(leaf, 0, feat_o[orig])
    nodes[:, 1] = np.where(leaf, slots, child)
    nodes[:, 2] = np.where(leaf, child, 0)
    thr = np.where(leaf, cmp_dtype(np.inf), thr_o[orig]).astype(cmp_dtype)

    # categorical left sets: bitsets of uint32 words, one run of words per original node
    cat_words = np.zeros(1, dtype=np.uint32)
    if tt.cat_keys.size:
        nodes_c = tt.cat_keys >> 32
        cats = tt.cat_keys & 0xFFFFFFFF
        ref_o = np.zeros((tt.feature.shape[0], 2), dtype=np.int64)
        chunks = []
        start = 0
        for node in np.unique(nodes_c):
            mine = cats[nodes_c == node]
            words = np.zeros(int(mine.max()) // 32 + 1, dtype=np.uint32)
            np.bitwise_or.at(words, mine // 32, np.left_shift(
                np.uint32(1), (mine % 32).astype(np.uint32)))
            ref_o[node] = (start, words.shape[0])
            chunks.append(words)
            start += words.shape[0]
        cat_words = np.concatenate(chunks)
        nodes[~leaf, 2:] = ref_o[orig[~leaf]]
    # numeric splits: the slot a missing value goes to; a leaf stays put (its step reads
    # column 0, which may be NaN)
    nodes[leaf, 3] = slots[leaf]
    num = ~leaf & (tt.kind[orig] == 0)
    # (under missing kind 2 no value is missing: NaN compares as 0.0, missing_child unused)
    mdest = np.where(tt.missing[orig] == 2, -1, mdest)
    nodes[num, 3] = np.where(mdest[num] >= 0, mdest[num],
                             child[num] + 1 - default_left[orig[num]].astype(np.int32))

    if tt.acc32:  # float32 product of the float32-rounded factors
        leafv = (tt.scale[leaf_tree].astype(np.float32)[:, None]
                 * tt.values[leaf_orig].astype(np.float32))
    else:
        leafv = tt.scale[leaf_tree][:, None] * tt.values[leaf_orig]
    leafv = np.ascontiguousarray(leafv, dtype=acc_dtype).reshape(-1, tt.values.shape[1])
    n_trees = tt.root.shape[0]
    trees = np.zeros((n_trees, 5), dtype=np.int32)
    trees[:, 0] = croot
    trees[:, 1] = tt.output
    trees[:, 2:4] = _lockstep_depth(leaf_tree, depth[leaf], n_trees)  # leaves in ordinal order
    # column 4: the tree has a split the plain walk cannot take (categorical, a missing
    # rule other than "NaN is missing", a threshold no value passes)
    slow_slot = nodes[:, 0] < 0
    if n_trees:
        tree_of_slot = np.searchsorted(croot, slots, side="right") - 1
        trees[:, 4] = np.bincount(tree_of_slot[slow_slot], minlength=n_trees) > 0
    # the plain walk's unsigned arrays: feature, left child (a leaf: itself), missing
    # destination (a leaf: itself), leaf value row
    featu = np.where(leaf | slow_slot, 0, nodes[:, 0] >> 1).astype(np.uint32)
    childu = nodes[:, 1].astype(np.uint32)
    missu = nodes[:, 3].astype(np.uint32)
    leafu = np.where(leaf, nodes[:, 2], 0).astype(np.uint32)
    if not slow_slot.any():
        # every tree walks the plain arrays: the general layout is never read, keep none
        nodes = np.zeros((0, 4), dtype=np.int32)
    base = tt.base.astype(acc_dtype)
    divisor = (np.array([n_trees], dtype=acc_dtype) if tt.average
               else np.zeros(0, dtype=acc_dtype))
    zero_thr = _below(np.array([ZERO_THRESHOLD]), cmp_dtype, False)[0]
    return (tt.in_cols, tt.out_cols, thr, np.ascontiguousarray(nodes), cat_words, zero_thr,
            leafv, trees, base, divisor, tt.refuse_overflow, BLOCK_ROWS, featu, childu, missu,
            leafu, None)


def float64_args(args: tuple) -> tuple:
    """The batch and parallel kernels' arguments ``args`` (:func:`compile_tables`, in the
    step's own dtypes) with the compare and accumulation dtypes' arrays in float64 and the
    ``rounding`` bits saying where they were float32: the same results, bit for bit.

    Why it is exact: a float32 threshold, leaf value, base score or divisor is a float64
    without rounding; an input rounded to float32 and widened compares with a widened
    threshold as the two float32 values compare; and the sum or quotient of two float32
    values computed in float64 and then rounded to float32 is the float32 sum or quotient
    (float64 has more than 2 * 24 + 2 significand bits, so the double rounding is
    innocuous). Why it exists: Numba compiles a kernel once per tuple of argument types, for
    several seconds; every tree ensemble a server loads verifies on this one float64
    variant, and the step's own variant (half the memory traffic for float32) is compiled
    once the server is ready (:attr:`scorer.ops.Bound.specialised`).
    """
    (in_cols, out_cols, thr, nodes, cat_words, zero_thr, leafv, trees, base, divisor,
     refuse_overflow, block, featu, childu, missu, leafu, rounding) = args
    rounding = 0 if rounding is None else rounding
    if thr.dtype == np.float32:
        rounding |= ROUND_COMPARE
    if leafv.dtype == np.float32:
        rounding |= ROUND_ACCUMULATE
    f64 = np.float64
    return (in_cols, out_cols, thr.astype(f64, copy=False), nodes, cat_words, f64(zero_thr),
            leafv.astype(f64, copy=False), trees, base.astype(f64, copy=False),
            divisor.astype(f64, copy=False), refuse_overflow, block, featu, childu, missu,
            leafu, rounding)


def _overflow_error(step: Step, in_cols: np.ndarray) -> Callable[[np.ndarray, int], Exception]:
    def error(ws: np.ndarray, row: int) -> Exception:
        values = ws[row, in_cols]
        with np.errstate(over="ignore"):
            bad = np.isfinite(values) & np.isinf(values.astype(np.float32))
        j = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        return FieldTypeError(
            f"row {row}: '{step.inputs[j]}' is {float(values[j])!r}, too large for float32; the "
            "original model (scikit-learn trees) refuses values outside the float32 range")
    return error


@register_op("tree_ensemble", versions=(1, 2), family="tree_ensemble")
def bind_tree_ensemble(step: Step, ctx: BindContext) -> Bound:
    tt = read_tables(step, ctx)
    args = compile_tables(tt)
    in_cols = tt.in_cols
    del tt  # the reference re-reads the tables when used: a loaded model keeps one copy
    index = {c: ctx.index[c] for c in (*step.inputs, *step.outputs)}
    cached: list[TreeTables] = []

    def reference(ws: np.ndarray, *_: object) -> int:
        if not cached:
            if not step.tables:
                raise RuntimeError(f"step '{step.name}': the reference implementation needs "
                                   "the parameter tables, which this model released "
                                   "(load it with keep_tables=True)")
            cached.append(read_tables(step, BindContext(index=index)))
        return tree_ensemble_reference(ws, cached[0])

    steps_per_row = int(args[7][:, 2].sum()) + 1  # lockstep steps of all trees
    min_rows = max(PARALLEL_MIN_ROWS, -(-PARALLEL_MIN_STEPS // steps_per_row))
    single = None
    single_args: tuple = ()
    if args[3].shape[0] == 0:  # every tree is plain (compile_tables kept no general layout)
        (in_c, out_c, thr, _, _, _, leafv, trees, base, divisor, refuse, _, featu, childu,
         missu, leafu, _) = args
        plain = np.stack([featu, childu, missu, leafu])
        # the batch kernels take rows of the same stack (views: the arrays are held once),
        # and None for the general layout: their specialisation for None leaves out the
        # general walk, so it compiles in about half the time
        args = (*args[:3], None, *args[4:12], plain[0], plain[1], plain[2], plain[3],
                args[16])
        single = tree_ensemble_row_kernel
        single_args = (pack_cols(int(refuse), in_c, out_c), thr, leafv, trees,
                       np.concatenate([base, divisor]), plain)
    # verification (and batches until the server is ready) on the float64 variant, which
    # every tree ensemble shares: one compile at start-up instead of one per dtype pair
    # (and its rounding tests cost ~3% of a batch: the step's own variant has none)
    own = args
    args = float64_args(own)
    return Bound(tree_ensemble_kernel, reference, args, parallel=tree_ensemble_parallel,
                 parallel_min_rows=min_rows, error=_overflow_error(step, in_cols),
                 single=single, single_args=single_args,
                 single_then_link=tree_ensemble_row_link_kernel if single else None,
                 specialised=own)


# --- reference -------------------------------------------------------------------------------
def tree_ensemble_reference(ws: np.ndarray, tt: TreeTables) -> int:
    """Plain NumPy implementation of op ``tree_ensemble`` (v1, v2) on the original tables.

    Walks every tree for all rows at once (one vectorised step per depth level), following
    the normative text literally: round ``x`` to the compare dtype, compare in float64 with
    the float64 threshold, then sum leaf values in tree order.
    """
    n = ws.shape[0]
    cmp = np.float32 if tt.cmp32 else np.float64
    raw = ws[:, tt.in_cols]
    with np.errstate(over="ignore"):
        X = raw.astype(cmp).astype(np.float64)  # (n, f) rounded to the compare dtype
    if tt.refuse_overflow:
        bad = np.flatnonzero((np.isinf(X) & np.isfinite(raw)).any(axis=1))
        if bad.size:
            return int(bad[0])
    acc_t = np.float32 if tt.acc32 else np.float64
    out = np.tile(tt.base.astype(acc_t), (n, 1))  # (n, k)
    for t in range(tt.root.shape[0]):
        node = np.full(n, tt.root[t], dtype=np.int64)
        while True:
            active = np.flatnonzero(tt.feature[node] >= 0)
            if active.size == 0:
                break
            nd = node[active]
            x = X[active, tt.feature[nd]]
            miss = tt.missing[nd]
            nan = np.isnan(x)
            x = np.where(nan & (miss == 2), 0.0, x)
            is_missing = (nan & (miss != 2)) | ((miss == 1) & (np.abs(x) <= ZERO_THRESHOLD))
            with np.errstate(invalid="ignore"):
                numeric = x < tt.threshold[nd] if tt.strict else x <= tt.threshold[nd]
                c = np.where((x >= 0) & (x < 2.0**32), np.trunc(x), -1).astype(np.int64)
            in_set = (c >= 0) & np.isin(nd * (1 << 32) + c, tt.cat_keys)
            go_left = np.where(is_missing, tt.default_left[nd],
                               np.where(tt.kind[nd] == 1, in_set, numeric))
            nxt = np.where(go_left, tt.left[nd], tt.right[nd])
            mc = tt.missing_child[nd]
            node[active] = np.where(is_missing & (mc >= 0), mc, nxt)
        lo = tt.output[t]
        w = tt.values.shape[1]
        if tt.acc32:
            out[:, lo:lo + w] += np.float32(tt.scale[t]) * tt.values[node].astype(np.float32)
        else:
            out[:, lo:lo + w] += tt.scale[t] * tt.values[node]
    if tt.average:
        out /= acc_t(tt.root.shape[0])
    ws[:, tt.out_cols] = out
    return -1
