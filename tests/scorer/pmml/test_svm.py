"""SupportVectorMachineModel: hand-written documents scored end to end, against the PMML
formulas evaluated independently here (plain Python floats), and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer.errors import InputError
from scorer.model import Model
from scorer.pmml import PMMLError, read_pmml_bytes

DD = """<DataDictionary>
  <DataField name="x1" optype="continuous" dataType="double"/>
  <DataField name="x2" optype="continuous" dataType="double"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="a"/><Value value="b"/></DataField>
  <DataField name="y" optype="categorical" dataType="string">
    <Value value="p"/><Value value="q"/><Value value="r"/></DataField>
  <DataField name="v" optype="continuous" dataType="double"/>
</DataDictionary>"""

RNG = np.random.default_rng(7)
X1 = np.concatenate([[-1.0, 1.0, 0.0, 0.25], RNG.normal(size=60)])
X2 = np.concatenate([[1.0, -1.0, 0.0, 0.5], RNG.normal(size=60)])
VECS = {"s1": (1.0, 0.0), "s2": (0.0, 1.0), "s3": (0.5, -0.25), "s4": (-0.75, 2.0)}


def model(body: str, *, target: str = "y", fields: tuple[str, ...] = ("x1", "x2"),
          attrs: str = 'functionName="classification"', kernel: str = "<LinearKernelType/>",
          vector_fields: str | None = None, vectors: dict | None = None) -> bytes:
    vf = vector_fields or "".join(f'<FieldRef field="{f}"/>' for f in fields)
    vis = "".join(f'<VectorInstance id="{k}"><Array type="real">{" ".join(map(repr, v))}'
                  "</Array></VectorInstance>" for k, v in (vectors or VECS).items())
    ms = f'<MiningField name="{target}" usageType="target"/>' + "".join(
        f'<MiningField name="{f}"/>' for f in fields)
    doc = (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}'
           f"<SupportVectorMachineModel {attrs}><MiningSchema>{ms}</MiningSchema>{kernel}"
           f"<VectorDictionary><VectorFields>{vf}</VectorFields>{vis}</VectorDictionary>"
           f"{body}</SupportVectorMachineModel></PMML>")
    return doc.encode()


def machine(svs: dict[str, float], b: float, attrs: str = "") -> str:
    ids = "".join(f'<SupportVector vectorId="{k}"/>' for k in svs)
    cs = "".join(f'<Coefficient value="{c!r}"/>' for c in svs.values())
    return (f"<SupportVectorMachine {attrs}><SupportVectors>{ids}</SupportVectors>"
            f'<Coefficients absoluteValue="{b!r}">{cs}</Coefficients></SupportVectorMachine>')


def score(doc: bytes, X: dict) -> dict:
    m = Model(read_pmml_bytes(doc))
    fast = m.score_arrays(X)
    ref = m.score_arrays(X, reference=True)
    for k in fast:
        a, b = np.asarray(fast[k]), np.asarray(ref[k])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15, equal_nan=True)
        else:
            assert list(a) == list(b)
    return fast


def kernel_value(kind: str, x: tuple, v: tuple, gamma=1.0, coef0=1.0, degree=1.0) -> float:
    dot = sum(a * b for a, b in zip(x, v, strict=True))
    if kind == "linear":
        return dot
    if kind == "poly":
        return math.pow(gamma * dot + coef0, degree)
    if kind == "rbf":
        return math.exp(-gamma * sum((a - b) * (a - b) for a, b in zip(x, v, strict=True)))
    return math.tanh(gamma * dot + coef0)


def decision(svs: dict[str, float], b: float, x: tuple, kind: str = "linear", **kp) -> float:
    acc = 0.0
    for k, c in svs.items():
        acc += c * kernel_value(kind, x, VECS[k], **kp)
    return acc + b


# one-against-one: M1 (q vs p) on x1, M2 (r vs p) on x2, M3 (r vs q) on x1
OVO = [({"s1": 1.0}, 0.0, "q", "p"), ({"s2": 1.0}, 0.0, "r", "p"),
       ({"s1": 1.0, "s3": 0.25}, -0.125, "r", "q")]


def _ovo_expected(x: tuple, max_wins: bool, thr: float) -> tuple[str, dict[str, float]]:
    votes: dict[str, int] = {}
    for svs, b, t, a in OVO:
        d = decision(svs, b, x)
        win = d > thr if max_wins else d < thr
        c = t if win else a
        votes[c] = votes.get(c, 0) + 1  # dict order: the order of first votes
    top = max(votes.values())
    label = next(c for c, n in votes.items() if n == top)
    return label, {c: votes.get(c, 0) / len(OVO) for c in "pqr"}


@pytest.mark.parametrize("max_wins", [False, True])
def test_one_against_one_votes_ties_and_probabilities(max_wins):
    body = "".join(machine(s, b, f'targetCategory="{t}" alternateTargetCategory="{a}"')
                   for s, b, t, a in OVO)
    attrs = ('functionName="classification" classificationMethod="OneAgainstOne" '
             f'threshold="0.25" maxWins="{str(max_wins).lower()}"')
    out = score(model(body, attrs=attrs), {"x1": X1, "x2": X2})
    for i, x in enumerate(zip(X1, X2, strict=True)):
        label, probs = _ovo_expected(x, max_wins, 0.25)
        assert out["y"][i] == label, i
        for c in "pqr":
            assert out[f"probability({c})"][i] == probs[c]
    if not max_wins:
        # row 0 splits the vote 1-1-1; q voted first, so q wins (not the first class p)
        assert out["y"][0] == "q" and out["probability(p)"][0] == 1 / 3


def test_machine_threshold_and_inferred_method():
    # no classificationMethod: alternateTargetCategory present -> one-against-one
    body = machine({"s1": 2.0}, -1.0, 'targetCategory="r" alternateTargetCategory="p" '
                                      'threshold="0.5"')
    out = score(model(body), {"x1": X1, "x2": X2})
    for i, x in enumerate(zip(X1, X2, strict=True)):
        assert out["y"][i] == ("r" if decision({"s1": 2.0}, -1.0, x) < 0.5 else "p")


@pytest.mark.parametrize("max_wins", [False, True])
def test_one_against_all_smallest_or_largest_wins(max_wins):
    ms = [({"s1": 1.0, "s4": 0.5}, 0.1, "r"), ({"s2": -1.0}, 0.0, "p"),
          ({"s3": 2.0}, -0.3, "q")]
    body = "".join(machine(s, b, f'targetCategory="{t}"') for s, b, t in ms)
    attrs = ('functionName="classification" classificationMethod="OneAgainstAll" '
             f'maxWins="{str(max_wins).lower()}"')
    kernel = '<RadialBasisKernelType gamma="0.7"/>'
    out = score(model(body, attrs=attrs, kernel=kernel), {"x1": X1, "x2": X2})
    assert not [k for k in out if k.startswith("probability")]
    for i, x in enumerate(zip(X1, X2, strict=True)):
        d = [decision(s, b, x, "rbf", gamma=0.7) for s, b, _ in ms]
        pick = max if max_wins else min
        assert out["y"][i] == ms[d.index(pick(d))][2]


def test_one_against_all_has_no_probabilities():
    body = machine({"s1": 1.0}, 0.0, 'targetCategory="p"') + machine(
        {"s2": 1.0}, 0.0, 'targetCategory="q"')
    out = ('<Output><OutputField name="pp" feature="probability" value="p" '
           'dataType="double" optype="continuous"/></Output>')
    doc = model(out + body, attrs='functionName="classification" '
                                   'classificationMethod="OneAgainstAll"')
    with pytest.raises(PMMLError, match="no class probabilities"):
        read_pmml_bytes(doc)


@pytest.mark.parametrize("kind,kernel,kp", [
    ("poly", '<PolynomialKernelType gamma="0.5" coef0="2" degree="3"/>',
     {"gamma": 0.5, "coef0": 2.0, "degree": 3.0}),
    ("poly", "<PolynomialKernelType/>", {}),  # defaults: gamma 1, coef0 1, degree 1
    ("sigmoid", '<SigmoidKernelType gamma="0.3" coef0="-0.2"/>', {"gamma": 0.3, "coef0": -0.2}),
    ("rbf", "<RadialBasisKernelType/>", {}),
])
def test_regression_kernels_sparse_vectors_and_categorical_predictor(kind, kernel, kp):
    # vector fields: x1, [c == "b"], x2; vectors as REAL-SparseArray (1-based indices)
    vf = ('<FieldRef field="x1"/><CategoricalPredictor name="c" value="b" coefficient="1"/>'
          '<FieldRef field="x2"/>')
    sparse = {"u": ({1: 0.5, 3: -1.0}, (0.5, 0.0, -1.0)), "w": ({2: 1.0}, (0.0, 1.0, 0.0))}
    vis = "".join(
        f'<VectorInstance id="{k}"><REAL-SparseArray n="3"><Indices>'
        f'{" ".join(map(str, e))}</Indices><REAL-Entries>{" ".join(map(repr, e.values()))}'
        "</REAL-Entries></REAL-SparseArray></VectorInstance>" for k, (e, _) in sparse.items())
    body = machine({"u": 1.5, "w": -0.75}, 0.2)
    doc = model(body, target="v", fields=("x1", "x2", "c"), attrs='functionName="regression"',
                kernel=kernel, vector_fields=vf, vectors={})
    doc = doc.replace(b"</VectorFields>", b"</VectorFields>" + vis.encode())
    cs = np.array(["a", "b"] * (len(X1) // 2), dtype=object)
    out = score(doc, {"x1": X1, "x2": X2, "c": cs})
    for i in range(len(X1)):
        x = (X1[i], 1.0 if cs[i] == "b" else 0.0, X2[i])
        want = 0.0
        for k, c in (("u", 1.5), ("w", -0.75)):
            want += c * kernel_value(kind, x, sparse[k][1], **kp)
        want += 0.2
        assert out["v"][i] == pytest.approx(want, rel=1e-14, abs=1e-14)


def test_coefficients_representation_is_a_linear_function():
    body = ('<SupportVectorMachine><Coefficients absoluteValue="0.5">'
            '<Coefficient value="2.0"/><Coefficient value="-3.0"/></Coefficients>'
            "</SupportVectorMachine>")
    doc = model(body, target="v", attrs='functionName="regression" '
                                        'svmRepresentation="Coefficients"', vectors={})
    out = score(doc, {"x1": X1, "x2": X2})
    np.testing.assert_array_equal(out["v"], (X1 * 2.0 + X2 * -3.0) + 0.5)


def test_missing_input_is_refused_like_jpmml():
    body = "".join(machine(s, b, f'targetCategory="{t}" alternateTargetCategory="{a}"')
                   for s, b, t, a in OVO)
    m = Model(read_pmml_bytes(model(body)))
    assert [f.missing for f in m.bundle.inputs] == ["error", "error"]
    with pytest.raises(InputError, match="x1"):
        m.score_arrays({"x1": np.array([np.nan, 1.0]), "x2": np.array([0.0, 1.0])})
    # a missingValueReplacement fills the value first: nothing is refused
    doc = model(body).replace(b'<MiningField name="x1"/>',
                              b'<MiningField name="x1" missingValueReplacement="-1"/>')
    out = score(doc, {"x1": np.array([np.nan]), "x2": np.array([1.0])})
    assert out["y"][0] == _ovo_expected((-1.0, 1.0), False, 0.0)[0]


@pytest.mark.parametrize("doc,match", [
    (lambda: model(machine({"s1": 1.0}, 0.0, 'targetCategory="p"'),
                   attrs='functionName="classification" alternateBinaryTargetCategory="q"'),
     "alternateBinaryTargetCategory"),
    (lambda: model(machine({"s1": 1.0}, 0.0).replace(
        '<Coefficient value="1.0"/>', '<Coefficient value="1.0"/><Coefficient value="2.0"/>'),
        target="v", attrs='functionName="regression"'), "1 support vectors but 2"),
    (lambda: model(machine({"nope": 1.0}, 0.0), target="v", attrs='functionName="regression"'),
     "'nope' is not in the VectorDictionary"),
    (lambda: model(machine({"s1": 1.0}, 0.0), target="v", attrs='functionName="regression"',
                   kernel="<LinearKernelType/><RadialBasisKernelType/>"), "exactly one kernel"),
    (lambda: model(machine({"s1": 1.0}, 0.0) * 2, target="v", attrs='functionName="regression"'),
     "one SupportVectorMachine"),
    (lambda: model(machine({"s1": 1.0}, 0.0, 'targetCategory="zz" alternateTargetCategory="p"')),
     "'zz' is not a category"),
    (lambda: model(machine({"s1": 1.0}, 0.0), target="v", fields=("x1", "c"),
                   attrs='functionName="regression"'), "categorical"),
    (lambda: model("<SupportVectorMachine><Coefficients/></SupportVectorMachine>", target="v",
                   attrs='functionName="regression" svmRepresentation="Coefficients"',
                   kernel="<RadialBasisKernelType/>"), "needs the linear kernel"),
])
def test_refusals_name_the_element(doc, match):
    with pytest.raises(PMMLError, match=match) as e:
        read_pmml_bytes(doc())
    assert "line" in str(e.value)


def test_one_against_all_segment_votes_in_a_majority_vote():
    ova = [({"s1": 1.0}, 0.0, "p"), ({"s2": 1.0}, 0.0, "q"), ({"s3": 1.0}, 0.1, "r")]
    vd = "".join(f'<VectorInstance id="{k}"><Array type="real">{v[0]!r} {v[1]!r}</Array>'
                 "</VectorInstance>" for k, v in VECS.items())

    def seg(i: int, body: str, method: str) -> str:
        return (f'<Segment id="{i}"><True/><SupportVectorMachineModel functionName='
                f'"classification" classificationMethod="{method}"><MiningSchema>'
                '<MiningField name="y" usageType="target"/><MiningField name="x1"/>'
                '<MiningField name="x2"/></MiningSchema><LinearKernelType/><VectorDictionary>'
                '<VectorFields><FieldRef field="x1"/><FieldRef field="x2"/></VectorFields>'
                f"{vd}</VectorDictionary>{body}</SupportVectorMachineModel></Segment>")

    segs = [seg(1, "".join(machine(s, b, f'targetCategory="{t}"') for s, b, t in ova),
                "OneAgainstAll")] + [seg(i, "".join(
                    machine(s, b, f'targetCategory="{t}" alternateTargetCategory="{a}"')
                    for s, b, t, a in OVO), "OneAgainstOne") for i in (2, 3)]
    doc = (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}'
           '<MiningModel functionName="classification"><MiningSchema>'
           '<MiningField name="y" usageType="target"/><MiningField name="x1"/>'
           '<MiningField name="x2"/></MiningSchema><Segmentation multipleModelMethod='
           f'"majorityVote">{"".join(segs)}</Segmentation></MiningModel></PMML>').encode()
    out = score(doc, {"x1": X1, "x2": X2})
    for i, x in enumerate(zip(X1, X2, strict=True)):
        d = [decision(s, b, x) for s, b, _ in ova]
        labels = [ova[d.index(min(d))][2]] + [_ovo_expected(x, False, 0.0)[0]] * 2
        votes = {c: labels.count(c) for c in "pqr"}
        assert out["y"][i] == max("pqr", key=lambda c: votes[c])  # two OvO segments agree
