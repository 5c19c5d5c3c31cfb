"""The ``encoding`` ops on hand-built steps: semantics, Numba == NumPy reference, disk
round trip, bind-time validation and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.bundle import read_bundle, write_bundle
from scorer.errors import BundleFormatError, MissingValueError, UnknownCategoryError
from scorer.ir import Bundle, Field, Output, Step
from scorer.kernels.encoding import (
    bind_kbins,
    bind_one_hot,
    bind_ordinal,
)
from scorer.model import Model
from scorer.ops import BindContext

NAN = math.nan


def _bundle(fields: list[Field], steps: list[Step]) -> Bundle:
    outs = steps[-1].outputs
    return Bundle(name="t", version="1", task="transform", inputs=fields, steps=steps,
                  outputs=[Output(name=o, kind="transformed", column=o) for o in outs])


def _both(model: Model, X) -> np.ndarray:
    """Kernel result, after checking the NumPy reference gives the same."""
    got = model.score_arrays(X)
    ref = model.score_arrays(X, reference=True)
    for k in got:
        np.testing.assert_array_equal(got[k], ref[k])
    return np.column_stack([got[o] for o in model.output_names])


def _cat_table(rows: list[tuple[int, str | None, float, bool, float]], value: str) -> dict:
    inp, cat, num, miss, val = zip(*rows, strict=True)
    return {"input": np.array(inp, dtype=np.int32), "category": np.array(cat, dtype=object),
            "number": np.array(num, dtype=np.float64), "missing": np.array(miss, dtype=bool),
            value: np.array(val, dtype=np.int32 if value == "output" else np.float64)}


def _one_hot_step(handle=("ignore", "ignore"), infrequent=(-1, -1)) -> Step:
    # input 0: string field "s" (vocabulary a, b, c, z); input 1: numeric field "x".
    # s: a -> 0, b -> 1 and c -> 1 (grouped), missing -> 2; z is in the vocabulary but unknown
    # to this encoder. x: 1 -> 3, 2.5 -> dropped, -4 -> 4.
    rows = [(0, "a", NAN, False, 0), (0, "c", NAN, False, 1), (0, "b", NAN, False, 1),
            (0, None, NAN, True, 2),
            (1, None, 2.5, False, -1), (1, None, 1.0, False, 3), (1, None, -4.0, False, 4)]
    return Step(op="one_hot", op_version=1, name="ohe", inputs=["s", "x"],
                outputs=[f"o{k}" for k in range(5)],
                tables={"categories": _cat_table(rows, "output"),
                        "inputs": {"handle_unknown": np.array(handle, dtype=object),
                                   "infrequent_output": np.array(infrequent, dtype=np.int32),
                                   "field": np.array(["s", "x"], dtype=object)}})


def _fields(unknown: str = "code") -> list[Field]:
    return [Field("s", "string", categories=["a", "b", "c", "z"], unknown=unknown),
            Field("x", "double")]


X_ONE_HOT = {"s": ["a", "b", "c", None, "z", "new", "a"],
             "x": [1.0, 2.5, -4.0, 1.0, NAN, 7.0, -0.0]}


def test_one_hot_ignore() -> None:
    model = Model(_bundle(_fields(), [_one_hot_step()]))
    got = _both(model, X_ONE_HOT)
    want = np.array([[1, 0, 0, 1, 0],
                     [0, 1, 0, 0, 0],
                     [0, 1, 0, 0, 1],
                     [0, 0, 1, 1, 0],
                     [0, 0, 0, 0, 0],    # z: in the vocabulary, unknown to the encoder
                     [0, 0, 0, 0, 0],    # new: code -1
                     [1, 0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(got, want)


def test_one_hot_infrequent_unknown() -> None:
    step = _one_hot_step(handle=("infrequent", "infrequent"), infrequent=(1, 4))
    got = _both(Model(_bundle(_fields(), [step])), X_ONE_HOT)
    np.testing.assert_array_equal(got[4], [0, 1, 0, 0, 1])  # z and NaN (unseen missing)
    np.testing.assert_array_equal(got[5], [0, 1, 0, 0, 1])  # new and 7.0
    np.testing.assert_array_equal(got[6], [1, 0, 0, 0, 1])  # -0.0 is unknown


def test_one_hot_error_numeric_names_value_and_row() -> None:
    model = Model(_bundle(_fields(), [_one_hot_step(handle=("ignore", "error"))]))
    X = {"s": ["a", "b", "a"], "x": [1.0, 2.5, 7.25]}
    for reference in (False, True):
        with pytest.raises(UnknownCategoryError, match=r"7\.25.*'x'.*row 2"):
            model.score_arrays(X, reference=reference)
    with pytest.raises(MissingValueError, match=r"'x'.*row 0"):
        model.score_arrays({"s": ["a"], "x": [NAN]})


def test_one_hot_error_code_in_vocabulary_but_unknown() -> None:
    # "z" is in the field's vocabulary (another encoder knows it) but not in this one's.
    model = Model(_bundle(_fields(), [_one_hot_step(handle=("error", "ignore"))]))
    with pytest.raises(UnknownCategoryError, match=r"'z'.*'s'.*row 1"):
        model.score_arrays({"s": ["a", "z"], "x": [1.0, 1.0]})
    # missing is a category of input 0: no error
    assert _both(model, {"s": [None], "x": [1.0]}).tolist() == [[0, 0, 1, 1, 0]]


def test_one_hot_round_trip(tmp_path) -> None:
    bundle = _bundle(_fields(), [_one_hot_step(handle=("infrequent", "ignore"),
                                               infrequent=(1, -1))])
    before = _both(Model(bundle), X_ONE_HOT)
    write_bundle(bundle, tmp_path / "b")
    again = read_bundle(tmp_path / "b")
    t = again.steps[0].tables["categories"]
    assert t["input"].dtype == np.int32 and t["output"].dtype == np.int32
    assert t["missing"].dtype == np.bool_ and t["category"].dtype == object
    np.testing.assert_array_equal(_both(Model(again), X_ONE_HOT), before)


def _ordinal_step(handle=("value", "value"), unknown=(-1.0, NAN)) -> Step:
    rows = [(0, "b", NAN, False, 1.0), (0, "a", NAN, False, 0.0), (0, "c", NAN, False, 1.0),
            (0, None, NAN, True, -9.0),
            (1, None, 3.0, False, 0.0), (1, None, 10.0, False, 1.0), (1, None, NAN, True, NAN)]
    return Step(op="ordinal", op_version=1, name="ord", inputs=["s", "x"],
                outputs=["o0", "o1"],
                tables={"categories": _cat_table(rows, "code"),
                        "inputs": {"handle_unknown": np.array(handle, dtype=object),
                                   "unknown_value": np.array(unknown, dtype=np.float64)}})


def test_ordinal(tmp_path) -> None:
    bundle = _bundle(_fields(), [_ordinal_step()])
    X = {"s": ["a", "b", "c", None, "z", "q"], "x": [3.0, 10.0, NAN, 4.0, 3.0, 10.0]}
    # z: in the vocabulary, not a category -> unknown; q: code -1 -> unknown; x = 4.0 unknown
    want = np.array([[0, 0], [1, 1], [1, NAN], [-9, NAN], [-1, 0], [-1, 1]])
    got = _both(Model(bundle), X)
    np.testing.assert_array_equal(got, want)
    write_bundle(bundle, tmp_path / "b")
    np.testing.assert_array_equal(_both(Model(read_bundle(tmp_path / "b")), X), want)


def test_ordinal_error() -> None:
    model = Model(_bundle(_fields(), [_ordinal_step(handle=("value", "error"))]))
    with pytest.raises(UnknownCategoryError, match=r"4\.0.*'x'.*row 1"):
        model.score_arrays({"s": ["a", "a"], "x": [3.0, 4.0]})
    with pytest.raises(UnknownCategoryError, match=r"4\.0.*'x'.*row 1"):
        model.score_arrays({"s": ["a", "a"], "x": [3.0, 4.0]}, reference=True)


def _kbins_step(encode: str, edges: list[list[float]], f32: bool = False) -> Step:
    inp = np.concatenate([[j] * len(e) for j, e in enumerate(edges)]).astype(np.int32)
    n_out = sum(len(e) - 1 for e in edges) if encode == "onehot" else len(edges)
    return Step(op="kbins", op_version=1, name="kb", inputs=[f"x{j}" for j in range(len(edges))],
                outputs=[f"o{k}" for k in range(n_out)],
                params={"encode": encode, "float32_input": f32},
                tables={"edges": {"input": inp,
                                  "edge": np.concatenate(edges).astype(np.float64)}})


def test_kbins_ordinal_and_onehot(tmp_path) -> None:
    edges = [[0.0, 1.0, 2.0, 2.0, 5.0], [-math.inf, math.inf]]
    fields = [Field("x0"), Field("x1")]
    x0 = np.array([-3, 0, 0.5, 1, 1.5, 2, 3, 5, 9, math.inf, -math.inf, NAN])
    X = np.column_stack([x0, np.linspace(-1, 1, len(x0))])
    want = np.searchsorted(np.array(edges[0][1:-1]), x0, side="right")
    ordinal = _both(Model(_bundle(fields, [_kbins_step("ordinal", edges)])), X)
    np.testing.assert_array_equal(ordinal[:, 0], want)
    np.testing.assert_array_equal(ordinal[:, 1], 0)
    bundle = _bundle(fields, [_kbins_step("onehot", edges)])
    onehot = _both(Model(bundle), X)
    assert onehot.shape == (len(x0), 5)
    np.testing.assert_array_equal(onehot[:, :4], np.eye(4)[want])
    np.testing.assert_array_equal(onehot[:, 4], 1)
    write_bundle(bundle, tmp_path / "b")
    np.testing.assert_array_equal(_both(Model(read_bundle(tmp_path / "b")), X), onehot)


def test_kbins_float32_input() -> None:
    edge = float(np.nextafter(np.float32(0.1), np.float32(1)))  # a float32 value
    x = edge - 1e-12  # below the edge in float64, equal to it once rounded to float32
    got = [_both(Model(_bundle([Field("x0")], [_kbins_step("ordinal", [[0.0, edge, 1.0]],
                                                              f32=f32)])),
                 np.array([[x]]))[0, 0] for f32 in (False, True)]
    assert got == [0.0, 1.0]


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s.tables["categories"]["category"].__setitem__(0, "nope"), "vocabulary"),
    (lambda s: s.tables["inputs"]["handle_unknown"].__setitem__(0, "skip"), "handle_unknown"),
    (lambda s: s.tables["categories"]["output"].__setitem__(0, 9), "out of range"),
    (lambda s: s.tables["categories"]["number"].__setitem__(5, 2.5), "repeated"),
    (lambda s: s.tables["categories"]["category"].__setitem__(5, "q"), "numbers"),
    (lambda s: s.tables["categories"]["missing"].__setitem__(0, True), "missing rows"),
])
def test_one_hot_bind_validation(mutate, match) -> None:
    step = _one_hot_step()
    mutate(step)
    with pytest.raises(BundleFormatError, match=match):
        Model(_bundle(_fields(), [step]))


def test_kbins_bind_validation() -> None:
    with pytest.raises(BundleFormatError, match="ascending"):
        Model(_bundle([Field("x0")], [_kbins_step("ordinal", [[0.0, 2.0, 1.0]])]))
    step = _kbins_step("ordinal", [[0.0, 1.0]])
    step.outputs.append("extra")
    with pytest.raises(BundleFormatError, match="outputs"):
        Model(_bundle([Field("x0")], [step]))
    with pytest.raises(BundleFormatError, match="at least 2"):
        Model(_bundle([Field("x0")], [_kbins_step("ordinal", [[0.0]])]))


# --- property tests: random tables, kernel == reference == a dict lookup ---------------------
@st.composite
def lookup_case(draw):
    vocab = [f"v{k}" for k in range(draw(st.integers(0, 6)))]
    numbers = draw(st.lists(st.sampled_from([-2.0, -0.5, 0.0, 1.0, 3.0, 1e300]), unique=True,
                            max_size=5))
    s_cats = draw(st.lists(st.sampled_from(vocab), unique=True)) if vocab else []
    s_missing = draw(st.booleans())
    x_missing = draw(st.booleans())
    n_rows = draw(st.integers(1, 20))
    s_vals = draw(st.lists(st.sampled_from([*vocab, None, "unseen"]), min_size=n_rows,
                           max_size=n_rows))
    x_vals = draw(st.lists(st.sampled_from([*numbers, NAN, 7.0, -math.inf]), min_size=n_rows,
                           max_size=n_rows))
    return vocab, numbers, s_cats, s_missing, x_missing, s_vals, x_vals, draw(st.randoms())


@settings(max_examples=60, deadline=None)
@given(lookup_case(), st.sampled_from(["one_hot", "ordinal"]))
def test_lookup_property(case, op) -> None:
    vocab, numbers, s_cats, s_missing, x_missing, s_vals, x_vals, rnd = case
    cats = [(0, c, NAN, False) for c in s_cats] + [(1, None, v, False) for v in numbers]
    if s_missing:
        cats.append((0, None, NAN, True))
    if x_missing:
        cats.append((1, None, NAN, True))
    rnd.shuffle(cats)
    n_out = 4
    values = [rnd.randrange(-1, n_out) if op == "one_hot" else rnd.choice([NAN, 0.0, 2.0, 5.5])
              for _ in cats]
    unk = [rnd.randrange(-1, n_out) if op == "one_hot" else rnd.choice([NAN, -1.0])
           for _ in range(2)]
    rows = [(*c, v) for c, v in zip(cats, values, strict=True)]
    col = "output" if op == "one_hot" else "code"
    table = _cat_table(rows, col) if rows else {
        "input": np.zeros(0, np.int32), "category": np.zeros(0, object),
        "number": np.zeros(0), "missing": np.zeros(0, bool),
        col: np.zeros(0, np.int32 if op == "one_hot" else np.float64)}
    if op == "one_hot":
        inputs = {"handle_unknown": np.array(["infrequent"] * 2, dtype=object),
                  "infrequent_output": np.array(unk, dtype=np.int32)}
        outs = [f"o{k}" for k in range(n_out)]
    else:
        inputs = {"handle_unknown": np.array(["value"] * 2, dtype=object),
                  "unknown_value": np.array(unk)}
        outs = ["o0", "o1"]
    step = Step(op=op, op_version=1, name="st", inputs=["s", "x"], outputs=outs,
                tables={"categories": table, "inputs": inputs})
    fields = [Field("s", "string", categories=list(vocab)), Field("x")]
    got = _both(Model(_bundle(fields, [step])), {"s": s_vals, "x": x_vals})

    def lookup(j: int, v) -> float | int:
        for (inp, c, num, miss), value in zip(cats, values, strict=True):
            if inp != j:
                continue
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if miss:
                    return value
            elif (j == 0 and c == v) or (j == 1 and not miss and num == v):
                return value
        return unk[j]

    for i in range(len(s_vals)):
        if op == "one_hot":
            want = np.zeros(n_out)
            for j, v in enumerate((s_vals[i], x_vals[i])):
                t = lookup(j, v)
                if t >= 0:
                    want[t] = 1.0
        else:
            want = np.array([lookup(0, s_vals[i]), lookup(1, x_vals[i])], dtype=float)
        np.testing.assert_array_equal(got[i], want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6, width=32), min_size=2, max_size=6), min_size=1,
                max_size=3),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=15),
       st.booleans())
def test_kbins_property(edge_lists, xs, onehot) -> None:
    edges = [sorted(e) for e in edge_lists]
    fields = [Field(f"x{j}") for j in range(len(edges))]
    X = np.array([[xs[(i + j) % len(xs)] for j in range(len(edges))] for i in range(len(xs))])
    model = Model(_bundle(fields, [_kbins_step("onehot" if onehot else "ordinal", edges)]))
    got = _both(model, X)
    start = 0
    for j, e in enumerate(edges):
        b = np.searchsorted(np.array(e[1:-1]), X[:, j], side="right")
        if onehot:
            np.testing.assert_array_equal(got[:, start: start + len(e) - 1],
                                          np.eye(len(e) - 1)[b])
            start += len(e) - 1
        else:
            np.testing.assert_array_equal(got[:, j], b)


def test_binders_directly() -> None:
    # the binders take a BindContext: code inputs are the columns with a vocabulary
    ctx = BindContext(index={"s": 0, "x": 1, **{f"o{k}": 2 + k for k in range(5)}},
                      vocab={"s": ["a", "b", "c", "z"]})
    bound = bind_one_hot(_one_hot_step(), ctx)
    ws = np.zeros((2, 7))
    ws[:, 0] = [2.0, -1.0]
    ws[:, 1] = [-4.0, 1.0]
    assert bound.kernel(ws, *bound.args) == -1
    np.testing.assert_array_equal(ws[:, 2:], [[0, 1, 0, 0, 1], [0, 0, 0, 1, 0]])
    assert bind_ordinal(_ordinal_step(), BindContext(
        index={"s": 0, "x": 1, "o0": 2, "o1": 3}, vocab={"s": ["a", "b", "c"]})).error
    assert bind_kbins(_kbins_step("ordinal", [[0.0, 1.0]]),
                      BindContext(index={"x0": 0, "o0": 1})).error is None
