"""Family ``predicate_tree``: decision trees whose nodes carry general predicates (PMML).

Op ``predicate_tree`` version 1 (normative)
-------------------------------------------
A forest of trees whose nodes hold a *predicate*: a program of the ``expression`` op (same
opcodes, see :mod:`scorer.kernels.expression`) that leaves 1.0 (true), 0.0 (false) or NaN
(unknown) on the stack. Children are tried in table order; the first true child wins (PMML's
document order).

params
    ``n_outputs`` (int ``k``), ``leaf_width`` (int ``W``), ``aggregation`` (``"sum"``,
    ``"average"`` or ``"none"``), ``accumulate_dtype`` (``"float64"`` / ``"float32"``).

tables
    ``program`` (``opcode``, ``arg``, ``value``) and optional ``sets`` as for ``expression``;
    ``LOAD`` reads the step's inputs.

    ``trees``: int32 ``root`` (node row), int32 ``output`` (first output column the tree's
    values go to), int8 ``missing`` (what an unknown child predicate does: 0 ``none`` -- it
    counts as false; 1 ``lastPrediction`` -- stop, the current node is the result;
    2 ``nullPrediction`` -- stop, no result; 3 ``defaultChild`` -- continue at the node's
    ``default_child``, no result if it has none), int8 ``no_true_child`` (a non-leaf node whose
    children are all false: 0 no result, 1 the node itself is the result).

    ``nodes``: int32 ``pred_start``, ``pred_end`` (the node's predicate is instructions
    ``[pred_start, pred_end)`` of ``program``), int32 ``first_child``, ``n_children`` (the
    children are rows ``first_child .. first_child + n_children - 1``), int32
    ``default_child`` (row or -1), float64 ``value_0 .. value_{W-1}`` (NaN where the node has
    no score).

Per row and tree: if the root's predicate is not true there is no result. Otherwise walk as
above. The result node's values (or, with no result, NaN for each of the ``W`` values) are
written to ``out[output[t] + w]`` (``"none"``: each output is written by one tree) or added
(``"sum"``; ``"average"`` then divides by the number of trees). NaN propagates through the
sum (PMML's ``missingPredictionTreatment="returnMissing"``). With ``accumulate_dtype``
float32, every partial sum is rounded to float32.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, index_col, table
from .expression import _ARITY, _binary, check_program, program_arrays, run_program

_AGG = {"none": 0, "sum": 1, "average": 2}
#: rows per parallel work item, and the batch size from which the parallel kernel is used
BLOCK_ROWS = 256
PARALLEL_MIN_ROWS = 2048


@njit(cache=True, nogil=True, error_model="numpy")
def _pred(ws, i, in_cols, opcode, arg, value, sets, start, end, stack):
    """A node predicate's truth value; the common shapes ``x <op> c`` and ``x in S`` skip the
    interpreter loop (same results as :func:`run_program`)."""
    n = end - start
    if n >= 2 and opcode[start] == 1:
        op = opcode[start + 1]
        if n == 3 and op == 0:
            c = opcode[start + 2]
            if c >= 20 and c <= 25:  # field <op> constant: the interpreter's comparison
                return _binary(c, ws[i, in_cols[arg[start]]], value[start + 1])
        elif n == 2 and op == 70:
            x = ws[i, in_cols[arg[start]]]
            if math.isnan(x):
                return math.nan
            s0 = arg[start + 1]
            for m in range(s0, s0 + int(value[start + 1])):
                if sets[m] == x:
                    return 1.0
            return 0.0
    elif n == 1 and opcode[start] == 0:
        return value[start]
    return run_program(ws, i, in_cols, in_cols, opcode, arg, value, sets, start, end, stack)


@njit(cache=True, nogil=True, error_model="numpy")
def _walk(ws, i, in_cols, opcode, arg, value, sets, pred_start, pred_end, first_child,
          n_children, default_child, root, missing, no_true, stack):
    """Row ``i``'s result node in the tree rooted at ``root``, or -1 for no result."""
    r = _pred(ws, i, in_cols, opcode, arg, value, sets, pred_start[root], pred_end[root],
              stack)
    if math.isnan(r) or r == 0.0:
        return -1
    node = root
    while n_children[node] > 0:
        chosen = -1
        c0 = first_child[node]
        for c in range(c0, c0 + n_children[node]):
            r = _pred(ws, i, in_cols, opcode, arg, value, sets, pred_start[c], pred_end[c],
                      stack)
            if math.isnan(r):
                if missing == 0:
                    continue
                if missing == 1:
                    return node
                if missing == 2:
                    return -1
                chosen = default_child[node]
                if chosen < 0:
                    return -1
                break
            if r != 0.0:
                chosen = c
                break
        if chosen < 0:
            return node if no_true == 1 else -1
        node = chosen
    return node


@njit(cache=True, nogil=True, error_model="numpy")
def _score_rows(ws, r0, r1, in_cols, out_cols, opcode, arg, value, sets, roots, toff,
                tmissing, tno_true, pred_start, pred_end, first_child, n_children,
                default_child, leafv, agg, acc32):
    """Score rows ``r0 .. r1`` (own scratch space, so blocks can run on separate threads)."""
    stack = np.empty(opcode.shape[0] + 1, dtype=np.float64)
    k = out_cols.shape[0]
    w_leaf = leafv.shape[1]
    acc = np.empty(k, dtype=np.float64)
    for i in range(r0, r1):
        for j in range(k):
            acc[j] = 0.0
        for t in range(roots.shape[0]):
            node = _walk(ws, i, in_cols, opcode, arg, value, sets, pred_start, pred_end,
                         first_child, n_children, default_child, roots[t], tmissing[t],
                         tno_true[t], stack)
            o = toff[t]
            for w in range(w_leaf):
                v = leafv[node, w] if node >= 0 else math.nan
                if agg == 0:
                    acc[o + w] = v
                elif acc32:
                    acc[o + w] = float(np.float32(acc[o + w]) + np.float32(v))
                else:
                    acc[o + w] += v
        for j in range(k):
            if agg == 2:
                if acc32:
                    ws[i, out_cols[j]] = float(np.float32(acc[j]) / np.float32(roots.shape[0]))
                else:
                    ws[i, out_cols[j]] = acc[j] / roots.shape[0]
            else:
                ws[i, out_cols[j]] = acc[j]


@njit(cache=True, nogil=True, error_model="numpy")
def predicate_tree_kernel(ws, in_cols, out_cols, opcode, arg, value, sets, roots, toff,
                          tmissing, tno_true, pred_start, pred_end, first_child, n_children,
                          default_child, leafv, agg, acc32):
    """Score every row of the workspace.

    Parameters
    ----------
    ws : float64 array of shape (n_rows, n_columns)
    in_cols, out_cols : int64 arrays of shape (n_inputs,), (n_outputs,)
    opcode, arg, value, sets : the predicate programs (see :mod:`.expression`)
    roots, toff : int32 arrays of shape (n_trees,)
        Root node row and first output of each tree.
    tmissing, tno_true : int32 arrays of shape (n_trees,)
        Missing-value strategy and no-true-child strategy codes of each tree.
    pred_start, pred_end, first_child, n_children, default_child : int32 arrays of shape
        (n_nodes,)
    leafv : float64 array of shape (n_nodes, leaf_width)
    agg : int
        0 write, 1 sum, 2 average.
    acc32 : bool
        Accumulate in float32.

    Returns
    -------
    int
        Always -1 (no row is refused).
    """
    _score_rows(ws, 0, ws.shape[0], in_cols, out_cols, opcode, arg, value, sets, roots, toff,
                tmissing, tno_true, pred_start, pred_end, first_child, n_children,
                default_child, leafv, agg, acc32)
    return -1


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def predicate_tree_parallel(ws, in_cols, out_cols, opcode, arg, value, sets, roots, toff,
                            tmissing, tno_true, pred_start, pred_end, first_child, n_children,
                            default_child, leafv, agg, acc32):
    n = ws.shape[0]
    n_blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in prange(n_blocks):
        r0 = b * BLOCK_ROWS
        _score_rows(ws, r0, min(r0 + BLOCK_ROWS, n), in_cols, out_cols, opcode, arg, value,
                    sets, roots, toff, tmissing, tno_true, pred_start, pred_end, first_child,
                    n_children, default_child, leafv, agg, acc32)
    return -1


def predicate_tree_reference(ws, in_cols, out_cols, opcode, arg, value, sets, roots, toff,
                             tmissing, tno_true, pred_start, pred_end, first_child, n_children,
                             default_child, leafv, agg, acc32):
    """The same walk with Python control flow (uses the interpreter's Python function)."""
    walk = _walk.py_func
    stack = np.empty(len(opcode) + 1)
    for i in range(ws.shape[0]):
        acc = np.zeros(len(out_cols))
        for t in range(len(roots)):
            node = walk(ws, i, in_cols, opcode, arg, value, sets, pred_start, pred_end,
                        first_child, n_children, default_child, roots[t], tmissing[t],
                        tno_true[t], stack)
            vals = leafv[node] if node >= 0 else np.full(leafv.shape[1], np.nan)
            o = toff[t]
            if agg == 0:
                acc[o:o + len(vals)] = vals
            elif acc32:
                acc[o:o + len(vals)] = (acc[o:o + len(vals)].astype(np.float32)
                                        + vals.astype(np.float32))
            else:
                acc[o:o + len(vals)] += vals
        if agg == 2:
            acc = (acc.astype(np.float32) / np.float32(len(roots))) if acc32 else acc / len(roots)
        ws[i, out_cols] = acc
    return -1


@register_op("predicate_tree", family="predicate_tree")
def bind_predicate_tree(step: Step, ctx: BindContext) -> Bound:
    opcode, arg, value = program_arrays(table(step, "program"))
    sets = f64(step.tables.get("sets", {"value": np.zeros(0)})["value"])
    check_program(opcode, arg, value, len(sets), len(step.inputs), 0,
                  what=f"predicate_tree step '{step.name}'")
    if np.any(np.isin(opcode, (2, 3, 75))):
        raise ValueError("predicate programs cannot read or write outputs, nor refuse rows")
    k = int(step.params["n_outputs"])
    w = int(step.params["leaf_width"])
    agg = _AGG[step.params.get("aggregation", "sum")]
    acc32 = step.params.get("accumulate_dtype", "float64") == "float32"
    tr = table(step, "trees")
    nd = table(step, "nodes")

    def i64(t: dict, role: str, name: str) -> np.ndarray:
        # int64 for the checks, whatever the stored type (a stored value outside int32 is
        # refused here rather than wrapped into range by the narrowing below)
        return index_col(t[name], f"predicate_tree: {role}.{name}", np.int32).astype(np.int64)

    roots, toff = i64(tr, "trees", "root"), i64(tr, "trees", "output")
    tmissing = i64(tr, "trees", "missing")
    tno_true = i64(tr, "trees", "no_true_child")
    ps, pe = i64(nd, "nodes", "pred_start"), i64(nd, "nodes", "pred_end")
    fc, nc = i64(nd, "nodes", "first_child"), i64(nd, "nodes", "n_children")
    dc = i64(nd, "nodes", "default_child")
    leafv = np.ascontiguousarray(np.column_stack([f64(nd[f"value_{j}"]) for j in range(w)]))
    n_nodes = len(ps)
    # Every bound below is computed in int64: in int32, output + w and first_child +
    # n_children wrap to negative numbers for values near 2**31 and pass the checks (an
    # output of 2**31-1 then wrote far outside the accumulator: SIGSEGV).
    if len(step.outputs) != k or np.any(toff < 0) or np.any(toff + w > k):
        raise ValueError("predicate_tree: tree outputs out of range")
    if np.any((roots < 0) | (roots >= n_nodes)) or np.any((dc < -1) | (dc >= n_nodes)):
        raise ValueError("predicate_tree: node reference out of range")
    if np.any((nc < 0) | ((nc > 0) & ((fc < 0) | (fc + nc > n_nodes)))):
        raise ValueError("predicate_tree: children out of range")
    if np.any((ps < 0) | (pe < ps) | (pe > len(opcode))):
        raise ValueError("predicate_tree: predicate range out of range")
    _check_node_programs(opcode, arg, ps, pe)
    rows = np.arange(n_nodes)
    if np.any((dc >= 0) & (dc <= rows)):
        raise ValueError("predicate_tree: a default child must come after its parent")
    _check_acyclic(roots, fc, nc)

    def i32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.astype(np.int32))  # in range: checked above

    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), opcode, arg,
            value, sets, i32(roots), i32(toff), i32(tmissing), i32(tno_true), i32(ps), i32(pe),
            i32(fc), i32(nc), i32(dc), leafv, agg, acc32)
    return Bound(predicate_tree_kernel, predicate_tree_reference, args,
                 parallel=predicate_tree_parallel, parallel_min_rows=PARALLEL_MIN_ROWS)


def _check_node_programs(opcode: np.ndarray, arg: np.ndarray, ps: np.ndarray,
                         pe: np.ndarray) -> None:
    """Each node's predicate ``[pred_start, pred_end)`` runs on an empty stack, so it must not
    pop more than it pushed within its own range (``check_program`` checks the depth of the
    whole program from its first instruction, which says nothing about a range that starts
    in the middle: there the kernel's stack pointer went below zero and off the stack).

    With ``D[j]`` the whole program's depth before instruction ``j``, a range starting at
    ``s`` has depth ``D[j] - D[s]`` before ``j``, which must be at least ``j``'s pops: so
    ``min(D[j] - pops[j] for j in range) >= D[s]``, one range-minimum per node."""
    n = len(opcode)
    pops = np.zeros(n, dtype=np.int64)
    delta = np.zeros(n, dtype=np.int64)
    for pc, op in enumerate(opcode.tolist()):  # arity as check_program applies it (no skips)
        p, q = _ARITY[op]
        if p < 0:
            p = -p * int(arg[pc])
        pops[pc], delta[pc] = p, q - p
    depth = np.concatenate([[0], np.cumsum(delta)])  # D[0 .. n]
    need = np.append(depth[:-1] - pops, np.iinfo(np.int64).max)  # sentinel: reduceat at n
    ranges = np.flatnonzero(pe > ps)
    if not len(ranges):
        return
    bounds = np.empty(2 * len(ranges), dtype=np.int64)
    bounds[0::2], bounds[1::2] = ps[ranges], pe[ranges]
    lowest = np.minimum.reduceat(need, bounds)[0::2]  # min over [ps, pe) of each node
    bad = ranges[lowest < depth[ps[ranges]]]
    if len(bad):
        raise ValueError(f"predicate_tree: node {bad[0]}'s predicate (instructions "
                         f"{ps[bad[0]]}..{pe[bad[0]]}) pops more than it pushes")


def _check_acyclic(roots: np.ndarray, fc: np.ndarray, nc: np.ndarray) -> None:
    """Children must have larger row numbers than their parent, so every walk ends."""
    parents = np.flatnonzero(nc > 0)
    if len(parents) and np.any(fc[parents] <= parents):
        raise ValueError("predicate_tree: a child must come after its parent")
