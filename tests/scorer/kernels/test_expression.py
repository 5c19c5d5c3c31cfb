"""Kernel ``expression``: the Numba interpreter == the Python reference; bad programs refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scorer.errors import BundleFormatError
from scorer.ir import Bundle, Field, Output, Step
from scorer.kernels.expression import (
    OPCODES,
    check_program,
    expression_kernel,
    expression_reference,
)
from scorer.model import Model

_UNARY = [n for n, c in OPCODES.items() if 50 <= c < 70] + ["NOT", "ISMISSING",
                                                           "ISNOTMISSING"]
_BINARY = [n for n, c in OPCODES.items() if 10 <= c <= 34 and n != "NOT"] + ["THRESHOLD"]
VALUES = np.array([-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, 1e300, -math.inf, math.inf, math.nan])


def _prog(*ins: tuple[str, int, float]):
    return (np.array([OPCODES[n] for n, _, _ in ins], dtype=np.int32),
            np.array([a for _, a, _ in ins], dtype=np.int32),
            np.array([v for _, _, v in ins], dtype=np.float64))


def _run(prog, ws, n_in, n_out, sets=None):
    sets = np.zeros(0) if sets is None else sets
    a, b = ws.copy(), ws.copy()
    ins, outs = np.arange(n_in), np.arange(n_in, n_in + n_out)
    assert expression_kernel(a, ins, outs, *prog, sets) == -1
    expression_reference(b, ins, outs, *prog, sets)
    return a, b


@pytest.mark.parametrize("name", _UNARY)
def test_unary_ops_match_reference(name):
    ws = np.zeros((len(VALUES), 2))
    ws[:, 0] = VALUES
    with np.errstate(all="ignore"):
        a, b = _run(_prog(("LOAD", 0, 0), (name, 0, 0), ("STORE", 0, 0)), ws, 1, 1)
    np.testing.assert_allclose(a, b, rtol=1e-15, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", _BINARY)
def test_binary_ops_match_reference(name):
    x, y = np.meshgrid(VALUES, VALUES)
    ws = np.zeros((x.size, 3))
    ws[:, 0], ws[:, 1] = x.ravel(), y.ravel()
    with np.errstate(all="ignore"):
        a, b = _run(_prog(("LOAD", 0, 0), ("LOAD", 1, 0), (name, 0, 0), ("STORE", 0, 0)),
                    ws, 2, 1)
    np.testing.assert_allclose(a, b, rtol=1e-15, atol=0, equal_nan=True)


def test_three_valued_logic():
    nan = math.nan
    ws = np.array([[0.0, nan, 0, 0], [1.0, nan, 0, 0], [nan, nan, 0, 0], [1.0, 1.0, 0, 0]])
    prog = _prog(("LOAD", 0, 0), ("LOAD", 1, 0), ("AND", 0, 0), ("STORE", 0, 0),
                 ("LOAD", 0, 0), ("LOAD", 1, 0), ("OR", 0, 0), ("STORE", 1, 0))
    a, b = _run(prog, ws, 2, 2)
    np.testing.assert_array_equal(a[:, 2], [0.0, nan, nan, 1.0])
    np.testing.assert_array_equal(a[:, 3], [nan, 1.0, nan, 1.0])
    np.testing.assert_array_equal(a, b)


def test_if_in_set_and_outputs():
    ws = np.array([[2.0, 0, 0], [5.0, 0, 0], [math.nan, 0, 0]])
    sets = np.array([1.0, 2.0, 3.0])
    prog = _prog(("LOAD", 0, 0), ("IN_SET", 0, 3.0), ("CONST", 0, 10.0), ("CONST", 0, 20.0),
                 ("IF", 0, 0), ("STORE", 0, 0), ("LOADOUT", 0, 0), ("CONST", 0, 1.0),
                 ("ADD", 0, 0), ("STORE", 1, 0))
    a, b = _run(prog, ws, 1, 2, sets)
    np.testing.assert_array_equal(a[:, 1:], [[10, 11], [20, 21], [math.nan, math.nan]])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("prog,msg", [
    ([("ADD", 0, 0)], "underflow"), ([("LOAD", 5, 0)], "input 5 out of range"),
    ([("CONST", 0, 1), ("STORE", 3, 0)], "output 3 out of range"),
    ([("CONST", 0, 1), ("IN_SET", 0, 4.0)], "set out of range"),
])
def test_bad_programs_are_refused(prog, msg):
    with pytest.raises(ValueError, match=msg):
        check_program(*_prog(*prog), 2, 1, 1, what="test")
    with pytest.raises(ValueError, match="opcode 99"):
        check_program(np.array([99], dtype=np.int32), np.zeros(1, dtype=np.int32),
                      np.zeros(1), 0, 1, 1, what="test")


def test_a_bad_program_is_a_bundle_format_error_at_load():
    op, arg, val = _prog(("POP", 0, 0))
    step = Step("expression", 1, "e", ["x"], ["y"], tables={
        "program": {"opcode": op, "arg": arg, "value": val}})
    b = Bundle("m", "1", "regression", [Field("x")], [step], [Output("y", "value", column="y")])
    with pytest.raises(BundleFormatError, match="underflow"):
        Model(b)


def test_median_and_weighted_median():
    rng = np.random.default_rng(1)
    ws = np.zeros((40, 10))
    ws[:, :4] = rng.normal(size=(40, 4))
    ws[:, 4:8] = rng.uniform(0.1, 2.0, size=(40, 4))
    ws[0, 1] = math.nan
    loads = [("LOAD", j, 0) for j in range(4)]
    prog = _prog(*loads, ("MEDIAN", 4, 0), ("STORE", 0, 0),
                 *loads, *[("LOAD", 4 + j, 0) for j in range(4)], ("WMEDIAN", 4, 0),
                 ("STORE", 1, 0))
    a, b = _run(prog, ws, 8, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[1:, 8], np.median(ws[1:, :4], axis=1))
    assert math.isnan(a[0, 8]) and math.isnan(a[0, 9])
    with pytest.raises(ValueError, match="at least one operand"):
        check_program(*_prog(("MEDIAN", 0, 0)), 0, 1, 1, what="test")


def test_refuse_if_stops_at_the_row():
    ws = np.array([[1.0, 0], [math.nan, 0], [-1.0, 0], [2.0, 0]])
    prog = _prog(("LOAD", 0, 0), ("CONST", 0, 0.0), ("LT", 0, 0), ("REFUSE_IF", 0, 0),
                 ("LOAD", 0, 0), ("STORE", 0, 0))
    ins, outs = np.arange(1), np.arange(1, 2)
    a, b = ws.copy(), ws.copy()
    assert expression_kernel(a, ins, outs, *prog, np.zeros(0)) == 2
    assert expression_reference(b, ins, outs, *prog, np.zeros(0)) == 2
    np.testing.assert_array_equal(a[:2], b[:2])


# --- SKIP_UNLESS / SKIP: lazily evaluated branches ------------------------------------------
def _select(cands: list[float], values: list[float]) -> list[tuple[str, int, float]]:
    """x == c_0 ? v_0 * y : x == c_1 ? v_1 * y : ... NaN, with skips (the linear-tree form)."""
    body = []
    for j, (c, v) in enumerate(zip(cands, values, strict=True)):
        rest = len(cands) - j - 1  # candidates after this one: 8 instructions each
        body += [("LOAD", 0, 0), ("CONST", 0, c), ("EQ", 0, 0), ("SKIP_UNLESS", 4, 0),
                 ("LOAD", 1, 0), ("CONST", 0, v), ("MUL", 0, 0), ("SKIP", 8 * rest + 1, 0)]
    return [*body, ("CONST", 0, math.nan), ("STORE", 0, 0)]


def test_skips_evaluate_the_selected_branch_only():
    ws = np.array([[0.0, 2.0, 0], [1.0, 2.0, 0], [2.0, 2.0, 0], [math.nan, 2.0, 0],
                   [5.0, 2.0, 0], [1.0, math.nan, 0]])
    prog = _prog(*_select([0.0, 1.0, 2.0], [10.0, 20.0, 30.0]))
    check_program(*prog, 0, 2, 1, what="test", skips=True)
    a, b = _run(prog, ws, 2, 1)
    np.testing.assert_array_equal(a[:, 2], [20.0, 40.0, 60.0, math.nan, math.nan, math.nan])
    np.testing.assert_array_equal(a, b)


def test_skip_unless_treats_zero_and_nan_as_not_true():
    ws = np.array([[1.0, 0], [0.0, 0], [math.nan, 0], [-3.0, 0]])
    prog = _prog(("CONST", 0, 7.0), ("LOAD", 0, 0), ("SKIP_UNLESS", 3, 0), ("POP", 0, 0),
                 ("CONST", 0, 5.0), ("SKIP", 0, 0), ("STORE", 0, 0))
    check_program(*prog, 0, 1, 1, what="test", skips=True)
    a, b = _run(prog, ws, 1, 1)
    np.testing.assert_array_equal(a[:, 1], [5.0, 7.0, 7.0, 5.0])
    np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), k=st.integers(1, 6), n=st.integers(1, 30))
def test_skips_numba_equals_reference_and_numpy(data, k, n):
    cands = data.draw(st.lists(st.integers(-2, 8), min_size=k, max_size=k))
    values = data.draw(st.lists(st.floats(-1e6, 1e6), min_size=k, max_size=k))
    x = data.draw(arrays(np.float64, n, elements=st.one_of(
        st.integers(-3, 9).map(float), st.just(math.nan))))
    y = data.draw(arrays(np.float64, n, elements=st.floats(allow_nan=True, allow_infinity=True)))
    ws = np.column_stack([x, y, np.zeros(n)])
    prog = _prog(*_select([float(c) for c in cands], values))
    check_program(*prog, 0, 2, 1, what="test", skips=True)
    with np.errstate(all="ignore"):
        a, b = _run(prog, ws, 2, 1)
        want = np.full(n, math.nan)
        for i in range(n):
            hit = [j for j, c in enumerate(cands) if x[i] == c]
            if hit:
                want[i] = values[hit[0]] * y[i]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 2], want)


@pytest.mark.parametrize("prog,msg", [
    ([("CONST", 0, 1), ("SKIP", 5, 0)], "skip out of range"),
    ([("CONST", 0, 1), ("SKIP", -1, 0)], "skip out of range"),
    ([("SKIP_UNLESS", 0, 0)], "underflow"),
    ([("SKIP", 1, 0), ("CONST", 0, 1), ("CONST", 0, 1)], "unreachable"),
    ([("CONST", 0, 1), ("SKIP_UNLESS", 1, 0), ("CONST", 0, 1), ("CONST", 0, 2)],
     "depths differ"),
])
def test_bad_skips_are_refused(prog, msg):
    with pytest.raises(ValueError, match=msg):
        check_program(*_prog(*prog), 0, 1, 1, what="test", skips=True)


def test_skips_are_refused_where_programs_run_piecewise():
    prog = _prog(("CONST", 0, 1), ("SKIP_UNLESS", 0, 0), ("CONST", 0, 1))
    check_program(*prog, 0, 1, 1, what="test", skips=True)
    with pytest.raises(ValueError, match="skips are not allowed here"):
        check_program(*prog, 0, 1, 0, what="test")  # predicate_tree's call


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 20), n=st.integers(1, 8), data=st.data())
def test_weighted_median_matches_reference_and_scikit_learns_rule(m, n, data):
    """WMEDIAN (AdaBoostRegressor's predict) on values with many ties: kernel == reference
    == scikit-learn's ``_get_median_predict`` with a stable sort of the predictions."""
    vals = data.draw(arrays(np.float64, (n, m), elements=st.sampled_from(
        [-1.0, -0.0, 0.0, 0.5, 2.0]) | st.floats(-1e3, 1e3)))
    w = data.draw(arrays(np.float64, m, elements=st.floats(1e-3, 10.0)))
    ws = np.zeros((n, m + 1))
    ws[:, :m] = vals
    prog = _prog(*[("LOAD", j, 0) for j in range(m)], *[("CONST", 0, x) for x in w],
                 ("WMEDIAN", m, 0), ("STORE", 0, 0))
    a, b = _run(prog, ws, m, 1)
    np.testing.assert_array_equal(a, b)
    order = np.argsort(vals, axis=1, kind="stable")
    cdf = np.cumsum(w[order], axis=1)
    idx = (cdf >= 0.5 * cdf[:, -1][:, None]).argmax(axis=1)
    np.testing.assert_array_equal(a[:, m], vals[np.arange(n), order[np.arange(n), idx]])
