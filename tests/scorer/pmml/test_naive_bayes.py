"""PMML NaiveBayesModel: hand-written documents scored end to end against the PMML 4.4
semantics written out independently here (probability products, threshold, skipped missing
values), plus the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer.model import Model
from scorer.pmml import PMMLError, read_pmml_bytes

DD = """<DataDictionary>
  <DataField name="t" optype="categorical" dataType="string">
    <Value value="lo"/><Value value="hi"/></DataField>
  <DataField name="x" optype="continuous" dataType="double"/>
  <DataField name="n" optype="continuous" dataType="integer"/>
  <DataField name="c" optype="categorical" dataType="string">
    <Value value="a"/><Value value="b"/><Value value="c"/></DataField>
  <DataField name="w" optype="continuous" dataType="double"/>
</DataDictionary>"""

PRIOR = {"lo": 30.0, "hi": 10.0}
GAUSS = {"lo": (1.0, 0.5), "hi": (3.0, 2.0)}  # mean, variance
POISSON = {"lo": 1.5, "hi": 4.0}
PAIRS = {"a": {"lo": 12.0, "hi": 0.0}, "b": {"lo": 18.0, "hi": 7.0}}  # no PairCounts for "c"
BINS = [("low", None, 0.0), ("mid", 0.0, 5.0), ("high", 5.0, None)]  # leftOpen/rightClosed
WPAIRS = {"low": {"lo": 5.0, "hi": 1.0}, "mid": {"lo": 20.0, "hi": 4.0},
          "high": {"lo": 5.0, "hi": 5.0}}


def counts(d: dict[str, float]) -> str:
    return "<TargetValueCounts>" + "".join(
        f'<TargetValueCount value="{c}" count="{v}"/>' for c, v in d.items()) + \
        "</TargetValueCounts>"


def model(threshold: str = "0.001", *, extra_input: str = "", wrap: bool = False) -> bytes:
    gauss = "".join(f'<TargetValueStat value="{c}"><GaussianDistribution mean="{m}" '
                    f'variance="{v}"/></TargetValueStat>' for c, (m, v) in GAUSS.items())
    pois = "".join(f'<TargetValueStat value="{c}"><PoissonDistribution mean="{m}"/>'
                   "</TargetValueStat>" for c, m in POISSON.items())
    bins = "".join(
        f'<DiscretizeBin binValue="{b}"><Interval closure="openClosed"'
        + (f' leftMargin="{lo}"' if lo is not None else "")
        + (f' rightMargin="{hi}"' if hi is not None else "") + "/></DiscretizeBin>"
        for b, lo, hi in BINS)
    gauss_input = f'<BayesInput fieldName="x"><TargetValueStats>{gauss}</TargetValueStats>' \
                  "</BayesInput>"
    inputs = (
        (f"<Extension>{gauss_input}</Extension>" if wrap else gauss_input)
        + f'<BayesInput fieldName="n"><TargetValueStats>{pois}</TargetValueStats></BayesInput>'
        + '<BayesInput fieldName="c">' + "".join(
            f'<PairCounts value="{v}">{counts(d)}</PairCounts>' for v, d in PAIRS.items())
        + "</BayesInput>"
        + '<BayesInput fieldName="w"><DerivedField name="wb" optype="categorical" '
          f'dataType="string"><Discretize field="w">{bins}</Discretize></DerivedField>'
        + "".join(f'<PairCounts value="{v}">{counts(d)}</PairCounts>'
                  for v, d in WPAIRS.items()) + "</BayesInput>" + extra_input)
    thr = f' threshold="{threshold}"' if threshold is not None else ""
    doc = (f'<NaiveBayesModel functionName="classification"{thr}><MiningSchema>'
           '<MiningField name="t" usageType="target"/><MiningField name="x"/>'
           '<MiningField name="n"/><MiningField name="c"/><MiningField name="w"/>'
           f"</MiningSchema><BayesInputs>{inputs}</BayesInputs>"
           f'<BayesOutput fieldName="t">{counts(PRIOR)}</BayesOutput></NaiveBayesModel>')
    return (f'<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>{DD}{doc}'
            "</PMML>").encode()


def expected(row: dict, threshold: float) -> dict[str, float]:
    """PMML 4.4: P(c) proportional to count(c) * product of the present inputs' factors."""
    prod = dict(PRIOR)
    for cls in prod:
        x = row["x"]
        if not math.isnan(x):
            m, v = GAUSS[cls]
            p = math.exp(-((x - m) ** 2) / (2 * v)) / math.sqrt(2 * math.pi * v)
            prod[cls] *= max(p, threshold)
        n = row["n"]
        if not math.isnan(n):
            lam = POISSON[cls]
            k = int(n)
            p = math.exp(-lam) * lam ** k / math.factorial(k) if k >= 0 else 0.0
            prod[cls] *= max(p, threshold)
        for value, table in ((row["c"], PAIRS), (_bin(row["w"]), WPAIRS)):
            if value is None or value not in table:
                continue  # missing, or a value without PairCounts: no factor
            cnt = table[value][cls]
            total = sum(d[cls] for d in table.values())
            prod[cls] *= threshold if cnt == 0 else cnt / total
    s = sum(prod.values())
    return {cls: v / s for cls, v in prod.items()}


def _bin(w: float) -> str | None:
    if math.isnan(w):
        return None
    return "low" if w <= 0 else "mid" if w <= 5 else "high"


ROWS = {
    "x": [0.3, 2.5, np.nan, 1.0, -4.0, 6.0, np.nan, 2.0, 4.0, 3.0],
    "n": [0, 3, 2, np.nan, 7, 1, np.nan, 2.9, 6, 5],
    "c": ["a", "b", "c", "a", None, "b", None, "a", "b", "c"],
    "w": [-1.0, 5.0, 7.5, np.nan, 0.0, 3.0, np.nan, 5.0000001, 9.0, 8.0],
}


def score(doc: bytes, rows: dict) -> dict:
    m = Model(read_pmml_bytes(doc))
    X = {k: np.asarray(v, dtype=object if k == "c" else float) for k, v in rows.items()}
    fast, ref = m.score_arrays(X), m.score_arrays(X, reference=True)
    for k in fast:
        a, b = np.asarray(fast[k]), np.asarray(ref[k])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-14, equal_nan=True)
        else:
            assert list(a) == list(b)
    return fast


@pytest.mark.parametrize("threshold", ["0.001", "0", "0.2"])
@pytest.mark.parametrize("wrap", [False, True])
def test_mixed_inputs_match_the_pmml_semantics(threshold, wrap):
    got = score(model(threshold, wrap=wrap), ROWS)
    thr = float(threshold)
    for i in range(len(ROWS["x"])):
        row = {k: v[i] for k, v in ROWS.items()}
        want = expected(row, thr)
        for cls, p in want.items():
            assert got[f"probability({cls})"][i] == pytest.approx(p, rel=1e-12, abs=1e-300)
        assert got["t"][i] == max(want, key=want.get)  # first class on ties
    assert set(got["t"]) == {"lo", "hi"}


def test_all_inputs_missing_gives_the_prior():
    rows = {"x": [np.nan], "n": [np.nan], "c": [None], "w": [np.nan]}
    got = score(model(), rows)
    assert got["probability(lo)"][0] == pytest.approx(0.75, rel=1e-15)
    assert got["probability(hi)"][0] == pytest.approx(0.25, rel=1e-15)


def test_zero_count_with_zero_threshold_rules_the_class_out():
    rows = {"x": [3.0], "n": [4], "c": ["a"], "w": [2.0]}  # "a" was never seen with "hi"
    got = score(model("0"), rows)
    assert got["probability(hi)"][0] == 0.0 and got["probability(lo)"][0] == 1.0


def test_one_step_of_op_naive_bayes():
    b = read_pmml_bytes(model())
    nb = [s for s in b.steps if s.op == "naive_bayes"]
    assert len(nb) == 1
    assert nb[0].params["density"] == "probability"
    assert nb[0].params["missing"] == "skip" and nb[0].params["normalize"] == "softmax"


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.replace(b'<PoissonDistribution mean="1.5"/>',
                         b'<UniformDistribution lower="0" upper="1"/>'),
     "UniformDistribution.*Gaussian and Poisson only"),
    (lambda d: d.replace(b' threshold="0.001"', b""), "threshold"),
    (lambda d: d.replace(b'<TargetValueStat value="hi"><PoissonDistribution mean="4.0"/>'
                         b"</TargetValueStat>", b""), "no TargetValueStat for class.*hi"),
    (lambda d: d.replace(b'<Discretize field="w">', b'<Discretize field="x">'),
     "must discretize"),
    (lambda d: d.replace(b'<TargetValueCount value="lo" count="30.0"/>',
                         b'<TargetValueCount value="mid" count="30.0"/>'),
     "'mid' is not a class"),
    (lambda d: d.replace(b'<PairCounts value="a">', b'<Foo/><PairCounts value="a">'),
     "Foo.*not supported in BayesInput"),
    (lambda d: d.replace(b'variance="0.5"', b'variance="0"'), "variance > 0"),
])
def test_refusals_name_the_element_and_line(edit, match):
    doc = edit(model())
    assert doc != model()
    with pytest.raises(PMMLError, match=match) as exc:
        read_pmml_bytes(doc)
    assert "line" in str(exc.value)


def test_regression_function_is_refused():
    doc = model().replace(b'functionName="classification"', b'functionName="regression"')
    with pytest.raises(PMMLError, match="functionName='regression'"):
        read_pmml_bytes(doc)


# --- the corpus' Sentiment documents, with TextIndex computed here --------------------------
def _sentiment_without_text(case: str) -> tuple[bytes, list[str], bool]:
    """The case's PMML with its term-frequency DerivedFields turned into input fields (the
    workspace cannot hold free text), the terms, and whether they are binary."""
    import re

    from conformance.pmml_corpus import CORPUS

    s = (CORPUS / "cases" / "jpmml-sklearn" / "sklearn" / case / "model.pmml").read_text()
    binary = 'localTermWeights="binary"' in re.search(r"<TextIndex[^>]*>", s).group(0)
    tf = r'<DerivedField name="tf\(lowercase\(Sentence\), ([^)]*)\)"[^>]*>.*?</DerivedField>'
    terms = re.findall(tf, s)
    s = re.sub(tf, "", s)
    s = re.sub(r'<DerivedField name="lowercase\(Sentence\)"[^>]*>.*?</DerivedField>', "", s)
    s = re.sub(r'<DefineFunction name="tf\(lowercase\(Sentence\)\)".*?</DefineFunction>', "", s)
    s = s.replace("</DataDictionary>", "".join(
        f'<DataField name="tf(lowercase(Sentence), {t})" optype="continuous" '
        'dataType="integer"/>' for t in terms) + "</DataDictionary>")
    s = s.replace('<MiningField name="Sentence"/>', "".join(
        f'<MiningField name="tf(lowercase(Sentence), {t})"/>' for t in terms))
    return s.encode(), terms, binary


@pytest.mark.parametrize("case", ["BernoulliNBSentiment", "BernoulliNBSmoothSentiment",
                                  "CategoricalNBSentiment"])
def test_corpus_sentiment_models_past_their_text_index(case):
    """Everything after TextIndex (PairCounts, Discretize, zero counts) against the producer's
    expected probabilities; terms are scikit-learn's CountVectorizer tokens (the document's
    x-wordRE on lower-cased text)."""
    import json
    import re

    from conformance.pmml_corpus import CORPUS, close, read_csv

    d = CORPUS / "cases" / "jpmml-sklearn" / "sklearn" / case
    if not d.is_dir():
        pytest.skip(f"PMML corpus not found at {CORPUS}")
    doc, terms, binary = _sentiment_without_text(case)
    header, rows = read_csv(CORPUS / json.loads((d / "case.json").read_text())["input"])
    text = [re.findall(r"(?u)\b\w\w+\b", r[header.index("Sentence")].lower()) for r in rows]
    X = {f"tf(lowercase(Sentence), {t})": np.array(
        [float(min(toks.count(t), 1) if binary else toks.count(t)) for toks in text])
        for t in terms}
    m = Model(read_pmml_bytes(doc))
    got = m.score_arrays(X)
    eh, erows = read_csv(d / "expected.csv")
    assert len(erows) == len(rows) > 0
    for j, h in enumerate(eh):
        for i, r in enumerate(erows):
            if h.startswith("probability"):
                assert close(float(got[h][i]), float(r[j]), "PMMLEquivalence", [1e-13, 1e-13]), \
                    (i, h, got[h][i], r[j])
            else:
                assert str(got[h][i]) == r[j], (i, h)
