"""NaiveBayesModel -> one ``naive_bayes`` step (PMML 4.4 semantics, as JPMML evaluates them).

Per class ``c`` the model multiplies the prior count of ``c`` (BayesOutput) by one factor per
BayesInput whose value is not missing, then normalises the products to probabilities; the step
does that in log space (``ln count + sum ln factor``, then a softmax).

- Discrete inputs (``PairCounts``): the factor is ``count(value, c) / sum over the input's
  PairCounts of count(., c)``, or ``threshold`` where the count is 0; a value without
  PairCounts contributes no factor; a class absent from the value's TargetValueCounts gets no
  factor from it (log factor 0). Logs are taken here, into the ``categories`` table.
- Continuous inputs (``TargetValueStats``): Gaussian density or Poisson probability, floored at
  ``threshold`` (``density="probability"``), computed by the op per row.
- A ``DerivedField`` inside a BayesInput (a ``Discretize`` of the input) maps the value to the
  category the PairCounts name.
- BayesInput elements wrapped in an ``Extension`` of BayesInputs (older R ``pmml`` documents)
  are read like the others.

Refused, naming the element and line: other distributions (Uniform, Any), inputs whose
classes mix distributions or lack a class, a DerivedField other than Discretize, counts for
classes the target does not have, a missing ``threshold``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..build.naive_bayes import add_naive_bayes
from .expressions import resolve
from .fields import (
    NUMERIC_TYPES,
    Col,
    Pending,
    Scope,
    attr_number,
    children,
    constant_for,
    fail,
    same_class,
)
from .reader import register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

_DISTRIBUTIONS = {"GaussianDistribution": "gaussian", "PoissonDistribution": "poisson"}
#: counts this close to 0 are zero counts (JPMML's test, 2**-53)
_ZERO = 2.0 ** -53


def _number(el: Element, attr: str) -> float:
    return attr_number(el, attr, required=True)


def _class_index(classes: list[str], value: str | None, el: Element) -> int:
    if value is None:
        raise fail(el, "has no 'value' attribute")
    hit = [j for j, c in enumerate(classes) if same_class(c, value)]
    if not hit:
        raise fail(el, f"'{value}' is not a class of the target")
    return hit[0]


def _counts(el: Element, classes: list[str]) -> dict[int, float]:
    """TargetValueCounts -> class index -> count."""
    tvc = el.find("TargetValueCounts")
    if tvc is None:
        raise fail(el, "has no TargetValueCounts")
    out: dict[int, float] = {}
    for c in children(tvc, "TargetValueCount", where="TargetValueCounts"):
        j = _class_index(classes, c.get("value"), c)
        if j in out:
            raise fail(c, f"class '{c.get('value')}' is counted twice")
        out[j] = _number(c, "count")
        if not out[j] >= 0.0:
            raise fail(c, f"count={c.get('count')} must be >= 0")
    return out


def _bayes_inputs(el: Element) -> list[Element]:
    bis = el.find("BayesInputs")
    if bis is None:
        raise fail(el, "has no BayesInputs")
    out = []
    for c in bis.children:
        if c.tag == "BayesInput":
            out.append(c)
        elif c.tag == "Extension":  # R's pmml put continuous inputs here before PMML 4.2
            out += [b for b in c.children if b.tag == "BayesInput"]
        else:
            raise fail(c, "not supported in BayesInputs")
    if not out:
        raise fail(bis, "has no BayesInput")
    return out


def naive_bayes(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    """Compile a NaiveBayesModel (classification) into ``res.probs`` / ``res.label``."""
    classes = res.classes
    k = len(classes)
    if el.get("threshold") is None:
        raise fail(el, "has no 'threshold' attribute (required by PMML)")
    threshold = _number(el, "threshold")
    if not threshold >= 0.0:
        raise fail(el, f"threshold={el.get('threshold')} must be >= 0")
    out = el.find("BayesOutput")
    if out is None:
        raise fail(el, "has no BayesOutput")
    if res.target is not None and out.get("fieldName") not in (None, res.target):
        raise fail(out, f"fieldName '{out.get('fieldName')}' is not the target '{res.target}'")
    for c in out.children:
        if c.tag not in ("TargetValueCounts", "Extension"):
            raise fail(c, "not supported in BayesOutput")
    prior = _counts(out, classes)
    if len(prior) != k:
        absent = [classes[j] for j in range(k) if j not in prior]
        raise fail(out, f"has no count for class(es) {', '.join(absent)}")
    with np.errstate(divide="ignore"):
        log_prior = np.log(np.array([prior[j] for j in range(k)], dtype=np.float64))

    cols: list[str] = []
    kinds: list[str] = []
    mean = np.zeros((0, k))
    variance = np.zeros((0, k))
    categories: list[tuple[int, float, np.ndarray]] = []
    for bi in _bayes_inputs(el):
        name = bi.get("fieldName")
        if name is None:
            raise fail(bi, "has no 'fieldName' attribute")
        col = resolve(rd, name, scope, bi)
        parts = [c for c in bi.children if c.tag != "Extension"]
        stats = [c for c in parts if c.tag == "TargetValueStats"]
        pairs = [c for c in parts if c.tag == "PairCounts"]
        derived = [c for c in parts if c.tag == "DerivedField"]
        for c in parts:
            if c.tag not in ("TargetValueStats", "PairCounts", "DerivedField"):
                raise fail(c, "not supported in BayesInput")
        f = len(cols)
        if stats:
            if pairs or derived or len(stats) > 1:
                raise fail(bi, "holds TargetValueStats and PairCounts / DerivedField")
            if col.vocab is not None or col.dtype not in (*NUMERIC_TYPES, "boolean"):
                raise fail(bi, f"continuous input '{name}' is not numeric")
            kind, m, v = _stats(stats[0], classes)
            kinds.append(kind)
            mean = np.vstack([mean, m])
            variance = np.vstack([variance, v])
        elif pairs:
            if len(derived) > 1:
                raise fail(derived[1], "a BayesInput holds at most one DerivedField")
            if derived:
                col = _discretized(rd, derived[0], name, scope)
            categories += _pair_counts(bi, pairs, f, col, classes, threshold)
            kinds.append("categorical")
            mean = np.vstack([mean, np.zeros(k)])
            variance = np.vstack([variance, np.zeros(k)])
        else:
            raise fail(bi, "has neither TargetValueStats nor PairCounts")
        cols.append(col.column)
    probs, _ = add_naive_bayes(
        rd.g, cols, name="naive_bayes", log_prior=log_prior, kinds=kinds, mean=mean,
        variance=variance, categories=categories, density="probability",
        threshold=threshold, missing="skip", normalize="softmax", emit_jll=False)
    res.probs = probs
    rd._label_of(res)


def _stats(tvs: Element, classes: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
    """TargetValueStats -> (kind, mean per class, variance per class)."""
    k = len(classes)
    mean, variance = np.full(k, np.nan), np.zeros(k)
    kinds: set[str] = set()
    for s in children(tvs, "TargetValueStat", where="TargetValueStats"):
        j = _class_index(classes, s.get("value"), s)
        dists = [d for d in s.children if d.tag != "Extension"]
        if len(dists) != 1:
            raise fail(s, "needs exactly one distribution")
        d = dists[0]
        kind = _DISTRIBUTIONS.get(d.tag)
        if kind is None:
            raise fail(d, "not supported in a naive Bayes model (Gaussian and Poisson only)")
        kinds.add(kind)
        if not math.isnan(mean[j]):
            raise fail(s, f"class '{s.get('value')}' has two TargetValueStat elements")
        mean[j] = _number(d, "mean")
        if kind == "gaussian":
            variance[j] = _number(d, "variance")
            if not variance[j] > 0.0 or not math.isfinite(mean[j]):
                raise fail(d, "needs a finite mean and a variance > 0")
        elif not mean[j] >= 0.0:
            raise fail(d, "needs a mean (lambda) >= 0")
    if len(kinds) > 1:
        raise fail(tvs, "mixes Gaussian and Poisson distributions in one input")
    if np.isnan(mean).any():
        absent = [classes[j] for j in range(k) if np.isnan(mean[j])]
        raise fail(tvs, f"has no TargetValueStat for class(es) {', '.join(absent)}")
    return kinds.pop(), mean, variance


def _discretized(rd: Reader, df: Element, name: str, scope: Scope) -> Col:
    exprs = [c for c in df.children if c.tag not in ("Extension", "Value")]
    if len(exprs) != 1 or exprs[0].tag != "Discretize":
        raise fail(df, "a DerivedField in a BayesInput must hold a Discretize")
    if exprs[0].get("field") != name:
        raise fail(exprs[0], f"must discretize the BayesInput's field '{name}'")
    return rd.materialize(df.get("name") or f"discretized({name})", Pending(df, scope))


def _pair_counts(bi: Element, pairs: list[Element], f: int, col: Col, classes: list[str],
                 threshold: float) -> list[tuple[int, float, np.ndarray]]:
    """PairCounts -> category rows ``(input, value, log factor per class)``."""
    k = len(classes)
    counts = [_counts(p, classes) for p in pairs]
    total = np.zeros(k)
    for cnt in counts:  # document order, as the evaluator sums them
        for j, v in cnt.items():
            total[j] += v
    rows: list[tuple[int, float, np.ndarray]] = []
    seen: set[float] = set()
    for p, cnt in zip(pairs, counts, strict=True):
        text = p.get("value")
        if text is None:
            raise fail(p, "has no 'value' attribute")
        value = constant_for(col.dtype, col, text, p)
        if math.isnan(value):
            raise fail(p, f"value '{text}' is a missing value")
        if value in seen:  # the first PairCounts of a value is the one that matches
            continue
        seen.add(value)
        lp = np.zeros(k)  # a class the TargetValueCounts omit gets no factor
        for j, v in cnt.items():
            if abs(v) <= _ZERO:  # a zero count: the threshold probability (ln 0 = -inf)
                lp[j] = math.log(threshold) if threshold > 0.0 else -math.inf
            else:
                lp[j] = math.log(v / total[j])
        rows.append((f, value, lp))
    if not rows:
        raise fail(bi, "has no PairCounts")
    return rows


register_model("NaiveBayesModel", parts=("BayesInputs", "BayesOutput"),
               functions=("classification",))(naive_bayes)
