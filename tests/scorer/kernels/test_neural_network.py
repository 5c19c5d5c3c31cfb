"""Kernels of family ``neural_network``: Numba (serial and parallel) == NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.ir import Step
from scorer.kernels.neural_network import (
    ACTIVATIONS,
    BLOCK,
    bind_neural_network,
    neural_network_kernel,
    neural_network_kernel_parallel,
    neural_network_reference,
)
from scorer.ops import BindContext
from scorer.tolerances import TOLERANCES, close_mask

TOL = TOLERANCES["neural_network"]


def _step(n_in: int, sizes: list[int], acts: list[str], norms: list[str], rng, *,
          scale: float = 1.0, thresholds=None, leakages=None) -> Step:
    n_w = sum(a * b for a, b in zip([n_in, *sizes[:-1]], sizes, strict=True))
    n_n = sum(sizes)
    return Step(op="neural_network", op_version=1, name="nn",
                inputs=[f"x{i}" for i in range(n_in)],
                outputs=[f"y{j}" for j in range(sizes[-1])], tables={
        "layers": {"neurons": np.asarray(sizes, dtype=np.int32),
                   "activation": np.asarray(acts, dtype=object),
                   "threshold": np.asarray(thresholds or [0.0] * len(sizes)),
                   "leakage": np.asarray(leakages or [0.0] * len(sizes)),
                   "normalization": np.asarray(norms, dtype=object)},
        "neurons": {"bias": rng.normal(size=n_n) * scale,
                    "width": rng.uniform(0.5, 3.0, size=n_n),
                    "altitude": rng.choice([1.0, 0.5, 2.0], size=n_n)},
        "weights": {"weight": rng.normal(size=n_w) * scale}})


def _run(step: Step, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_in, k = len(step.inputs), len(step.outputs)
    ctx = BindContext(index={c: i for i, c in enumerate(step.inputs + step.outputs)})
    b = bind_neural_network(step, ctx)
    assert (b.kernel, b.parallel, b.reference) == (
        neural_network_kernel, neural_network_kernel_parallel, neural_network_reference)
    out = []
    for fn in (b.kernel, b.parallel, b.reference):
        ws = np.zeros((X.shape[0], n_in + k))
        ws[:, :n_in] = X
        assert fn(ws, *b.args) == -1
        out.append(ws[:, n_in:])
    return out[0], out[1], out[2]


# activations for random deep stacks: all but radialBasis (tested below) and those that make
# a stack ill-conditioned, where a last-ulp libm difference (NumPy's SIMD exp vs the C
# library's) is amplified without limit: reciprocal near 0, and exponential / square growing
# values that a later sine / cosine then reads modulo 2 pi. Each is tested alone below.
SMOOTH = ["identity", "logistic", "tanh", "rectifier", "Gauss", "sine", "cosine", "Elliott",
          "arctan"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2 * BLOCK + 3), n_in=st.integers(1, 9),
       sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       acts=st.lists(st.sampled_from(SMOOTH), min_size=4, max_size=4),
       norm=st.sampled_from(["none", "softmax"]), seed=st.integers(0, 2**32 - 1))
def test_kernel_matches_reference(n, n_in, sizes, acts, norm, seed):
    rng = np.random.default_rng(seed)
    L = len(sizes)
    step = _step(n_in, sizes, acts[:L], ["none"] * (L - 1) + [norm], rng, scale=0.5)
    X = rng.normal(size=(n, n_in))
    numba, par, ref = _run(step, X)
    # serial and parallel kernels run the same code on the same blocks: bit for bit
    assert np.array_equal(numba, par, equal_nan=True)
    # sums run in the same order; only libm (exp, tanh, sin...) may differ in the last ulp
    assert close_mask(numba, ref, TOL.abs, TOL.rel).all(), np.max(np.abs(numba - ref))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_each_activation_single_layer(act):
    rng = np.random.default_rng(1)
    step = _step(3, [4], [act], ["none"], rng, thresholds=[0.25], leakages=[0.01])
    X = rng.normal(size=(300, 3))
    X[:3] = [[0.0, 0.0, 0.0], [700.0, -700.0, 3.0], [1e-300, -1e-300, 0.0]]
    numba, par, ref = _run(step, X)
    assert np.array_equal(numba, par, equal_nan=True)
    assert close_mask(numba, ref, 1e-14, 1e-14).all(), (act, np.nanmax(np.abs(numba - ref)))


def test_activation_formulas_on_known_values():
    """One neuron, weight 1, bias 0: the output is the activation of the input itself."""
    z = np.array([-2.5, -0.5, 0.0, 0.25, 0.5, 3.0])
    expect = {
        "identity": z, "logistic": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
        "rectifier": np.where(z > 0, z, 0.1 * z), "exponential": np.exp(z),
        "square": z * z, "Gauss": np.exp(-z * z), "sine": np.sin(z), "cosine": np.cos(z),
        "Elliott": z / (1 + np.abs(z)), "arctan": 2 * np.arctan(z) / np.pi,
        "threshold": (z > 0.25).astype(float),  # 0.25 itself is not above the threshold
    }
    for act, want in expect.items():
        step = Step(op="neural_network", op_version=1, name="nn", inputs=["x"], outputs=["y"],
                    tables={"layers": {"neurons": np.array([1], dtype=np.int32),
                                       "activation": np.array([act], dtype=object),
                                       "threshold": np.array([0.25]),
                                       "leakage": np.array([0.1]),
                                       "normalization": np.array(["none"], dtype=object)},
                            "neurons": {"bias": np.zeros(1), "width": np.full(1, np.nan),
                                        "altitude": np.ones(1)},
                            "weights": {"weight": np.ones(1)}})
        numba, _, ref = _run(step, z[:, None])
        np.testing.assert_allclose(numba[:, 0], want, rtol=1e-15, atol=0, err_msg=act)
        np.testing.assert_allclose(ref[:, 0], want, rtol=1e-15, atol=0, err_msg=act)


def test_radial_basis_formula():
    rng = np.random.default_rng(2)
    step = _step(3, [5, 2], ["radialBasis", "identity"], ["none", "none"], rng)
    X = rng.normal(size=(50, 3))
    numba, par, ref = _run(step, X)
    assert np.array_equal(numba, par)
    assert close_mask(numba, ref, 1e-14, 1e-14).all()
    # the first layer by hand: exp(-|x - w_j|^2 / (2 width^2) + 3 ln(altitude))
    w = step.tables["weights"]["weight"][:15].reshape(5, 3)
    width = step.tables["neurons"]["width"][:5]
    alt = step.tables["neurons"]["altitude"][:5]
    h = np.exp(-((X[:, None, :] - w[None]) ** 2).sum(axis=2) / (2 * width**2)
               + 3 * np.log(alt))
    w2 = step.tables["weights"]["weight"][15:].reshape(2, 5)
    want = h @ w2.T + step.tables["neurons"]["bias"][5:]
    np.testing.assert_allclose(numba, want, rtol=1e-12, atol=1e-12)


def test_normalizations_sum_to_one():
    rng = np.random.default_rng(3)
    for norm in ("softmax", "simplemax"):
        step = _step(4, [6, 3], ["tanh", "logistic"], ["none", norm], rng)
        numba, _, ref = _run(step, rng.normal(size=(100, 4)))
        np.testing.assert_allclose(numba.sum(axis=1), 1.0, rtol=1e-15)
        assert (numba > 0).all()
        assert close_mask(numba, ref, 1e-15, 1e-15).all()
    # softmax of huge margins does not overflow (the max is subtracted first)
    step = _step(1, [3], ["identity"], ["softmax"], rng)
    step.tables["weights"]["weight"][:] = [1000.0, 999.0, -1000.0]
    step.tables["neurons"]["bias"][:] = 0.0
    numba, _, ref = _run(step, np.array([[1.0], [-1.0]]))
    assert np.isfinite(numba).all() and np.isfinite(ref).all()
    e = np.exp([0.0, -1.0])
    np.testing.assert_allclose(numba[0, :2], e / e.sum(), rtol=1e-15)


def test_a_missing_input_makes_every_output_missing():
    rng = np.random.default_rng(4)
    # threshold would turn NaN into 0.0 and a weight 0 would hide it: the row rule wins
    step = _step(3, [2, 2], ["threshold", "identity"], ["none", "softmax"], rng)
    step.tables["weights"]["weight"][:6] = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    X = rng.normal(size=(2 * BLOCK + 1, 3))
    X[[0, BLOCK, 2 * BLOCK], [0, 1, 2]] = np.nan
    numba, par, ref = _run(step, X)
    for out in (numba, par, ref):
        assert np.isnan(out[[0, BLOCK, 2 * BLOCK]]).all()
        assert not np.isnan(np.delete(out, [0, BLOCK, 2 * BLOCK], axis=0)).any()


def test_overflow_follows_ieee():
    step = Step(op="neural_network", op_version=1, name="nn", inputs=["x"], outputs=["y"],
                tables={"layers": {"neurons": np.array([1, 1], dtype=np.int32),
                                   "activation": np.array(["exponential", "reciprocal"],
                                                          dtype=object),
                                   "threshold": np.zeros(2), "leakage": np.zeros(2),
                                   "normalization": np.array(["none", "none"], dtype=object)},
                        "neurons": {"bias": np.zeros(2), "width": np.full(2, np.nan),
                                    "altitude": np.ones(2)},
                        "weights": {"weight": np.ones(2)}})
    numba, _, ref = _run(step, np.array([[800.0], [-800.0], [0.0]]))
    # exp(800) = inf -> 1/inf = 0; exp(-800) = 0 -> 1/0 = inf
    for out in (numba, ref):
        assert out[0, 0] == 0.0 and out[1, 0] == math.inf and out[2, 0] == 1.0


def test_bind_refuses_inconsistent_tables():
    rng = np.random.default_rng(5)
    ctx = BindContext(index={"x0": 0, "x1": 1, "y0": 2})
    step = _step(2, [3, 1], ["tanh", "identity"], ["none", "none"], rng)
    step.tables["weights"]["weight"] = step.tables["weights"]["weight"][:-1]
    with pytest.raises(ValueError, match="weights"):
        bind_neural_network(step, ctx)
    step = _step(2, [3, 1], ["tanh", "swish"], ["none", "none"], rng)
    with pytest.raises(ValueError, match="activation 'swish' unknown"):
        bind_neural_network(step, ctx)
    step = _step(2, [3, 1], ["tanh", "identity"], ["none", "max"], rng)
    with pytest.raises(ValueError, match="normalization 'max' unknown"):
        bind_neural_network(step, ctx)
    step = _step(2, [3, 2], ["tanh", "identity"], ["none", "none"], rng)
    step.outputs = ["y0"]
    with pytest.raises(ValueError, match="2 neurons for 1 outputs"):
        bind_neural_network(step, ctx)
