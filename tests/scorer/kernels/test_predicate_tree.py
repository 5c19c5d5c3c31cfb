"""Kernel ``predicate_tree``: walks, missing-value strategies, Numba == reference."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scorer.errors import BundleFormatError
from scorer.ir import Bundle, Field, Output, Step
from scorer.kernels.expression import OPCODES
from scorer.model import Model

# root(True) -> [x < 0 : 1.0] [x >= 0 : 2.0 -> [z == 1 : 3.0] [z == 2 : 4.0]]
#   programs: 0: True; 1: x < 0; 2: x >= 0; 3: z == 1; 4: z == 2
_PROGS = [[("CONST", 0, 1.0)],
          [("LOAD", 0, 0), ("CONST", 0, 0.0), ("LT", 0, 0)],
          [("LOAD", 0, 0), ("CONST", 0, 0.0), ("GE", 0, 0)],
          [("LOAD", 1, 0), ("CONST", 0, 1.0), ("EQ", 0, 0)],
          [("LOAD", 1, 0), ("CONST", 0, 2.0), ("EQ", 0, 0)]]


def _step(missing: int, no_true: int, default_child: int = -1, agg: str = "sum") -> Step:
    ins = [i for p in _PROGS for i in p]
    starts = np.cumsum([0] + [len(p) for p in _PROGS])
    return Step("predicate_tree", 1, "t", ["x", "z"], ["y"], params={
        "n_outputs": 1, "leaf_width": 1, "aggregation": agg}, tables={
        "program": {"opcode": np.array([OPCODES[n] for n, _, _ in ins], dtype=np.int32),
                    "arg": np.array([a for _, a, _ in ins], dtype=np.int32),
                    "value": np.array([v for _, _, v in ins])},
        "trees": {"root": np.array([0], dtype=np.int32), "output": np.array([0], np.int32),
                  "missing": np.array([missing], np.int8),
                  "no_true_child": np.array([no_true], np.int8)},
        "nodes": {"pred_start": starts[:-1].astype(np.int32),
                  "pred_end": starts[1:].astype(np.int32),
                  "first_child": np.array([1, -1, 3, -1, -1], np.int32),
                  "n_children": np.array([2, 0, 2, 0, 0], np.int32),
                  "default_child": np.array([default_child, -1, -1, -1, -1], np.int32),
                  "value_0": np.array([0.0, 1.0, 2.0, 3.0, 4.0])}})


def _score(step: Step, x, z):
    b = Bundle("m", "1", "regression", [Field("x"), Field("z")], [step],
               [Output("y", "value", column="y")])
    m = Model(b)
    X = {"x": np.array(x, dtype=float), "z": np.array(z, dtype=float)}
    a = m.score_arrays(X)["y"]
    np.testing.assert_array_equal(a, m.score_arrays(X, reference=True)["y"])
    return a


@pytest.mark.parametrize("missing,no_true,default,expect", [
    (0, 0, -1, [1, 3, math.nan, math.nan]),   # none / returnNullPrediction
    (0, 1, -1, [1, 3, 0, 2]),                 # none / returnLastPrediction
    (1, 0, -1, [1, 3, 0, math.nan]),          # lastPrediction
    (2, 1, -1, [1, 3, math.nan, 2]),          # nullPrediction
    (3, 1, 1, [1, 3, 1, 2]),                  # defaultChild (root's default: node 1)
])
def test_missing_value_strategies(missing, no_true, default, expect):
    got = _score(_step(missing, no_true, default), [-1, 1, math.nan, 1], [0, 1, 0, 5])
    np.testing.assert_array_equal(got, expect)


def test_average_divides_by_tree_count():
    got = _score(_step(0, 1, agg="average"), [-1.0], [0.0])
    assert got[0] == 1.0


@pytest.mark.parametrize("edit,msg", [
    (lambda t: t["nodes"]["first_child"].__setitem__(2, 1), "after its parent"),
    (lambda t: t["nodes"]["n_children"].__setitem__(2, 9), "children out of range"),
    (lambda t: t["trees"]["root"].__setitem__(0, 7), "out of range"),
    (lambda t: t["nodes"]["pred_end"].__setitem__(0, 99), "predicate range"),
])
def test_malformed_tables_are_refused(edit, msg):
    step = _step(0, 0)
    edit(step.tables)
    with pytest.raises(BundleFormatError, match=msg):
        _score(step, [0.0], [0.0])


def test_parallel_kernel_matches_serial():
    from scorer.kernels.predicate_tree import predicate_tree_parallel

    step = _step(2, 1)
    b = Bundle("m", "1", "regression", [Field("x"), Field("z")], [step],
               [Output("y", "value", column="y")])
    m = Model(b)
    rng = np.random.default_rng(0)
    X = {"x": rng.normal(size=5000), "z": rng.integers(0, 3, 5000).astype(float)}
    X["x"][::7] = math.nan
    bound = m._plan[0]
    assert bound.parallel is predicate_tree_parallel and bound.parallel_min_rows <= 5000
    ws1 = m.columns(X)  # large batch: the parallel kernel
    ws2 = ws1.copy()
    ws2[:, -1] = 0.0
    bound.kernel(ws2, *bound.args)
    np.testing.assert_array_equal(ws1, ws2)


# Index bounds near 2**31: each case scored in a child process, so that a kernel writing out
# of bounds (the old int32 check let trees.output = 2**31-1 through: SIGSEGV) fails the test
# instead of killing pytest.
_OVERFLOW_CASES = {
    # output + leaf_width wrapped to -2**31 in int32 and passed "<= n_outputs"
    "output_near_int32_max": ("trees", "output", 0, 2**31 - 1),
    # first_child + n_children wrapped negative and passed "<= n_nodes"
    "first_child_near_int32_max": ("nodes", "first_child", 2, 2**31 - 1),
    # an int64 root of 2**32 was narrowed to 0, a valid root
    "root_wraps_to_zero": ("trees", "root", 0, 2**32),
    # node 1's predicate starting at its LT: pops two values off an empty stack
    "predicate_underflows": ("nodes", "pred_start", 1, 2),
}

_CHILD = """
import json, sys
import numpy as np
from scorer.errors import BundleError
from tests.scorer.kernels.test_predicate_tree import _OVERFLOW_CASES, _score, _step
role, col, row, value = _OVERFLOW_CASES[sys.argv[1]]
step = _step(0, 0)
t = step.tables[role]
t[col] = t[col].astype(np.int64)
t[col][row] = value
try:
    _score(step, np.linspace(-2, 2, 1000), np.ones(1000))
    print(json.dumps("scored"))
except BundleError as exc:
    print(json.dumps(f"refused: {exc}"))
"""


@pytest.mark.parametrize("case", sorted(_OVERFLOW_CASES))
def test_index_overflow_is_refused_not_a_crash(case):
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-c", _CHILD, case], capture_output=True, text=True,
                       cwd=root, env=env, timeout=300)
    assert r.returncode == 0, f"child died with status {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.strip().startswith('"refused: '), r.stdout
    assert "predicate_tree" in r.stdout
