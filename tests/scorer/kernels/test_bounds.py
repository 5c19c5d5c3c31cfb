"""Binders refuse table values that would index outside the kernels' arrays (the kernels do
not check bounds): each case is a one-step model that must be refused at load."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import BundleFormatError
from scorer.ir import Bundle, Field, Output, Step
from scorer.model import Model


def _model(step: Step, n_inputs: int = 2) -> Model:
    fields = [Field(f"x{i}") for i in range(n_inputs)]
    out = [Output(c, "value", column=c) for c in step.outputs]
    return Model(Bundle("m", "1", "regression", fields, [step], out))


def _impute(indicator: list[int]) -> Step:
    return Step("impute", 1, "imp", ["x0", "x1"], ["a", "b", *(f"i{m}" for m in indicator)],
                tables={"columns": {"fill": np.zeros(2), "emit": np.ones(2, dtype=bool)},
                        "indicator": {"input": np.array(indicator, dtype=np.int64)}})


def test_impute_indicator_in_range_scores():
    m = _model(_impute([1]))
    got = m.score_arrays({"x0": np.array([1.0]), "x1": np.array([np.nan])})
    assert got["i1"][0] == 1.0 and got["b"][0] == 0.0


@pytest.mark.parametrize("src", [2, 1 << 40, -1])
def test_impute_indicator_out_of_range_is_refused(src):
    # the kernel read in_cols[indicator.input] unchecked
    with pytest.raises(BundleFormatError, match=r"indicator\.input out of range"):
        _model(_impute([src]))


def test_softmax_link_without_inputs_is_refused():
    # softmax reads input 0 of every row; with no inputs that is past the end of in_cols
    step = Step("link", 1, "l", [], [], params={"function": "softmax"})
    with pytest.raises(BundleFormatError, match="cannot map 0 inputs"):
        _model(step)


def _nn(neurons: np.ndarray) -> Step:
    return Step("neural_network", 1, "nn", ["x0"], ["y"], tables={
        "layers": {"neurons": neurons, "activation": np.array(["identity"], dtype=object),
                   "threshold": np.zeros(1), "leakage": np.zeros(1),
                   "normalization": np.array(["none"], dtype=object)},
        "neurons": {"bias": np.zeros(1), "width": np.ones(1), "altitude": np.ones(1)},
        "weights": {"weight": np.ones(1)}})


def test_neural_network_layer_sizes_are_checked_before_multiplying():
    assert _model(_nn(np.array([1], dtype=np.int32)), 1).score_arrays(
        {"x0": np.array([2.0])})["y"][0] == 2.0
    with pytest.raises(BundleFormatError, match="neurons table has 1 rows"):
        _model(_nn(np.array([1 << 40], dtype=np.int64)), 1)
    with pytest.raises(BundleFormatError, match="must hold integers"):
        _model(_nn(np.array([1.5])), 1)


def test_arithmetic_errors_in_a_binder_are_bundle_errors():
    # int(inf) in the svm binder raised OverflowError, not a bundle error
    step = Step("svm", 1, "s", ["x0"], ["y"], params={
        "kernel": "poly", "power": "squaring", "degree": "Infinity"}, tables={
        "vectors": {"x_0": np.zeros(1)},
        "coefficients": {"machine": np.zeros(1, np.int64), "vector": np.zeros(1, np.int64),
                         "coef": np.ones(1)},
        "machines": {"intercept": np.zeros(1)}})
    with pytest.raises(BundleFormatError, match="svm step 's': cannot convert float infinity"):
        _model(step, 1)
