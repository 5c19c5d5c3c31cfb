"""Op ``tree_ensemble`` v1 on hand-built steps: every rule of the op's text, checked against a
scalar Python reading of the spec, the Numba kernels (serial and parallel) and the NumPy
reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.errors import BundleFormatError, FieldTypeError
from scorer.ir import Bundle, Field, Output, Step
from scorer.kernels import tree_ensemble as te
from scorer.kernels.linear import link_kernel, pack_link
from scorer.model import Model
from scorer.ops import BindContext, get_op

F32 = np.float32


# --- helpers ---------------------------------------------------------------------------------
def leaf(*values: float) -> dict:
    return {"leaf": list(values)}


def split(feature: int, threshold: float, left: dict, right: dict, *, default_left=False,
          missing=0, categories=None) -> dict:
    return {"feature": feature, "threshold": threshold, "left": left, "right": right,
            "default_left": default_left, "missing": missing, "categories": categories}


def make_step(trees: list[dict], *, n_inputs: int = 1, n_outputs: int = 1, width: int = 1,
              outputs: list[int] | None = None, scales: list[float] | None = None,
              base: list[float] | None = None, shuffle: int | None = None, **params) -> Step:
    """A ``tree_ensemble`` step from nested dicts (``split`` / ``leaf``).

    ``shuffle`` permutes the node rows (the op must not depend on row order).
    """
    rows: list[dict] = []
    roots = []

    def emit(node: dict) -> int:
        i = len(rows)
        rows.append(node)
        if "leaf" not in node:
            node["_l"] = emit(node["left"])
            node["_r"] = emit(node["right"])
        return i

    for t in trees:
        roots.append(emit(t))
    n = len(rows)
    perm = np.arange(n)
    if shuffle is not None:
        perm = np.random.default_rng(shuffle).permutation(n)  # old row -> new row
    nodes = {c: np.zeros(n, dtype=d) for c, d in (
        ("feature", np.int32), ("threshold", np.float64), ("left", np.int32),
        ("right", np.int32), ("default_left", bool), ("missing", np.int8), ("kind", np.int8))}
    values = np.zeros((n, width))
    cat_node, cat_value = [], []
    for old, node in enumerate(rows):
        i = perm[old]
        if "leaf" in node:
            nodes["feature"][i] = -1
            nodes["left"][i] = nodes["right"][i] = -1
            values[i, :] = node["leaf"]
            continue
        nodes["feature"][i] = node["feature"]
        nodes["threshold"][i] = node["threshold"]
        nodes["left"][i] = perm[node["_l"]]
        nodes["right"][i] = perm[node["_r"]]
        nodes["default_left"][i] = node["default_left"]
        nodes["missing"][i] = node["missing"]
        if node["categories"] is not None:
            nodes["kind"][i] = 1
            cat_node += [i] * len(node["categories"])
            cat_value += list(node["categories"])
    for w in range(width):
        nodes[f"value_{w}"] = values[:, w]
    tables = {
        "trees": {"root": perm[np.asarray(roots, dtype=np.int64)].astype(np.int32),
                  "output": np.asarray(outputs or [0] * len(trees), dtype=np.int32),
                  "scale": np.asarray(scales or [1.0] * len(trees), dtype=np.float64)},
        "nodes": nodes,
    }
    if cat_node:
        tables["categories"] = {"node": np.asarray(cat_node, np.int32),
                                "category": np.asarray(cat_value, np.int32)}
    p = {"n_outputs": n_outputs, "leaf_width": width, "aggregation": "sum",
         "base_score": base or [0.0] * n_outputs, "accumulate_dtype": "float64",
         "compare_dtype": "float64", "split_operator": "<="}
    p.update(params)
    return Step(op="tree_ensemble", op_version=1, name="trees",
                inputs=[f"x{j}" for j in range(n_inputs)],
                outputs=[f"y{j}" for j in range(n_outputs)], params=p, tables=tables)


def bind(step: Step):
    index = {c: i for i, c in enumerate(step.inputs + step.outputs)}
    return get_op("tree_ensemble", 1).bind(step, BindContext(index=index))


def run_all(step: Step, X: np.ndarray) -> np.ndarray:
    """Serial, parallel, reference and row-by-row results; asserts they are all identical."""
    b = bind(step)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    k = len(step.outputs)
    results = []
    for fn in (b.kernel, b.parallel, b.reference):
        ws = np.full((len(X), X.shape[1] + k), -7.0)
        ws[:, : X.shape[1]] = X
        assert fn(ws, *b.args) == -1
        results.append(ws[:, X.shape[1]:])
    rows = np.empty_like(results[0])
    singles = np.empty_like(results[0])
    for i in range(len(X)):
        ws = np.concatenate([X[i], np.zeros(k)])[None, :]
        b.kernel(ws, *b.args)
        rows[i] = ws[0, X.shape[1]:]
        if b.single is not None:  # the one-row kernel of all-plain ensembles
            ws = np.concatenate([X[i], np.full(k, -7.0)])[None, :]
            assert b.single(ws, *b.single_args) == -1
            singles[i] = ws[0, X.shape[1]:]
            check_single_then_link(b, X[i], k)
    named = [("parallel", results[1]), ("reference", results[2]), ("row by row", rows)]
    if b.single is not None:
        named.append(("single-row kernel", singles))
    if b.specialised is not None:
        # the step's own dtypes (b.args: their float64 stand-in, which rounds to float32
        # where the step says), by blocks, in parallel and row by row
        for name, fn in (("own dtypes", b.kernel), ("own dtypes, parallel", b.parallel)):
            ws = np.full((len(X), X.shape[1] + k), -7.0)
            ws[:, : X.shape[1]] = X
            assert fn(ws, *b.specialised) == -1
            named.append((name, ws[:, X.shape[1]:]))
        own_rows = np.empty_like(results[0])
        for i in range(len(X)):
            ws = np.concatenate([X[i], np.zeros(k)])[None, :]
            assert b.kernel(ws, *b.specialised) == -1
            own_rows[i] = ws[0, X.shape[1]:]
        named.append(("own dtypes, row by row", own_rows))
    for name, r in named:
        np.testing.assert_array_equal(r, results[0], err_msg=f"{name} differs from serial")
    return results[0]


def check_single_then_link(b, x: np.ndarray, k: int) -> None:
    """The one-row kernel fused with a following link step equals the two run one after the
    other, for each link function that maps k columns (the sigmoid pair needs k == 1)."""
    assert b.single_then_link is not None
    n = x.shape[0]
    out_cols = np.arange(n, n + k, dtype=np.int64)
    for function in ([1, 3, 4, 5, 2] if k == 1 else [1, 3, 4, 5]):
        width = 2 if function == 2 else k
        link_out = np.arange(n + k, n + k + width, dtype=np.int64)
        two = np.concatenate([x, np.full(k + width, -7.0)])[None, :]
        one = two.copy()
        assert b.single(two, *b.single_args) == -1
        assert link_kernel(two, out_cols, link_out, function) == -1
        link = pack_link(out_cols, link_out, function)
        assert b.single_then_link(one, *b.single_args, link) == -1
        np.testing.assert_array_equal(one, two, err_msg=f"fused link {function} differs")


# A scalar Python reading of the normative text: the third opinion.
def spec_predict(step: Step, x: np.ndarray) -> np.ndarray:
    p = step.params
    t = step.tables
    nodes, trees = t["nodes"], t["trees"]
    cats: dict[int, set[int]] = {}
    if "categories" in t:
        for nd, c in zip(t["categories"]["node"], t["categories"]["category"], strict=True):
            cats.setdefault(int(nd), set()).add(int(c))
    acc32 = p["accumulate_dtype"] == "float32"
    num = F32 if acc32 else float
    out = [num(b) for b in p["base_score"]]
    for r, o, s in zip(trees["root"], trees["output"], trees["scale"], strict=True):
        n = int(r)
        while nodes["feature"][n] >= 0:
            v = float(x[nodes["feature"][n]])
            if p["compare_dtype"] == "float32":
                with np.errstate(over="ignore"):
                    v = float(F32(v))
            miss = int(nodes["missing"][n])
            if math.isnan(v) and miss == 2:
                v = 0.0
            if math.isnan(v) or (miss == 1 and abs(v) <= ZERO_BAND):
                mc = int(nodes["missing_child"][n]) if "missing_child" in nodes else -1
                if mc >= 0:  # version 2: a missing value goes to its own leaf
                    n = mc
                    continue
                go_left = bool(nodes["default_left"][n])
            elif nodes["kind"][n] == 1:
                go_left = v >= 0 and math.isfinite(v) and math.trunc(v) in cats.get(n, set())
            elif p["split_operator"] == "<":
                go_left = v < nodes["threshold"][n]
            else:
                go_left = v <= nodes["threshold"][n]
            n = int(nodes["left"][n] if go_left else nodes["right"][n])
        for w in range(p["leaf_width"]):
            leaf_value = nodes[f"value_{w}"][n]
            out[o + w] = (F32(F32(s) * F32(leaf_value)) + out[o + w]) if acc32 else (
                out[o + w] + s * leaf_value)
    if p["aggregation"] == "average":
        out = [v / num(len(trees["root"])) for v in out]
    return np.asarray(out, dtype=np.float64)


def check_spec(step: Step, X: np.ndarray) -> np.ndarray:
    got = run_all(step, X)
    want = np.array([spec_predict(step, row) for row in np.atleast_2d(X).reshape(len(X), -1)])
    np.testing.assert_array_equal(got, want)
    return got


def stumps(thresholds, **kw) -> Step:
    """One stump per threshold, each writing 0 (left) or 1 (right) to its own output."""
    trees = [split(0, float(t), leaf(0.0), leaf(1.0)) for t in thresholds]
    return make_step(trees, n_outputs=len(trees), outputs=list(range(len(trees))), **kw)


# --- comparisons -----------------------------------------------------------------------------
def _hostile_values(thresholds: np.ndarray) -> np.ndarray:
    t = thresholds[np.isfinite(thresholds)]
    with np.errstate(over="ignore"):
        return _near(t)


def _near(t: np.ndarray) -> np.ndarray:
    t32 = t.astype(F32).astype(np.float64)
    near = [np.nextafter(t, np.inf), np.nextafter(t, -np.inf),
            np.nextafter(t32.astype(F32), F32(np.inf)).astype(np.float64),
            np.nextafter(t32.astype(F32), F32(-np.inf)).astype(np.float64)]
    return np.concatenate([t, t32, *near, [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300,
                                           3.5e38, -3.5e38, 1e-46, -1e-46]])


THRESHOLDS = np.array([0.0, 0.1, -0.1, 1.0 + 2.0**-30, 1.0 + 2.0**-25, 2.5, 1e-40, -1e-40,
                       3.4028235e38, 3.5e38, -3.5e38, 1e300, np.inf, -np.inf, 16777217.0])


@pytest.mark.parametrize("op", ["<=", "<"])
@pytest.mark.parametrize("cmp", ["float64", "float32"])
def test_threshold_comparisons_match_the_spec(cmp, op):
    step = stumps(THRESHOLDS, compare_dtype=cmp, split_operator=op)
    check_spec(step, _hostile_values(THRESHOLDS))


def test_float32_and_float64_compare_differ_where_they_should():
    t = 1.0 + 2.0**-30  # not a float32
    x = np.array([1.0 + 2.0**-29, 1.0, t, 1.0 + 2.0**-23])
    f64 = run_all(stumps([t]), x)[:, 0]
    f32 = run_all(stumps([t], compare_dtype="float32"), x)[:, 0]
    np.testing.assert_array_equal(f64, [1, 0, 0, 1])   # x > t goes right
    np.testing.assert_array_equal(f32, [0, 0, 0, 1])   # float32(1 + 2**-29) == 1.0 <= t
    lt = run_all(stumps([1.0], split_operator="<"), np.array([1.0, np.nextafter(1.0, 0)]))
    np.testing.assert_array_equal(lt[:, 0], [1, 0])    # x == t goes right under "<"


def test_threshold_folding_is_exact():
    # x <= below(t) in the compare dtype must equal x <= t (x < t) in float64, for all x.
    rng = np.random.default_rng(0)
    t = np.concatenate([THRESHOLDS, rng.normal(size=200) * 10.0 ** rng.integers(-40, 40, 200)])
    x = _hostile_values(t)
    x = x[~np.isnan(x)]
    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore"):
            xr = x.astype(dtype)
        for strict in (False, True):
            folded = te._below(t, dtype, strict)
            want = (xr.astype(np.float64)[:, None] < t) if strict else (
                xr.astype(np.float64)[:, None] <= t)
            np.testing.assert_array_equal(xr[:, None] <= folded, want)


# --- missing values --------------------------------------------------------------------------
# The spec's zero band: LightGBM's kZeroThreshold, the float 1e-35f widened to double.
ZERO_BAND = 1.0000000180025095e-35
MISSING_X = np.array([np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, 2e-35, -2e-35, -1.0, 1.0])


@pytest.mark.parametrize("cmp", ["float64", "float32"])
@pytest.mark.parametrize("missing", [0, 1, 2])
@pytest.mark.parametrize("default_left", [False, True])
@pytest.mark.parametrize("threshold", [-0.5, 0.5, 0.0])
def test_missing_kinds(missing, default_left, threshold, cmp):
    tree = split(0, threshold, leaf(10.0), leaf(20.0), default_left=default_left,
                 missing=missing)
    got = check_spec(make_step([tree], compare_dtype=cmp), MISSING_X)[:, 0]
    default = 10.0 if default_left else 20.0
    if missing == 0:
        assert got[0] == default
    elif missing == 1:
        assert (got[:5] == default).all()  # NaN and |x| <= ZERO_BAND
        assert got[6] == (10.0 if 2e-35 <= threshold else 20.0)
    else:
        assert got[0] == (10.0 if 0.0 <= threshold else 20.0)  # NaN compared as 0.0


@pytest.mark.parametrize("cmp", ["float64", "float32"])
@pytest.mark.parametrize("op", ["<=", "<"])
def test_missing_none_numeric_splits_take_the_fast_step(cmp, op):
    """Missing kind 2 at numeric splits (LightGBM's "None") binds to plain fast splits whose
    default child is 0.0's side, with the same results as the spec everywhere: thresholds
    around 0.0 and the float32 rounding, NaN inputs, and deep unbalanced (leaf-wise) trees
    walked by row blocks in lockstep and by single rows in tree lanes."""
    rng = np.random.default_rng(7)
    thresholds = np.concatenate([THRESHOLDS, [-0.0, 1e-46, -1e-46, ZERO_BAND, -ZERO_BAND]])
    trees = [split(0, float(t), leaf(0.0), leaf(1.0), missing=2, default_left=dl)
             for t in thresholds for dl in (False, True)]
    for d in range(3):  # leaf-wise chains, 25 deep, mixed with other missing kinds
        chain = leaf(float(d))
        for i in range(25):
            t = float(rng.choice(thresholds[np.isfinite(thresholds)]) if i % 4 == 0
                      else np.round(rng.normal(), 1))
            sub = split(1, t, leaf(float(i)), leaf(-float(i)), missing=int(i % 3),
                        default_left=bool(i % 2))
            chain = (split(0, t, sub, chain, missing=2) if i % 2
                     else split(1, t, chain, sub, missing=2, default_left=True))
        trees.append(chain)
    step = make_step(trees, n_inputs=2, n_outputs=1, outputs=[0] * len(trees),
                     compare_dtype=cmp, split_operator=op)
    b = bind(step)
    nodes, thr = b.args[3], b.args[2]
    # every kind-2 stump whose threshold some value passes is a fast split
    n_stumps = len(thresholds) * 2
    stump_roots = b.args[7][:n_stumps, 0]
    fast_roots = nodes[stump_roots, 0] >= 0
    np.testing.assert_array_equal(fast_roots, ~np.isnan(thr[stump_roots]))
    with np.errstate(over="ignore"):
        vals = _near(thresholds[np.isfinite(thresholds)])
    X = np.column_stack([rng.choice(vals, 600), rng.choice(vals, 600)])
    X[rng.random(X.shape) < 0.1] = np.nan
    check_spec(step, X)
    check_spec(step, X[:5])  # fewer rows than a block: the tree-lane walk


def test_nan_goes_to_the_default_child_at_every_depth():
    inner = split(1, 0.0, leaf(1.0), leaf(2.0), default_left=False)
    tree = split(0, 0.0, inner, leaf(3.0), default_left=True)
    got = check_spec(make_step([tree], n_inputs=2),
                     np.array([[np.nan, np.nan], [np.nan, -1.0], [1.0, np.nan]]))
    np.testing.assert_array_equal(got[:, 0], [2.0, 1.0, 3.0])


# --- categorical splits ----------------------------------------------------------------------
CAT_X = np.array([0, 1, 2, 3, 3.7, 31, 32, 33, 40, 40.5, 41, 64, -1, -0.5, -0.0, np.nan,
                  1e10, np.inf, -np.inf, 2.0**31 + 1, 2.0**40 + 3, 1e-40])


@pytest.mark.parametrize("cmp", ["float64", "float32"])
@pytest.mark.parametrize("missing", [0, 1, 2])
@pytest.mark.parametrize("default_left", [False, True])
def test_categorical_split(default_left, missing, cmp):
    tree = split(0, 0.0, leaf(1.0), leaf(2.0), categories=[0, 3, 32, 40],
                 default_left=default_left, missing=missing)
    got = check_spec(make_step([tree], compare_dtype=cmp), CAT_X)[:, 0]
    want_left = {0, 3, 3.7, 32, 40, 40.5, -0.0, 1e-40}  # trunc(x) in the set
    for x, g in zip(CAT_X, got, strict=True):
        if np.isnan(x) and missing != 2:
            assert g == (1.0 if default_left else 2.0)
        elif missing == 1 and abs(x) <= ZERO_BAND:
            assert g == (1.0 if default_left else 2.0)
        elif np.isnan(x):  # missing kind 2: NaN is category 0
            assert g == 1.0
        else:
            assert g == (1.0 if x in want_left else 2.0), x


def test_categorical_node_without_categories_sends_everything_right():
    tree = split(0, 0.0, leaf(1.0), leaf(2.0), categories=[])
    step = make_step([tree])
    step.tables["nodes"]["kind"][0] = 1
    got = check_spec(step, np.array([0.0, 1.0, 5.0]))
    np.testing.assert_array_equal(got[:, 0], [2.0, 2.0, 2.0])


def test_two_categorical_nodes_have_their_own_sets():
    tree = split(0, 0.0, split(1, 0.0, leaf(1.0), leaf(2.0), categories=[5]),
                 split(1, 0.0, leaf(3.0), leaf(4.0), categories=[6, 100]), categories=[1])
    X = np.array([[1, 5], [1, 6], [2, 6], [2, 100], [2, 5], [1, 100]], dtype=float)
    got = check_spec(make_step([tree], n_inputs=2), X)
    np.testing.assert_array_equal(got[:, 0], [1, 2, 3, 3, 4, 2])


# --- aggregation -----------------------------------------------------------------------------
def test_sum_average_scale_base_and_leaf_width():
    trees = [split(0, 0.0, leaf(1.0, 2.0), leaf(3.0, 4.0)),
             split(0, 1.0, leaf(10.0, 20.0), leaf(30.0, 40.0)),
             leaf(100.0, 200.0)]
    X = np.array([-1.0, 0.5, 2.0])
    step = make_step(trees, n_outputs=3, width=2, outputs=[0, 1, 0], scales=[1.0, 0.5, 2.0],
                     base=[0.25, -1.0, 3.0])
    got = check_spec(step, X)
    np.testing.assert_array_equal(got[0], [0.25 + 1 + 200, -1 + 2 + 5 + 400, 3 + 10])
    np.testing.assert_array_equal(got[2], [0.25 + 3 + 200, -1 + 4 + 15 + 400, 3 + 20])
    step = make_step(trees, n_outputs=3, width=2, outputs=[0, 1, 0], aggregation="average",
                     base=[0.0, 0.0, 0.0])
    got = check_spec(step, X)
    np.testing.assert_array_equal(got[0], np.array([1 + 100, 2 + 10 + 200, 20]) / 3)


def test_every_dtype_pair_verifies_on_one_shared_float64_variant():
    """Whatever a step's compare and accumulation dtypes, its batch kernel's arguments
    (what verification runs at load) have the same Numba types: an empty-cache server
    compiles the batch kernel once for all its tree ensembles, and each float32 step's own
    variant later (``specialised``, without the rounding tests). The float64 stand-in holds
    the float32 values exactly and says where to round."""
    from scorer.ops import signature

    trees = [split(0, 0.1, leaf(0.3), split(1, 1.0 + 2.0**-30, leaf(0.7), leaf(-1e-8)))]
    ws = np.zeros((1, 3))
    shared = set()
    for cmp in ("float64", "float32"):
        for acc in ("float64", "float32"):
            b = bind(make_step(trees, n_inputs=2, compare_dtype=cmp, accumulate_dtype=acc))
            shared.add(signature((ws, *b.args)))
            assert b.args[16] == (cmp == "float32") * te.ROUND_COMPARE + \
                (acc == "float32") * te.ROUND_ACCUMULATE
            own = b.specialised
            assert own[16] is None  # (no rounding compiled into the step's own variant)
            assert own[2].dtype == np.dtype(cmp) and own[6].dtype == np.dtype(acc)
            np.testing.assert_array_equal(b.args[2], own[2].astype(np.float64))
            np.testing.assert_array_equal(b.args[6], own[6].astype(np.float64))
    assert len(shared) == 1


def test_float32_accumulation_rounds_every_addition():
    trees = [leaf(1.0)] + [leaf(1e-8)] * 50 + [split(0, 0.0, leaf(0.3), leaf(0.7))]
    step = make_step(trees, scales=[1.0] * 51 + [0.1], accumulate_dtype="float32",
                     base=[0.1])
    got = check_spec(step, np.array([-1.0, 1.0]))[:, 0]
    acc = F32(0.1) + F32(1.0)  # float32: 1 + 1e-8 == 1
    want = [F32(acc + F32(F32(0.1) * F32(0.3))), F32(acc + F32(F32(0.1) * F32(0.7)))]
    np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float64))
    f64 = run_all(make_step(trees, scales=[1.0] * 51 + [0.1], base=[0.1]), np.array([-1.0]))
    assert f64[0, 0] != got[0]
    avg = check_spec(make_step(trees, accumulate_dtype="float32", aggregation="average"),
                     np.array([1.0]))
    assert avg[0, 0] == np.float64(F32(F32(F32(1.0) + F32(0.7)) / F32(52)))


def test_summation_order_is_tree_order():
    # 1e16 + 1 - 1e16 is 0 in this order, 1 in another: the kernel must not reorder trees.
    trees = [leaf(1e16), split(0, 0.0, leaf(1.0), leaf(2.0)), leaf(-1e16)]
    got = check_spec(make_step(trees), np.array([-1.0, 1.0]))
    np.testing.assert_array_equal(got[:, 0], [0.0, 2.0])


def test_empty_ensemble_is_the_base_score():
    step = make_step([], n_outputs=2, base=[1.5, -2.0])
    np.testing.assert_array_equal(check_spec(step, np.zeros(3)), [[1.5, -2.0]] * 3)


def test_node_row_order_does_not_matter():
    rng = np.random.default_rng(3)
    trees = [_random_tree(rng, 3, depth=6) for _ in range(5)]
    X = rng.normal(size=(50, 3))
    a = check_spec(make_step(trees, n_inputs=3), X)
    b = check_spec(make_step(trees, n_inputs=3, shuffle=1), X)
    np.testing.assert_array_equal(a, b)


# --- batches ---------------------------------------------------------------------------------
def _random_tree(rng: np.random.Generator, n_inputs: int, depth: int) -> dict:
    if depth == 0 or rng.random() < 0.15:
        return leaf(float(rng.normal()))
    return split(int(rng.integers(n_inputs)), float(np.round(rng.normal(), 1)),
                 _random_tree(rng, n_inputs, depth - 1), _random_tree(rng, n_inputs, depth - 1),
                 default_left=bool(rng.random() < 0.5))


@pytest.mark.parametrize("cmp", ["float64", "float32"])
def test_parallel_batch_equals_serial_and_single_rows(cmp):
    rng = np.random.default_rng(1)
    trees = [_random_tree(rng, 4, depth=8) for _ in range(30)]
    # a deep chain: most rows stop early, a few go past the lockstep depth
    chain = leaf(0.0)
    for d in range(40):
        chain = split(0, -2.0 + d * 0.1, leaf(float(d)), chain)
    trees.append(chain)
    step = make_step(trees, n_inputs=4, n_outputs=3, outputs=[i % 3 for i in range(31)],
                     compare_dtype=cmp)
    n = te.PARALLEL_MIN_ROWS * 3 + 17
    X = np.round(rng.normal(size=(n, 4)), 1)
    X[rng.random(X.shape) < 0.05] = np.nan
    b = bind(step)
    ws = np.zeros((n, 7))
    ws[:, :4] = X
    assert b.parallel(ws, *b.args) == -1
    par = ws[:, 4:].copy()
    ws[:, 4:] = 0
    assert b.kernel(ws, *b.args) == -1
    np.testing.assert_array_equal(ws[:, 4:], par)
    assert b.single is not None  # plain splits only: the one-row kernel applies
    for i in rng.choice(n, 20, replace=False):
        one = np.concatenate([X[i], np.zeros(3)])[None, :]
        b.kernel(one, *b.args)
        np.testing.assert_array_equal(one[0, 4:], par[i])
        one[0, 4:] = -7.0
        assert b.single(one, *b.single_args) == -1
        np.testing.assert_array_equal(one[0, 4:], par[i])
    want = np.array([spec_predict(step, row) for row in X[:300]])
    np.testing.assert_array_equal(par[:300], want)


@pytest.mark.parametrize("cmp", ["float64", "float32"])
@pytest.mark.parametrize("leaf_width", [1, 2, 3])
def test_blocks_add_leaves_of_every_width(cmp, leaf_width):
    """The block walk adds one leaf value, two (a binary classifier's probabilities) or a
    longer vector per tree, each by its own loop: whole blocks with and without NaN, and
    small blocks of every size around the lane-count switch, equal the spec row by row."""
    rng = np.random.default_rng(7)
    trees = [_random_tree(rng, 5, depth=7) for _ in range(12)]
    chain = leaf(0.0)  # a deep, lopsided tree: the lockstep runs 30 steps
    for d in range(30):
        chain = split(d % 5, -1.5 + d * 0.1, leaf(float(d)), chain)
    trees.append(chain)
    for t in trees:
        _widen_leaves(t, leaf_width)
    k = leaf_width * 2
    step = make_step(trees, n_inputs=5, n_outputs=k,
                     outputs=[(i % 2) * leaf_width for i in range(len(trees))],
                     width=leaf_width, compare_dtype=cmp)
    b = bind(step)
    block = te.BLOCK_ROWS
    # two whole blocks, the second with one NaN; then blocks of 4 .. 19 rows
    sizes = [block, block, *range(4, 20)]
    X = np.round(rng.normal(size=(sum(sizes), 5)), 1)
    X[block + 77, 3] = np.nan
    got = np.empty((len(X), k))
    r0 = 0
    for n in sizes:  # one kernel call per size: each is a block of its own
        ws = np.full((n, 5 + k), -7.0)
        ws[:, :5] = X[r0:r0 + n]
        assert b.kernel(ws, *b.args) == -1
        got[r0:r0 + n] = ws[:, 5:]
        r0 += n
    want = np.array([spec_predict(step, row) for row in X])
    np.testing.assert_array_equal(got, want)


def _widen_leaves(node: dict, width: int) -> None:
    """Turn every leaf value v of a tree into the vector (v, -2 v, 3 v, ...) of ``width``."""
    if "leaf" in node:
        v = node["leaf"][0]
        node["leaf"] = [v * (j + 1) * (-1) ** j for j in range(width)]
        return
    _widen_leaves(node["left"], width)
    _widen_leaves(node["right"], width)


@pytest.mark.parametrize("cmp", ["float64", "float32"])
@pytest.mark.parametrize("acc", ["float64", "float32"])
@pytest.mark.parametrize("n_trees", [0, 1, 7, 8, 9, 16, 23])
@pytest.mark.parametrize("shape", ["one output", "leaf vectors", "outputs per tree"])
def test_single_row_kernel_equals_the_batch_kernel(cmp, acc, n_trees, shape):
    """The one-row kernel (eight trees per pass, a tail of fewer; one output summed in a
    register or several in memory; NaN rows the other way) equals the batch kernel bit for
    bit, and the spec."""
    rng = np.random.default_rng(n_trees)
    trees = [_random_tree(rng, 5, depth=int(rng.integers(0, 9))) for _ in range(n_trees)]
    if shape == "leaf vectors":  # a random forest classifier's averaged class vectors
        for t in trees:
            def widen(node):
                if "leaf" in node:
                    node["leaf"] = [node["leaf"][0], 1.0 - node["leaf"][0]]
                else:
                    widen(node["left"])
                    widen(node["right"])
            widen(t)
        kw = dict(n_outputs=2, width=2, outputs=[0] * n_trees, aggregation="average")
        if not trees:
            trees, kw["outputs"] = [leaf(0.25, 0.75)], [0]
    elif shape == "outputs per tree":
        kw = dict(n_outputs=3, outputs=[i % 3 for i in range(n_trees)], base=[0.5, -1.0, 2.0])
    else:
        kw = dict(scales=[0.1 * (i + 1) for i in range(n_trees)], base=[0.125])
    step = make_step(trees, n_inputs=5, compare_dtype=cmp, accumulate_dtype=acc, **kw)
    X = np.round(rng.normal(size=(60, 5)), 1)
    X[rng.random(X.shape) < 0.04] = np.nan  # some rows take the NaN walk
    X[0] = np.inf
    X[1] = -np.inf
    assert bind(step).single is not None
    check_spec(step, X)


def test_single_row_kernel_only_for_plain_ensembles():
    """Categorical splits or other missing rules keep the general kernel for one row too."""
    plain = make_step([split(0, 0.5, leaf(1.0), leaf(2.0))])
    cat = make_step([split(0, 0.5, leaf(1.0), leaf(2.0), categories=[1, 3])])
    zero = make_step([split(0, 0.5, leaf(1.0), leaf(2.0), missing=1)])
    assert bind(plain).single is not None
    assert bind(cat).single is None
    assert bind(zero).single is None


# --- missing_child (op version 2) ------------------------------------------------------------
def with_missing_children(step: Step, rng: np.random.Generator, share: float = 0.5) -> Step:
    """Version 2: one extra leaf per tree (value = 100 + tree index), named as the
    ``missing_child`` of a random ``share`` of the tree's numeric splits."""
    nodes = step.tables["nodes"]
    n = len(nodes["feature"])
    roots = step.tables["trees"]["root"]
    # which tree each node row belongs to
    owner = np.full(n, -1)
    for t, r in enumerate(roots):
        stack = [int(r)]
        while stack:
            v = stack.pop()
            owner[v] = t
            if nodes["feature"][v] >= 0:
                stack += [int(nodes["left"][v]), int(nodes["right"][v])]
    extra = len(roots)
    new = {c: np.concatenate([a, np.zeros(extra, dtype=a.dtype)]) for c, a in nodes.items()}
    new["feature"][n:] = -1
    new["left"][n:] = new["right"][n:] = -1
    width = step.params["leaf_width"]
    for w in range(width):
        new[f"value_{w}"][n:] = 100.0 + np.arange(extra)
    mc = np.full(n + extra, -1, dtype=np.int32)
    pick = (nodes["feature"] >= 0) & (nodes["kind"] == 0) & (rng.random(n) < share)
    mc[:n][pick] = n + owner[pick]
    new["missing_child"] = mc
    step.tables["nodes"] = new
    step.op_version = 2
    return step


def test_missing_child_sends_a_missing_value_to_its_leaf():
    step = with_missing_children(make_step([split(0, 0.5, leaf(1.0), leaf(2.0),
                                                  default_left=True)]),
                                 np.random.default_rng(0), share=1.0)
    got = check_spec(step, np.array([[np.nan], [0.0], [1.0]]))
    np.testing.assert_array_equal(got[:, 0], [100.0, 1.0, 2.0])


@pytest.mark.parametrize("cmp", ["float64", "float32"])
def test_missing_child_in_deep_forests_matches_the_spec(cmp):
    rng = np.random.default_rng(5)
    trees = [_random_tree(rng, 4, depth=7) for _ in range(25)]
    chain = leaf(0.0)  # deeper than the lockstep share: rows finish one by one
    for d in range(30):
        chain = split(d % 4, -1.5 + d * 0.1, leaf(float(d)), chain, missing=d % 3,
                      default_left=bool(d % 2))
    trees.append(chain)
    step = with_missing_children(make_step(trees, n_inputs=4, n_outputs=2,
                                           outputs=[i % 2 for i in range(26)],
                                           compare_dtype=cmp), rng)
    X = np.round(rng.normal(size=(700, 4)), 1)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:5] = np.nan
    check_spec(step, X)
    b = bind(step)  # and the parallel kernel on a batch large enough to split into blocks
    ws = np.zeros((len(X), 6))
    ws[:, :4] = X
    assert b.parallel(ws, *b.args) == -1
    np.testing.assert_array_equal(ws[:, 4:], run_all(step, X))


MISSING_CHILD_ERRORS = {
    "version 1": (lambda s: setattr(s, "op_version", 1), r"needs op version 2"),
    "not a leaf": (lambda s: s.tables["nodes"]["missing_child"].__setitem__(0, 2),
                   r"node 0's missing_child 2 is not a leaf"),
    "on a leaf": (lambda s: s.tables["nodes"]["missing_child"].__setitem__(1, 5),
                  r"node 1 has missing_child 5"),
    "out of range": (lambda s: s.tables["nodes"]["missing_child"].__setitem__(0, 99),
                     r"node 0 has missing_child 99"),
}


@pytest.mark.parametrize("case", sorted(MISSING_CHILD_ERRORS))
def test_malformed_missing_child_is_refused(case):
    step = with_missing_children(_simple(), np.random.default_rng(0), share=1.0)
    mutate, message = MISSING_CHILD_ERRORS[case]
    mutate(step)
    with pytest.raises(ValueError, match=message):
        bind(step)


def test_missing_child_on_a_categorical_split_is_refused():
    step = make_step([split(0, 0.0, leaf(1.0), leaf(2.0), categories=[1, 2])])
    step = with_missing_children(step, np.random.default_rng(0), share=1.0)
    step.tables["nodes"]["missing_child"][0] = 3
    with pytest.raises(ValueError, match="categorical split with a missing_child"):
        bind(step)


# --- refused input ---------------------------------------------------------------------------
def _bundle(step: Step) -> Bundle:
    return Bundle(name="m", version="1", task="regression",
                  inputs=[Field(name=c) for c in step.inputs], steps=[step],
                  outputs=[Output(name="value", kind="value", column=step.outputs[0])])


def test_refuse_overflow_names_the_row_and_field():
    step = stumps([1.0], compare_dtype="float32", refuse_overflow=True)
    model = Model(_bundle(step), verify=False)
    assert model.predict(np.array([[1e38], [2.0]])).tolist() == [1.0, 1.0]
    for big in ([[1.0], [1e300]], [[1.0], [-3.5e38]]):
        with pytest.raises(FieldTypeError, match=r"row 1\b.*'x0'.*too large for float32"):
            model.predict(np.array(big))
    # every implementation refuses the same (first) row
    b = bind(step)
    ws = np.zeros((3000, 2))
    ws[[1, 700, 2999], 0] = 1e300
    for fn in (b.kernel, b.parallel, b.reference):
        assert fn(ws.copy(), *b.args) == 1
        assert fn(ws[2:].copy(), *b.args) == 698


# --- malformed tables ------------------------------------------------------------------------
def _simple() -> Step:
    return make_step([split(0, 0.0, leaf(1.0), split(0, 1.0, leaf(2.0), leaf(3.0)))])


def _mutate(fn) -> Step:
    step = _simple()
    fn(step)
    return step


MALFORMED = {
    "left child out of range": (lambda s: s.tables["nodes"]["left"].__setitem__(0, 99),
                                r"node 0 has left child 99, outside the 5 rows"),
    "negative right child": (lambda s: s.tables["nodes"]["right"].__setitem__(2, -1),
                             r"node 2 has right child -1"),
    "root out of range": (lambda s: s.tables["trees"]["root"].__setitem__(0, 5),
                          r"tree 0 has root 5"),
    "cycle": (lambda s: s.tables["nodes"]["right"].__setitem__(2, 0), r"reaches node 0 twice"),
    "feature out of range": (lambda s: s.tables["nodes"]["feature"].__setitem__(0, 3),
                             r"node 0 reads feature 3; the step has 1 inputs"),
    "output out of range": (lambda s: s.tables["trees"]["output"].__setitem__(0, 1),
                            r"tree 0 writes outputs 1..1, but there are 1 outputs"),
    "leaf width": (lambda s: s.params.__setitem__("leaf_width", 2), r"leaf_width 2"),
    "n_outputs": (lambda s: s.params.__setitem__("n_outputs", 2), r"n_outputs is 2"),
    "aggregation": (lambda s: s.params.__setitem__("aggregation", "max"),
                    r"params.aggregation is 'max'"),
    "operator": (lambda s: s.params.__setitem__("split_operator", ">"), r"split_operator"),
    "missing kind": (lambda s: s.tables["nodes"]["missing"].__setitem__(0, 3),
                     r"missing kind 3"),
    "base score": (lambda s: s.params.__setitem__("base_score", [0.0, 1.0]), r"base_score"),
    "short column": (lambda s: s.tables["nodes"].__setitem__(
        "threshold", np.zeros(4)), r"nodes.threshold has 4 rows, expected 5"),
    "missing column": (lambda s: s.tables["nodes"].pop("value_0"), r"lacks column 'value_0'"),
    "category on numeric node": (lambda s: s.tables.__setitem__("categories", {
        "node": np.array([0], np.int32), "category": np.array([1], np.int32)}),
        r"node 0, which is not a categorical split"),
    "average of nothing": (lambda s: (s.tables.__setitem__("trees", {
        "root": np.zeros(0, np.int32), "output": np.zeros(0, np.int32),
        "scale": np.zeros(0)}), s.params.__setitem__("aggregation", "average")),
        r"'average' over an empty trees table"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tables_are_refused(case):
    mutate, message = MALFORMED[case]
    step = _mutate(mutate)
    with pytest.raises(ValueError, match=message):
        bind(step)
    with pytest.raises(BundleFormatError, match=r"step 'trees' \(op 'tree_ensemble'\)"):
        Model(_bundle(step), verify=False)


# --- random trees (hypothesis) ---------------------------------------------------------------
VALUES = st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, 2.0, -1.0, 3.0, 1e-36, 1.0 + 2.0**-30,
                          0.1, np.inf, -np.inf, 1e300, 40.0])


@st.composite
def random_trees(draw, n_inputs: int):
    def node(depth: int) -> dict:
        if depth == 0 or draw(st.integers(0, 4)) == 0:
            return leaf(draw(st.floats(-10, 10, allow_nan=False)))
        f = draw(st.integers(0, n_inputs - 1))
        cats = draw(st.none() | st.lists(st.integers(0, 70), max_size=5))
        return split(f, draw(VALUES | st.floats(-3, 3)), node(depth - 1), node(depth - 1),
                     default_left=draw(st.booleans()), missing=draw(st.integers(0, 2)),
                     categories=cats)
    return [node(draw(st.integers(0, 7))) for _ in range(draw(st.integers(0, 6)))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cmp=st.sampled_from(["float64", "float32"]),
       op=st.sampled_from(["<=", "<"]), acc=st.sampled_from(["float64", "float32"]),
       agg=st.sampled_from(["sum", "average"]))
def test_random_ensembles_match_the_spec(data, cmp, op, acc, agg):
    trees = data.draw(random_trees(3))
    if agg == "average" and not trees:
        trees = [leaf(1.0)]
    X = np.array(data.draw(st.lists(st.lists(VALUES | st.just(np.nan) | st.floats(-3, 3),
                                             min_size=3, max_size=3), min_size=1,
                                    max_size=20)), dtype=np.float64)
    step = make_step(trees, n_inputs=3, n_outputs=2, outputs=[i % 2 for i in range(len(trees))],
                     scales=[0.5 + i for i in range(len(trees))], base=[0.25, -3.0],
                     compare_dtype=cmp, split_operator=op, accumulate_dtype=acc,
                     aggregation=agg)
    check_spec(step, X)


# --- layout ----------------------------------------------------------------------------------
def _random_forest(rng: np.random.Generator, n_trees: int, max_nodes: int, p_missing: float):
    """(roots, feature, left, right, missing_child) of random trees, rows shuffled; some
    splits send a missing value to a leaf of their tree (several splits to the same one)."""
    feature, left, right, mc, roots = [], [], [], [], []
    for _ in range(n_trees):
        base = len(feature)
        roots.append(base)
        feature.append(-1)
        left.append(-1)
        right.append(-1)
        queue = [base]
        while queue:
            v = queue.pop(0)
            if len(feature) - base < max_nodes and rng.random() < 0.7:
                c = len(feature)
                feature[v], left[v], right[v] = int(rng.integers(0, 5)), c, c + 1
                feature += [-1, -1]
                left += [-1, -1]
                right += [-1, -1]
                queue += [c, c + 1]
        mc += [-1] * (len(feature) - len(mc))
        leaves = [i for i in range(base, len(feature)) if feature[i] < 0]
        for i in range(base, len(feature)):
            if feature[i] >= 0 and rng.random() < p_missing:
                mc[i] = int(rng.choice(leaves))
    n = len(feature)
    perm = rng.permutation(n)  # new row -> old row
    new = np.empty(n, dtype=np.int64)
    new[perm] = np.arange(n)
    feature, left, right, mc = map(np.asarray, (feature, left, right, mc))

    def moved(col):
        return np.where(col >= 0, new[np.maximum(col, 0)], -1)[perm]

    return tuple(a.astype(np.int32) for a in (new[np.asarray(roots)], feature[perm],
                                              moved(left), moved(right), moved(mc)))


def test_relayout_levels_equals_the_kernel():
    """The NumPy relayout (an empty-cache start binds with it, not compiling the kernel) gives
    the kernel's arrays, slot for slot: breadth-first per tree, missing_child leaves once per
    tree; tables it cannot take (a node with two parents) go to the kernel, which refuses."""
    rng = np.random.default_rng(3)
    for k in range(120):
        args = _random_forest(rng, int(rng.integers(1, 9)), int(rng.integers(1, 80)),
                              (0.0, 0.3, 0.9)[k % 3])
        assert te._one_parent(*args)
        want = te._relayout_kernel(*args)
        for name, got, exp in zip(("orig", "child", "depth", "mdest", "croot", "leaf_orig",
                                   "leaf_tree"), te._relayout_levels(*args)[:7], want[:7],
                                  strict=True):
            assert got.dtype == exp.dtype, name
            np.testing.assert_array_equal(got, exp, err_msg=f"{name} (forest {k})")
        assert want[7:] == te._relayout_levels(*args)[7:] == (-1, -1)
        roots, feature, left, right, mc = args
        for v in np.flatnonzero(feature >= 0)[:3]:
            # a node reached twice within its tree, and a cycle: refused by the kernel
            for bad in (right[v], v):
                changed = left.copy()
                changed[v] = bad
                assert not te._one_parent(roots, feature, changed, right, mc)
                assert te._relayout(roots, feature, changed, right, mc)[7] >= 0
