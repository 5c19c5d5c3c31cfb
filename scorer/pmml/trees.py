"""PMML TreeModel forests -> ``tree_ensemble`` (simple threshold splits) or
``predicate_tree`` (general predicates) steps.

A PMML tree tries a node's children in document order and follows the first whose predicate
is true. When every split of every tree is a pair of complementary single-field threshold
tests (``x < t`` / ``x >= t`` or ``x <= t`` / ``x > t``) that order does not matter and the
forest compiles to the fast ``tree_ensemble`` kernel. What PMML does with a missing value
(``missingValueStrategy``, ``noTrueChildStrategy``) is reproduced there with a guard node:
the split sends NaN to a node testing ``x <= +inf`` on the same field, whose NaN side is a
leaf holding the PMML result for a missing value (NaN, or the parent's score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..ir import Table
from .expressions import predicate, resolve, split_constant
from .fields import Scope, array_values, constant_for, fail
from .program import Program
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader

#: compile eligible forests to ``tree_ensemble`` (False: always ``predicate_tree``; the tests
#: use it to check that both paths agree)
FAST_PATH = True

_MISSING = {"none": 0, "lastPrediction": 1, "nullPrediction": 2, "defaultChild": 3}
_NO_TRUE = {"returnNullPrediction": 0, "returnLastPrediction": 1}
_PRED_TAGS = ("True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate")


@dataclass
class TNode:
    pred: Element
    values: list[float]
    children: list[TNode] = field(default_factory=list)
    default: int = -1  # index into children
    #: an embedded ``<Regression>`` (LightGBM linear trees): its value is the node's value
    regression: Element | None = None


@dataclass
class Tree:
    root: TNode
    missing: int
    no_true: int
    output: int
    scope: Scope
    #: the segment's weight (weighted sums): multiplies embedded regressions' values, which
    #: ``values_of`` cannot scale (constant scores arrive already weighted)
    weight: float = 1.0


def parse_tree(model: Element, values_of, output: int, scope: Scope, *,
               weight: float = 1.0) -> Tree:
    """Read a TreeModel's node structure; ``values_of(node_el)`` gives a node's values."""
    ms = model.get("missingValueStrategy", "none")
    if ms not in _MISSING:
        raise fail(model, f"missingValueStrategy='{ms}' not supported")
    nt = model.get("noTrueChildStrategy", "returnNullPrediction")
    if nt not in _NO_TRUE:
        raise fail(model, f"noTrueChildStrategy='{nt}' not supported")
    if model.get("splitCharacteristic", "multiSplit") not in ("binarySplit", "multiSplit"):
        raise fail(model, "splitCharacteristic not supported")
    root_el = model.find("Node")
    if root_el is None:
        raise fail(model, "has no Node")

    def build(el: Element) -> TNode:
        preds = [c for c in el.children if c.tag in _PRED_TAGS]
        if len(preds) != 1:
            raise fail(el, "needs exactly one predicate")
        for c in el.children:
            if c.tag not in (*_PRED_TAGS, "Node", "ScoreDistribution", "Extension",
                             "Regression"):
                raise fail(c, "not supported inside a Node")
        node = TNode(preds[0], values_of(el))
        regs = el.findall("Regression")
        if len(regs) > 1:
            raise fail(regs[1], "a Node holds at most one Regression")
        if regs:
            _node_regression(regs[0])
            node.regression = regs[0]
        kids = el.findall("Node")
        node.children = [build(k) for k in kids]
        dc = el.get("defaultChild")
        if dc is not None:
            ids = [k.get("id") for k in kids]
            if dc not in ids:
                raise fail(el, f"defaultChild '{dc}' is not a child of this node")
            node.default = ids.index(dc)
        return node

    # deep trees: Python recursion is bounded by the XML depth cap (MAX_DEPTH)
    return Tree(build(root_el), _MISSING[ms], _NO_TRUE[nt], output, scope, weight)


def _node_regression(reg: Element) -> Element:
    """The single RegressionTable of a Node's ``<Regression>`` (a plain linear regression)."""
    if reg.get("functionName", "regression") != "regression":
        raise fail(reg, f"functionName='{reg.get('functionName')}' inside a Node")
    if reg.get("normalizationMethod", "none") != "none":
        raise fail(reg, f"normalizationMethod='{reg.get('normalizationMethod')}' inside a Node")
    tables = reg.findall("RegressionTable")
    for c in reg.children:
        if c.tag not in ("RegressionTable", "Extension", "MiningSchema"):
            raise fail(c, "not supported in a Node's Regression")
    if len(tables) != 1:
        raise fail(reg, "needs exactly one RegressionTable")
    return tables[0]


def _walk(node: TNode):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def emit_forest(rd: Reader, trees: list[Tree], *, n_outputs: int, width: int,
                aggregation: str, acc32: bool, name: str) -> list[str]:
    """Add one step scoring ``trees``; returns its ``n_outputs`` output columns."""
    if any(n.regression is not None for t in trees for n in _walk(t.root)):
        return _emit_linear_forest(rd, trees, n_outputs=n_outputs, width=width,
                                   aggregation=aggregation, acc32=acc32, name=name)
    fast = _as_tree_ensemble(rd, trees, n_outputs=n_outputs, width=width,
                             aggregation=aggregation, acc32=acc32) if FAST_PATH else None
    if fast is not None:
        inputs, params, tables = fast
        outs = rd.g.new_columns(name, n_outputs)
        rd.g.add_step("tree_ensemble", name=name, inputs=inputs, outputs=outs,
                      family="tree_ensemble", params=params, tables=tables,
                      version=2 if "missing_child" in tables["nodes"] else 1)
        rd.fast_trees += len(trees)
        return outs
    prog = Program(rd.budget)
    nodes: dict[str, list] = {k: [] for k in ("pred_start", "pred_end", "first_child",
                                              "n_children", "default_child")}
    values: list[list[float]] = []
    roots: list[int] = []
    for t in trees:
        # breadth first, so that a node's children are consecutive rows after it
        base = len(values)
        order = [t.root]
        rows = {id(t.root): base}
        i = 0
        while i < len(order):
            n = order[i]
            for c in n.children:
                rows[id(c)] = base + len(order)
                order.append(c)
            i += 1
        roots.append(base)
        for n in order:
            start = len(prog)
            predicate(rd, n.pred, t.scope, prog)
            nodes["pred_start"].append(start)
            nodes["pred_end"].append(len(prog))
            nodes["first_child"].append(rows[id(n.children[0])] if n.children else -1)
            nodes["n_children"].append(len(n.children))
            nodes["default_child"].append(rows[id(n.children[n.default])]
                                          if n.default >= 0 else -1)
            values.append(n.values)
    tables: dict[str, Table] = prog.tables()
    tables["trees"] = {"root": np.asarray(roots, dtype=np.int32),
                       "output": np.asarray([t.output for t in trees], dtype=np.int32),
                       "missing": np.asarray([t.missing for t in trees], dtype=np.int8),
                       "no_true_child": np.asarray([t.no_true for t in trees], dtype=np.int8)}
    nt = {k: np.asarray(v, dtype=np.int32) for k, v in nodes.items()}
    vals = np.asarray(values, dtype=np.float64).reshape(len(values), width)
    for w in range(width):
        nt[f"value_{w}"] = vals[:, w].copy()
    tables["nodes"] = nt
    outs = rd.g.new_columns(name, n_outputs)
    rd.g.add_step("predicate_tree", name=name, inputs=prog.inputs, outputs=outs,
                  family="predicate_tree", tables=tables,
                  params={"n_outputs": n_outputs, "leaf_width": width,
                          "aggregation": aggregation,
                          "accumulate_dtype": "float32" if acc32 else "float64"})
    rd.general_trees += len(trees)
    return outs


def _emit_linear_forest(rd: Reader, trees: list[Tree], *, n_outputs: int, width: int,
                        aggregation: str, acc32: bool, name: str) -> list[str]:
    """Regression trees whose nodes embed linear regressions (LightGBM ``linear_tree``).

    Two steps: the trees, scored as usual but with each node's value replaced by the node's
    number in its tree (one output column per tree), then an ``expression`` step giving each
    tree the value of the node it reached (its regression, or its constant score) and
    combining the trees in order. Where a predictor of the node's regression is missing,
    the node's value is its ``score`` (LightGBM's fallback, which JPMML reproduces)."""
    first = next(n.regression for t in trees for n in _walk(t.root) if n.regression is not None)
    if width != 1 or n_outputs != 1:
        raise fail(first, "a Regression inside a Node is supported in regression trees only")
    if aggregation not in ("sum", "average") or acc32 or any(t.scope.math32 for t in trees):
        raise fail(first, "a Regression inside a Node needs double-precision sum / average "
                          "trees")
    numbered: list[Tree] = []
    results: list[list[TNode]] = []  # per tree: node number -> node
    for i, t in enumerate(trees):
        nodes: list[TNode] = []
        numbered.append(Tree(_numbered(t.root, nodes), t.missing, t.no_true, i, t.scope))
        results.append(nodes)
    ids = emit_forest(rd, numbered, n_outputs=len(trees), width=1, aggregation="sum",
                      acc32=False, name=f"{name}_node")
    prog = Program(rd.budget)
    for i, (t, nodes) in enumerate(zip(trees, results, strict=True)):
        # node == k_0 ? value_0 : node == k_1 ? value_1 : ... NaN, evaluating only the value
        # of the node reached (skips); an inner node can be the result only through
        # lastPrediction / returnLastPrediction
        inner_results = t.missing == 1 or t.no_true == 1
        cands = [(k, n) for k, n in enumerate(nodes) if inner_results or not n.children]
        ends = []
        for k, n in cands:
            prog.load(ids[i])
            prog.const(float(k))
            prog.emit("EQ")
            other = prog.skip("SKIP_UNLESS")
            if n.regression is None:
                prog.const(n.values[0])
            else:
                # a missing predictor: the node's own score (as LightGBM and JPMML do)
                rd._regression_table(_node_regression(n.regression), t.scope, prog)
                if t.weight != 1.0:
                    prog.const(t.weight)
                    prog.emit("MUL")
                prog.const(n.values[0])
                prog.emit("SURROGATE")
            ends.append(prog.skip())
            prog.land(other)
        prog.const(math.nan)  # no candidate: a missing node
        for e in ends:
            prog.land(e)
        if i:
            prog.emit("ADD")
    if aggregation == "average":
        prog.const(float(len(trees)))
        prog.emit("DIV")
    prog.emit("STORE", 0)
    return rd.program_step(name, prog, 1)


def _numbered(n: TNode, nodes: list[TNode]) -> TNode:
    """A copy of the tree under ``n`` whose nodes' values are their numbers (the order they
    are appended to ``nodes``)."""
    c = TNode(n.pred, [float(len(nodes))], default=n.default)
    nodes.append(n)
    c.children = [_numbered(k, nodes) for k in n.children]
    return c


# --- fast path -------------------------------------------------------------------------------
class _NotSimple(Exception):
    """The forest has a split the ``tree_ensemble`` kernel cannot express."""


@dataclass
class _Test:
    column: str
    kind: int  # 0 numeric (left iff x <= / < threshold), 1 categorical (left iff code in set)
    op: str  # "<=" or "<" (numeric)
    threshold: float
    cats: list[int]
    true_left: bool
    dtype: str
    #: categorical: every code that can occur (besides missing), when that is known
    closed: frozenset[int] | None = None


_NUMERIC_OPS = {"lessThan": ("<", True), "lessOrEqual": ("<=", True),
                "greaterThan": ("<=", False), "greaterOrEqual": ("<", False)}


def _closed(rd: Reader, col) -> frozenset[int] | None:
    """Every code a categorical test's column can hold: the vocabulary of an input field that
    refuses invalid values, or the declared values of a closed number column; else None."""
    if col.vocab is None:
        return frozenset(int(v) for v in col.closed) if col.closed is not None else None
    f = rd._fields.get(col.column)
    if f is not None and f.type == "string" and f.unknown == "error" and not col.growable:
        return frozenset(range(len(col.vocab)))
    return None


def _number_codes(col, texts: list[str], el: Element) -> list[int]:
    """Categories of a number column whose every value is a small non-negative integer (a
    closed column; small: the split stores a bit per category up to the largest): the
    kernel's categorical test ``trunc(x) in set`` is then ``x in set``.
    Members no value can equal are dropped; :class:`_NotSimple` otherwise."""
    if col.closed is None or not all(
            v == int(v) and 0 <= v < 1 << 12 for v in col.closed if not math.isnan(v)):
        raise _NotSimple
    out = []
    for t in texts:
        v = constant_for(col.dtype, None, t, el)
        if v in col.closed:
            out.append(int(v))
    if not out:  # a test no value passes: left to the general path
        raise _NotSimple
    return out


def _test(rd: Reader, pred: Element, scope: Scope) -> _Test:
    """One child predicate as a binary test, or :class:`_NotSimple`."""
    t = _test0(rd, pred, scope)
    if t.kind == 1:
        t.closed = _closed(rd, resolve(rd, pred.get("field"), scope, pred))
    return t


def _test0(rd: Reader, pred: Element, scope: Scope) -> _Test:
    if pred.tag == "SimplePredicate":
        op = pred.get("operator")
        col = resolve(rd, pred.get("field"), scope, pred)
        if col.vocab is not None:
            if op not in ("equal", "notEqual"):
                raise _NotSimple
            code = constant_for(col.dtype, col, pred.get("value", ""), pred)
            if code < 0:  # a category outside the vocabulary: codes < -1 are not tested
                raise _NotSimple
            return _Test(col.column, 1, "", 0.0, [int(code)], op == "equal", col.dtype)
        if op in ("equal", "notEqual") and col.closed is not None:
            return _Test(col.column, 1, "", 0.0, _number_codes(col, [pred.get("value", "")],
                                                               pred), op == "equal", col.dtype)
        if op not in _NUMERIC_OPS or col.dtype not in ("integer", "float", "double"):
            raise _NotSimple
        t = split_constant(col, pred.get("value", ""), pred)
        if math.isnan(t):
            raise _NotSimple
        o, left = _NUMERIC_OPS[op]
        return _Test(col.column, 0, o, t, [], left, col.dtype)
    if pred.tag == "SimpleSetPredicate":
        col = resolve(rd, pred.get("field"), scope, pred)
        arr = pred.find("Array")
        if arr is None:
            raise _NotSimple
        if col.vocab is None:
            codes = _number_codes(col, array_values(arr), arr)
        else:
            codes = [int(c) for c in (constant_for(col.dtype, col, v, arr)
                                      for v in array_values(arr))]
        if any(c < 0 for c in codes):
            raise _NotSimple
        return _Test(col.column, 1, "", 0.0, sorted(set(codes)),
                     pred.get("booleanOperator") == "isIn", col.dtype)
    raise _NotSimple


def _complement(a: _Test, b: _Test) -> bool:
    """``b`` is true exactly when ``a`` is false, for every non-missing value."""
    if a.column != b.column or a.kind != b.kind:
        return False
    if a.kind == 0:
        return a.threshold == b.threshold and a.op == b.op and a.true_left != b.true_left
    if a.cats == b.cats and a.true_left != b.true_left:
        return True
    # two sets partitioning a vocabulary no other code can come from
    return (a.true_left and b.true_left and a.closed is not None
            and not set(a.cats) & set(b.cats) and set(a.cats) | set(b.cats) == a.closed)


def _as_tree_ensemble(rd: Reader, trees: list[Tree], *, n_outputs: int, width: int,
                      aggregation: str, acc32: bool):
    """``(inputs, params, tables)`` of an equivalent ``tree_ensemble`` step, or None.

    A node's children ``c_1 .. c_n`` (first true wins) become a chain of binary tests: test
    ``p_1``: true -> ``c_1``, false -> test ``p_2`` ... -> the no-true-child result. A child
    whose predicate is the complement of the previous one needs no test of its own. Where a
    missing value goes is the test's default side, or a guard node (``x <= +inf`` on the same
    column, NaN going right) leading to the PMML result for a missing value.
    """
    if aggregation not in ("sum", "average"):
        return None
    cols: list[str] = []
    col_pos: dict[str, int] = {}
    dtypes: set[str] = set()
    nd: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right",
                                           "default_left", "kind")}
    vals: list[list[float]] = []
    cats: list[tuple[int, int]] = []
    tests: list[tuple[int, _Test]] = []
    budget = 4 * sum(1 for t in trees for _ in _walk(t.root)) + 1000
    depth: list[int] = []  # levels below each node (the kernel walks a tree's full depth)
    mchild: dict[int, int] = {}  # node row -> its missing_child leaf row
    nan_leaf = [math.nan] * width

    def add(feature: int, default_left: bool, v: list[float], kind: int = 0) -> int:
        if len(vals) >= budget:
            raise _NotSimple
        nd["feature"].append(feature)
        nd["threshold"].append(0.0)
        nd["left"].append(-1)
        nd["right"].append(-1)
        nd["default_left"].append(default_left)
        nd["kind"].append(kind)
        vals.append(v)
        depth.append(0)
        return len(vals) - 1

    def feature(column: str) -> int:
        if column not in col_pos:
            col_pos[column] = len(cols)
            cols.append(column)
        return col_pos[column]

    miss_leaves: dict[tuple[int, bytes], int] = {}  # (tree, values) -> shared missing leaf

    def test_node(t: _Test, true_row: int, false_row: int, miss: list[float] | None,
                  miss_true: bool, tree: Tree | None = None) -> int:
        """A node routing true/false; missing -> a leaf holding ``miss`` (None: the side
        ``miss_true``)."""
        f = feature(t.column)
        dtypes.add(t.dtype)
        left, right = (true_row, false_row) if t.true_left else (false_row, true_row)
        if miss is None:
            row = add(f, miss_true == t.true_left, [0.0] * width, t.kind)
            nd["left"][row], nd["right"][row] = left, right
        elif t.kind == 0:
            # a numeric split sends a missing value straight to its own leaf (op version 2's
            # missing_child), one leaf per tree and value shared by every node that needs it
            key = (id(tree), np.asarray(miss, dtype=np.float64).tobytes())
            leaf_row = miss_leaves.get(key)
            if leaf_row is None:
                leaf_row = miss_leaves[key] = add(-1, False, list(miss))
            row = add(f, False, [0.0] * width, t.kind)
            nd["left"][row], nd["right"][row] = left, right
            mchild[row] = leaf_row
        else:
            miss_row = add(-1, False, list(miss))
            # NaN goes to a guard (on the shallower side: the tree gets no deeper where it
            # can) that sends non-NaN values on to the real child and NaN to ``miss_row``
            guard_left = depth[left] <= depth[right]
            row = add(f, guard_left, [0.0] * width, t.kind)
            guard = add(f, False, [0.0] * width)
            nd["threshold"][guard] = math.inf
            nd["left"][guard], nd["right"][guard] = (left if guard_left else right), miss_row
            depth[guard] = 1 + depth[nd["left"][guard]]
            if guard_left:
                nd["left"][row], nd["right"][row] = guard, right
            else:
                nd["left"][row], nd["right"][row] = left, guard
        depth[row] = 1 + max(depth[nd["left"][row]], depth[nd["right"][row]])
        tests.append((row, t))
        return row

    def build(tree: Tree, n: TNode) -> int:
        if not n.children:
            return add(-1, False, n.values)
        missing = tree.missing
        if missing == 3 and n.default < 0:
            raise _NotSimple
        no_true_vals = n.values if tree.no_true == 1 else nan_leaf
        kids = list(n.children)
        parsed: list[_Test | None] = []
        for c in kids:
            if c.pred.tag == "True":
                parsed.append(None)
                break
            if c.pred.tag == "False":
                parsed.append(None)
                continue
            parsed.append(_test(rd, c.pred, tree.scope))
        kids = kids[:len(parsed)]
        # a complementary pair of two children needs a single test
        if len(kids) == 2 and parsed[0] is not None and parsed[1] is not None and \
                _complement(parsed[0], parsed[1]):
            a, b = build(tree, kids[0]), build(tree, kids[1])
            if missing == 3:
                return test_node(parsed[0], a, b, None, n.default == 0)
            miss = (n.values if missing == 1 or (missing == 0 and tree.no_true)
                    else nan_leaf)
            return test_node(parsed[0], a, b, miss, True, tree)
        if missing == 3 and len({t.column for t in parsed if t is not None}) > 1:
            # a missing value must reach the default child through tests of one column
            raise _NotSimple
        false_default = None  # a default child whose predicate is False: only NaN gets there
        if missing == 3 and n.children[n.default].pred.tag == "False":
            false_default = n.children[n.default]
            if false_default.children:
                raise _NotSimple
        nxt = add(-1, False, no_true_vals)
        for idx, c, t in zip(reversed(range(len(kids))), reversed(kids), reversed(parsed),
                             strict=True):
            if c.pred.tag == "False":
                continue
            sub = build(tree, c)
            if t is None:  # True: the chain ends here
                nxt = sub
                continue
            if missing == 0:  # unknown counts as false
                nxt = test_node(t, sub, nxt, None, False)
            elif missing == 3 and false_default is not None:
                # the first test (all on one column) meeting NaN sends it to the default child
                nxt = test_node(t, sub, nxt, false_default.values, True, tree)
            elif missing == 3:
                # NaN goes on along the chain (same column) until the default child's test
                nxt = test_node(t, sub, nxt, None, n.default == idx)
            else:
                miss = n.values if missing == 1 else nan_leaf
                nxt = test_node(t, sub, nxt, miss, True, tree)
        return nxt

    roots = []
    try:
        for t in trees:
            if t.root.pred.tag != "True":
                return None
            roots.append(build(t, t.root))
    except (_NotSimple, RecursionError):
        return None
    all_float = dtypes <= {"float"}
    numeric_ops = {t.op for _, t in tests if t.kind == 0}
    operator = "<" if numeric_ops == {"<"} else "<="
    dt = np.float32 if all_float else np.float64
    for row, t in tests:
        if t.kind == 1:
            cats.extend((row, c) for c in t.cats)
            continue
        thr = t.threshold
        if t.op == "<" and operator == "<=":
            thr = float(np.nextafter(dt(thr), dt(-np.inf)))
        nd["threshold"][row] = thr
    nodes: Table = {
        "feature": np.asarray(nd["feature"], dtype=np.int32),
        "threshold": np.asarray(nd["threshold"], dtype=np.float64),
        "left": np.asarray(nd["left"], dtype=np.int32),
        "right": np.asarray(nd["right"], dtype=np.int32),
        "default_left": np.asarray(nd["default_left"], dtype=np.bool_),
        "missing": np.zeros(len(vals), dtype=np.int8),
        "kind": np.asarray(nd["kind"], dtype=np.int8),
    }
    if mchild:  # op version 2
        mc = np.full(len(vals), -1, dtype=np.int32)
        mc[list(mchild)] = list(mchild.values())
        nodes["missing_child"] = mc
    va = np.asarray(vals, dtype=np.float64).reshape(len(vals), width)
    for w in range(width):
        nodes[f"value_{w}"] = va[:, w].copy()
    tables: dict[str, Table] = {
        "trees": {"root": np.asarray(roots, dtype=np.int32),
                  "output": np.asarray([t.output for t in trees], dtype=np.int32),
                  "scale": np.ones(len(trees), dtype=np.float64)},
        "nodes": nodes}
    if cats:
        tables["categories"] = {"node": np.asarray([r for r, _ in cats], dtype=np.int32),
                                "category": np.asarray([c for _, c in cats], dtype=np.int32)}
    params = {"n_outputs": n_outputs, "leaf_width": width, "aggregation": aggregation,
              "base_score": [0.0] * n_outputs,
              "accumulate_dtype": "float32" if acc32 else "float64",
              "compare_dtype": "float32" if all_float else "float64",
              "split_operator": operator}
    return cols, params, tables
