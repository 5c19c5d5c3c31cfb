"""Child process of ``test_bundle_fuzz``: loads and scores mutants of bundles.

``python -m tests.scorer.bundle_fuzz BUNDLE SEED FIRST COUNT`` reads the bundle at BUNDLE,
then for mutant ``i`` in ``FIRST .. FIRST + COUNT - 1`` (mutant ``i`` depends only on SEED,
``i`` and the bundle) changes one table cell or one step parameter, loads the result and
scores the bundle's verification rows (one row, then all of them). Before each mutant it
prints ``start <i> <what>`` and after it ``done <i> <outcome>`` (``scored``, ``refused
<class>`` for a tablescore error, or ``BUG <class>: <message>`` for any other exception).
A mutant that kills the process leaves a ``start`` line without its ``done``.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import numpy as np

from scorer.bundle import read_bundle
from scorer.errors import TablescoreError
from scorer.ir import Bundle
from scorer.model import Model

#: interesting integers: around 0, around int32 / int64 overflow, and big
_INTS = [-1, 0, 1, 2, 3, 7, -2, 255, 2**15, 2**31 - 1, -(2**31), 2**31, 2**32, 2**32 + 1,
         2**62, -(2**62), 2**63 - 1]
_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 1e300, -1e300, 1e-310,
           2.0**31 - 1, 2.0**31, 2.0**63, -(2.0**63)]
_PARAMS: list[Any] = [None, True, False, -1, 0, 1, 2, 2**31 - 1, 2**63, -(2**31), 1e308,
                      -1.5, "NaN", "Infinity", "-Infinity", "", "x", [], {}, [1, 2]]


def _mutate_cell(col: np.ndarray, row: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    col = col.copy()
    old = col[row]
    kind = col.dtype.kind
    if kind in "iu":
        v = int(rng.choice([*_INTS, int(old) + 1, int(old) - 1, len(col), len(col) - 1]))
        info = np.iinfo(col.dtype)
        if not info.min <= v <= info.max:  # a wider column: as a writer could store it
            col = col.astype(np.float64 if v > 2**63 - 1 or v < -(2**63) else np.int64)
        col[row] = v
        return col, f"{v}"
    if kind == "f":
        v = float(rng.choice([*_FLOATS, float(old) * 2, float(old) + 1, -float(old)]))
        col[row] = v
        return col, f"{v!r}"
    if kind == "b":
        col[row] = not old
        return col, f"{not old}"
    # strings (object): another value of the column, an empty one, an unknown one, or null
    others = [v for v in col if v != old]
    choices = [None, "", "zz_unknown", *(others[:3])]
    v = choices[int(rng.integers(len(choices)))]
    col[row] = v
    return col, repr(v)


#: the edge mutants' values, set in every integer column (at a random row)
EDGES = [2**31 - 1, -(2**31), 2**32, -1]


def _int_cells(b: Bundle) -> list[tuple[int, str, str]]:
    return [(k, role, name) for k, s in enumerate(b.steps) for role, t in s.tables.items()
            for name, col in t.items() if len(col) and np.asarray(col).dtype.kind in "iu"]


def n_edges(bundle: Bundle) -> int:
    """How many edge mutants ``bundle`` has (they come first, then the random ones)."""
    return len(_int_cells(bundle)) * len(EDGES)


def mutate(bundle: Bundle, seed: int, i: int) -> tuple[Bundle, str]:
    """Mutant ``i`` of ``bundle``: one table cell or one step parameter changed.

    The first :func:`n_edges` mutants set each integer column (indexes, offsets, counts) to
    each of :data:`EDGES` in turn: values where int32 arithmetic overflows or a cast wraps.
    """
    rng = np.random.default_rng([seed, i])
    b = copy.deepcopy(bundle)
    ints = _int_cells(b)
    if i < len(ints) * len(EDGES):
        k, role, name = ints[i // len(EDGES)]
        step = b.steps[k]
        col = np.asarray(step.tables[role][name]).astype(np.int64)
        row = int(rng.integers(len(col)))
        col[row] = EDGES[i % len(EDGES)]
        step.tables[role][name] = col
        return b, f"{step.op} '{step.name}' {role}.{name}[{row}] = {col[row]} (int64)"
    cells = [(s, role, name) for s in b.steps for role, t in s.tables.items()
             for name, col in t.items() if len(col)]
    params = [(s, key) for s in b.steps for key in s.params]
    if params and (not cells or rng.random() < 0.15):
        step, key = params[int(rng.integers(len(params)))]
        v = _PARAMS[int(rng.integers(len(_PARAMS)))]
        step.params[key] = v
        return b, f"{step.op} '{step.name}' params.{key} = {v!r}"
    # integer columns (indexes, offsets, counts) three times as often: that is where an
    # unchecked value turns into an out-of-bounds access
    weight = np.array([3.0 if np.asarray(s.tables[r][c]).dtype.kind in "iu" else 1.0
                       for s, r, c in cells])
    step, role, name = cells[int(rng.choice(len(cells), p=weight / weight.sum()))]
    col = np.asarray(step.tables[role][name])
    row = int(rng.integers(len(col)))
    step.tables[role][name], what = _mutate_cell(col, row, rng)
    return b, f"{step.op} '{step.name}' {role}.{name}[{row}] = {what}"


def run(path: str, seed: int, first: int, count: int) -> None:
    bundle = read_bundle(path)
    v = bundle.verification
    assert v is not None, "fuzzed bundles need verification rows to score"
    X = v.inputs
    one = {k: c[:1] for k, c in X.items()}
    for i in range(first, first + count):
        mutant, what = mutate(bundle, seed, i)
        print(f"start {i} {what}", flush=True)
        try:
            model = Model(mutant, verify=False)
            model.score_arrays(one)
            model.score_arrays(X)
            outcome = "scored"
        except TablescoreError as exc:
            outcome = f"refused {type(exc).__name__}"
        except Exception as exc:  # anything else is a bug the test reports
            outcome = f"BUG {type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        print(f"done {i} {outcome}", flush=True)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
