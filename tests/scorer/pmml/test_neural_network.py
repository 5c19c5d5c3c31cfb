"""PMML NeuralNetwork: hand-written documents scored end to end against a plain NumPy forward
pass over the same parameters, and the elements the reader refuses."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scorer.model import Model
from scorer.pmml import PMMLError, read_pmml_bytes
from scorer.tolerances import TOLERANCES, close_mask

TOL = TOLERANCES["neural_network"]

DD = """<DataDictionary>
  <DataField name="a" optype="continuous" dataType="double"/>
  <DataField name="b" optype="continuous" dataType="double"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="u"/><Value value="v"/></DataField>
  <DataField name="y" optype="continuous" dataType="double"/>
  <DataField name="y2" optype="continuous" dataType="double"/>
  <DataField name="k" optype="categorical" dataType="string">
    <Value value="p"/><Value value="q"/><Value value="r"/><Value value="s"/></DataField>
</DataDictionary>"""

INPUTS = """<NeuralInputs>
  <NeuralInput id="in:a"><DerivedField optype="continuous" dataType="double">
    <FieldRef field="a"/></DerivedField></NeuralInput>
  <NeuralInput id="in:b"><DerivedField optype="continuous" dataType="double">
    <NormContinuous field="b"><LinearNorm orig="0" norm="-1"/><LinearNorm orig="10" norm="1"/>
    </NormContinuous></DerivedField></NeuralInput>
  <NeuralInput id="in:c"><DerivedField optype="continuous" dataType="double">
    <NormDiscrete field="c" value="v"/></DerivedField></NeuralInput>
</NeuralInputs>"""


def _inputs(X: dict) -> np.ndarray:
    """The three input neurons as the document defines them."""
    return np.column_stack([X["a"], -1 + (X["b"] - 0) * 2 / 10,
                            np.where(X["c"] == "v", 1.0, 0.0)])


def _layer(lid: int, w: np.ndarray, b: np.ndarray, src: list[str], attrs: str = "") -> str:
    neurons = "".join(
        f'<Neuron id="{lid}/{j}" bias="{float(b[j])!r}">'
        + "".join(f'<Con from="{s}" weight="{float(w[i, j])!r}"/>' for i, s in enumerate(src))
        + "</Neuron>" for j in range(w.shape[1]))
    return f"<NeuralLayer {attrs}>{neurons}</NeuralLayer>"


def _doc(function: str, targets: list[str], body: str, attrs: str = "") -> bytes:
    ms = "".join(f'<MiningField name="{t}" usageType="target"/>' for t in targets)
    ms += '<MiningField name="a"/><MiningField name="b"/><MiningField name="c"/>'
    return (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}'
            f'<NeuralNetwork functionName="{function}" activationFunction="tanh" {attrs}>'
            f"<MiningSchema>{ms}</MiningSchema>{body}</NeuralNetwork></PMML>").encode()


def _X(n: int = 200, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=n), "b": rng.uniform(-2, 12, size=n),
            "c": rng.choice(np.array(["u", "v"], dtype=object), size=n)}


def _score(doc: bytes, X: dict) -> dict:
    m = Model(read_pmml_bytes(doc))
    fast, ref = m.score_arrays(X), m.score_arrays(X, reference=True)
    for k in fast:
        if np.asarray(fast[k]).dtype.kind == "f":
            assert close_mask(fast[k], ref[k], TOL.abs, TOL.rel).all(), k
        else:
            assert np.array_equal(fast[k], ref[k]), k
    return fast


def test_classification_with_layer_overrides_and_softmax():
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(3, 5)), rng.normal(size=5)
    w2, b2 = rng.normal(size=(5, 4)), rng.normal(size=4)
    w3, b3 = rng.normal(size=(4, 3)), rng.normal(size=3)
    outs = "".join(
        f'<NeuralOutput outputNeuron="3/{j}"><DerivedField optype="categorical" '
        f'dataType="string"><NormDiscrete field="k" value="{cls}"/></DerivedField>'
        "</NeuralOutput>" for j, cls in enumerate(["r", "p", "q"]))  # "s" has no neuron
    body = (INPUTS + _layer(1, w1, b1, ["in:a", "in:b", "in:c"])
            + _layer(2, w2, b2, [f"1/{j}" for j in range(5)],
                     'activationFunction="rectifier" leakage="0.05"')
            + _layer(3, w3, b3, [f"2/{j}" for j in range(4)],
                     'activationFunction="identity" normalizationMethod="softmax"')
            + f"<NeuralOutputs>{outs}</NeuralOutputs>")
    X = _X()
    got = _score(_doc("classification", ["k"], body), X)
    h = np.tanh(_inputs(X) @ w1 + b1)
    z = h @ w2 + b2
    h = np.where(z > 0, z, 0.05 * z)
    z = h @ w3 + b3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for j, cls in enumerate(["r", "p", "q"]):
        np.testing.assert_allclose(got[f"probability({cls})"], p[:, j], rtol=1e-12, atol=1e-14)
    assert (got["probability(s)"] == 0.0).all()
    classes = np.array(["p", "q", "r", "s"], dtype=object)
    want = classes[np.argmax(np.column_stack([p[:, 1], p[:, 2], p[:, 0],
                                              np.zeros(len(p))]), axis=1)]
    assert np.array_equal(got["k"], want)


def test_regression_denormalizes_and_serves_several_targets():
    rng = np.random.default_rng(2)
    w1, b1 = rng.normal(size=(3, 4)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(4, 2)), rng.normal(size=2)
    outs = ('<NeuralOutput outputNeuron="2/0"><DerivedField optype="continuous" '
            'dataType="double"><NormContinuous field="y"><LinearNorm orig="-5" norm="0"/>'
            '<LinearNorm orig="5" norm="0.5"/><LinearNorm orig="100" norm="1"/>'
            "</NormContinuous></DerivedField></NeuralOutput>"
            '<NeuralOutput outputNeuron="2/1"><DerivedField optype="continuous" '
            'dataType="double"><FieldRef field="y2"/></DerivedField></NeuralOutput>')
    body = (INPUTS + _layer(1, w1, b1, ["in:a", "in:b", "in:c"],
                            'activationFunction="logistic"')
            + _layer(2, w2, b2, [f"1/{j}" for j in range(4)], 'activationFunction="identity"')
            + f"<NeuralOutputs>{outs}</NeuralOutputs>")
    X = _X()
    got = _score(_doc("regression", ["y", "y2"], body), X)
    z = 1 / (1 + np.exp(-(_inputs(X) @ w1 + b1))) @ w2 + b2
    # inverse of the piecewise-linear normalization, extrapolated beyond the ends
    n = z[:, 0]
    y = np.where(n < 0.5, -5 + (n - 0) * 10 / 0.5, 5 + (n - 0.5) * 95 / 0.5)
    np.testing.assert_allclose(got["y"], y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["y2"], z[:, 1], rtol=1e-12, atol=1e-12)


def test_threshold_and_radial_basis_layers():
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(3, 4))
    w2, b2 = rng.normal(size=(4, 2)), rng.normal(size=2)
    w3, b3 = rng.normal(size=(2, 1)), rng.normal(size=1)
    rbf = "".join(
        f'<Neuron id="1/{j}" width="{0.5 + j}"' + (' altitude="2"' if j == 1 else "") + ">"
        + "".join(f'<Con from="{s}" weight="{float(w1[i, j])!r}"/>'
                  for i, s in enumerate(["in:a", "in:b", "in:c"])) + "</Neuron>"
        for j in range(4))
    body = (INPUTS + f'<NeuralLayer activationFunction="radialBasis">{rbf}</NeuralLayer>'
            + _layer(2, w2, b2, [f"1/{j}" for j in range(4)],
                     'activationFunction="threshold" threshold="0.1"')
            + _layer(3, w3, b3, ["2/0", "2/1"], 'activationFunction="identity"')
            + '<NeuralOutputs><NeuralOutput outputNeuron="3/0"><DerivedField '
              'optype="continuous" dataType="double"><FieldRef field="y"/></DerivedField>'
              "</NeuralOutput></NeuralOutputs>")
    X = _X()
    got = _score(_doc("regression", ["y"], body, 'altitude="1.0"'), X)
    width = 0.5 + np.arange(4)
    alt = np.array([1.0, 2.0, 1.0, 1.0])
    d2 = ((_inputs(X)[:, :, None] - w1[None]) ** 2).sum(axis=1)
    h = np.exp(-d2 / (2 * width**2) + 3 * np.log(alt))
    h = ((h @ w2 + b2) > 0.1).astype(float)
    np.testing.assert_allclose(got["y"], (h @ w3 + b3)[:, 0], rtol=1e-12, atol=1e-12)


def test_missing_input_makes_the_prediction_missing():
    rng = np.random.default_rng(4)
    w1, b1 = rng.normal(size=(3, 2)), rng.normal(size=2)
    body = (INPUTS + _layer(1, w1, b1, ["in:a", "in:b", "in:c"],
                            'activationFunction="identity" normalizationMethod="simplemax"')
            + "<NeuralOutputs>" + "".join(
                f'<NeuralOutput outputNeuron="1/{j}"><DerivedField optype="categorical" '
                f'dataType="string"><NormDiscrete field="k" value="{c}"/></DerivedField>'
                "</NeuralOutput>" for j, c in enumerate("pq")) + "</NeuralOutputs>")
    X = _X(4)
    X["a"][1] = np.nan
    X["c"][2] = None
    got = _score(_doc("classification", ["k"], body), X)
    for c in "pq":
        assert np.isnan(got[f"probability({c})"][[1, 2]]).all()
        assert not np.isnan(got[f"probability({c})"][[0, 3]]).any()


def _refused(body: str, match: str, function: str = "regression") -> None:
    with pytest.raises(PMMLError, match=match) as info:
        read_pmml_bytes(_doc(function, ["y"], body))
    assert re.search(r"line \d+", str(info.value))


OUT_Y = ('<NeuralOutputs><NeuralOutput outputNeuron="{nid}"><DerivedField optype="continuous" '
         'dataType="double"><FieldRef field="y"/></DerivedField></NeuralOutput>'
         "</NeuralOutputs>")


def test_refusals_name_the_element_and_line():
    w, b = np.ones((3, 1)), np.zeros(1)
    first = _layer(1, w, b, ["in:a", "in:b", "in:c"])
    skip = _layer(2, np.ones((2, 1)), b, ["1/0", "in:a"])
    _refused(INPUTS + first + skip + OUT_Y.format(nid="2/0"),
             "<Con>: connects from 'in:a', which is not a neuron of the previous layer")
    _refused(INPUTS + first + _layer(2, np.ones((1, 1)), b, ["1/0"]) + OUT_Y.format(nid="1/0"),
             "outputNeuron '1/0' is not a neuron of the last NeuralLayer")
    _refused(INPUTS + _layer(1, w, b, ["in:a", "in:b", "in:c"], 'activationFunction="swish"')
             + OUT_Y.format(nid="1/0"), "activationFunction='swish' not supported")
    _refused(INPUTS + _layer(1, w, b, ["in:a", "in:b", "in:c"],
                             'normalizationMethod="max"') + OUT_Y.format(nid="1/0"),
             "normalizationMethod='max' not supported")
    _refused(INPUTS + _layer(1, w, b, ["in:a", "in:b", "in:c"],
                             'activationFunction="radialBasis"') + OUT_Y.format(nid="1/0"),
             "radialBasis needs a width")
    _refused(INPUTS + _layer(1, np.ones((2, 1)), b, ["in:a", "in:a"])
             + OUT_Y.format(nid="1/0"), "a second connection from 'in:a'")
    bad_out = OUT_Y.format(nid="1/0").replace('<FieldRef field="y"/>',
                                              '<NormDiscrete field="c" value="u"/>')
    _refused(INPUTS + first + bad_out, "a NeuralOutput for target 'y'|FieldRef or NormCont")
    string_input = INPUTS.replace('<NormDiscrete field="c" value="v"/>', '<FieldRef field="c"/>')
    _refused(string_input + first + OUT_Y.format(nid="1/0"), "must be numeric")
