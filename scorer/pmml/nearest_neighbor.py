"""PMML ``NearestNeighborModel`` -> one ``nearest_neighbor`` step.

Supported: ``functionName`` regression (``continuousScoringMethod`` average, median,
weightedAverage), classification (``categoricalScoringMethod`` majorityVote,
weightedMajorityVote) and clustering (neighbours only); one target field; the distance
measures of :mod:`scorer.pmml.clustering`; TrainingInstances as an InlineTable.
``entityId`` OutputFields (``rank`` = 1 .. numberOfNeighbors) give the neighbours' ids: the
``instanceIdVariable`` column's values, else the instance's 1-based row number (as JPMML).

Vote ties: PMML gives the category with the most training instances, then the smallest
value; the step breaks ties by the smallest class index, so classes are handed to it in that
priority order and mapped back to the target's class order afterwards.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .clustering import comparison, field_table, point_value
from .fields import (
    NUMERIC_TYPES,
    Col,
    Scope,
    attr_number,
    fail,
    integer,
    same_class,
    typed_class,
    xs_double,
)
from .program import Program
from .reader import Result, register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader

FAMILY = "nearest_neighbor"


def _instances(el: Element) -> tuple[dict[str, str], list[dict[str, str]]]:
    """InstanceFields (field -> column tag) and the InlineTable rows (tag -> text)."""
    ti = el.find("TrainingInstances")
    if ti is None:
        raise fail(el, "has no TrainingInstances")
    for c in ti.children:
        if c.tag not in ("Extension", "InstanceFields", "InlineTable"):
            raise fail(c, "not supported in TrainingInstances (InlineTable only)")
    inf = ti.find("InstanceFields")
    table = ti.find("InlineTable")
    if inf is None or table is None:
        raise fail(ti, "needs InstanceFields and an InlineTable")
    cols = {f.get("field"): (f.get("column") or f.get("field")).rsplit(":", 1)[-1]
            for f in inf.findall("InstanceField")}
    rows = [{c.tag: (c.text or "") for c in r.children} for r in table.findall("row")]
    if not rows:
        raise fail(table, "has no rows")
    return cols, rows


def _targets(el: Element) -> list[str]:
    ms = el.find("MiningSchema")
    return [mf.get("name") for mf in ms.findall("MiningField")
            if mf.get("usageType", "active") in ("target", "predicted")]


@register_model("NearestNeighborModel", parts=("TrainingInstances", "ComparisonMeasure",
                                               "KNNInputs"),
                functions=("regression", "classification", "clustering"))
def nearest_neighbor_model(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    k_text = el.get("numberOfNeighbors")
    k = integer(k_text, el, "numberOfNeighbors") if k_text is not None else 0
    if k < 1:
        raise fail(el, "needs numberOfNeighbors >= 1")
    params, default = comparison(el.find("ComparisonMeasure"), el)
    knn = el.find("KNNInputs")
    specs = knn.findall("KNNInput") if knn is not None else []
    if not specs:
        raise fail(el, "has no KNNInputs")
    cols, fields = field_table(rd, scope, specs, default, None)
    tcols, rows = _instances(el)
    ti = el.find("TrainingInstances")
    if ti.get("isTransformed", "false") == "false":
        derived = [s.get("field") for s in specs if s.get("field") not in rd.data_fields]
        if derived:
            raise fail(ti, f"isTransformed='false' with derived KNN inputs ({derived[0]}) "
                           "not supported")
    n = len(rows)

    def column(field: str, where: Element) -> list[str]:
        tag = tcols.get(field)
        if tag is None:
            raise fail(where, f"TrainingInstances have no column for field '{field}'")
        return [r.get(tag, "") for r in rows]

    inst: dict[str, np.ndarray] = {}
    for j, (col, spec) in enumerate(zip(cols, specs, strict=True)):
        inst[f"x_{j}"] = np.array([math.nan if v.strip() == "" else point_value(col, v, spec)
                                   for v in column(spec.get("field"), spec)])
    id_var = el.get("instanceIdVariable")
    id_vocab: list[str] | None = None
    if id_var is None:
        if res.function == "clustering":
            raise fail(el, "a clustering NearestNeighborModel needs an instanceIdVariable")
        inst["id"] = np.arange(1, n + 1, dtype=np.float64)
    else:
        raw = column(id_var, el)
        try:
            inst["id"] = np.array([xs_double(v) for v in raw])
            if not all(v.is_integer() for v in inst["id"]):
                raise ValueError
        except ValueError:  # text ids: codes into their vocabulary
            id_vocab = list(dict.fromkeys(raw))
            id_code = {v: i for i, v in enumerate(id_vocab)}  # (list.index: O(n^2))
            inst["id"] = np.array([float(id_code[v]) for v in raw])
    targets = _targets(el)
    if res.function == "classification" and len(targets) != 1:
        raise fail(el, f"{len(targets)} target fields: a classification needs exactly one")
    if res.function == "regression" and not targets:
        raise fail(el, "a regression needs a target field")
    method, n_classes, priority = "", 0, []
    if res.function == "regression":
        method = el.get("continuousScoringMethod", "average")
        if method not in ("average", "median", "weightedAverage"):
            raise fail(el, f"continuousScoringMethod='{method}' not supported")
        for t, name in enumerate(targets):  # several continuous targets, one output each
            inst[f"y_{t}"] = np.array([_number(v, el) for v in column(name, el)])
    elif res.function == "classification":
        method = el.get("categoricalScoringMethod", "majorityVote")
        if method not in ("majorityVote", "weightedMajorityVote"):
            raise fail(el, f"categoricalScoringMethod='{method}' not supported")
        raw = column(targets[0], el)
        idx = []
        for v in raw:
            hit = [i for i, c in enumerate(res.classes) if same_class(v, c)]
            if not hit:
                raise fail(el, f"training instance target '{v}' is not a class of the target")
            idx.append(hit[0])
        counts = np.bincount(idx, minlength=len(res.classes))
        dtype = res.target_dtype if res.target_dtype in NUMERIC_TYPES else "string"
        # PMML's tie rule: most training instances first, then the smallest value
        priority = sorted(range(len(res.classes)), key=lambda c: (
            -counts[c], _sort_key(typed_class(res.classes[c], dtype))))
        rank = {c: r for r, c in enumerate(priority)}
        inst["y_0"] = np.array([float(rank[i]) for i in idx])
        n_classes = len(res.classes)
    threshold = attr_number(el, "threshold", "0.001")
    n_targets = len(targets) if res.function == "regression" else 1 if method else 0
    n_out = k + (0 if res.function == "clustering" else
                 n_targets if res.function == "regression" else n_classes + 1)
    outs = rd.g.new_columns("knn", names=[f"neighbor({r + 1})" for r in range(k)] + [
        f"out{j}" for j in range(n_out - k)])
    targets_table = {"n_classes": np.full(n_targets, n_classes, dtype=np.int32),
                     "method": np.array([method] * n_targets, dtype=object)}
    rd.g.add_step("nearest_neighbor", name="nearest_neighbor",
                  inputs=[c.column for c in cols], outputs=outs, family=FAMILY,
                  params={**params, "k": k, "threshold": threshold, "zero_rule": False},
                  tables={"fields": fields, "instances": inst, "targets": targets_table})
    neighbors = outs[:k]
    if res.function == "regression":
        res.value = outs[k]
        if n_targets > 1:  # one result per target (OutputFields pick one by targetField)
            res.multi = [Result(function="regression", target=t, value=outs[k + j])
                         for j, t in enumerate(targets)]
    elif res.function == "classification":
        by_rank = outs[k:k + n_classes]
        res.probs = [by_rank[priority.index(c)] for c in range(n_classes)]
        # the step's winner is a priority rank: back to the class index
        prog = Program(rd.budget)
        prog.select(outs[k + n_classes], [float(c) for c in priority])
        prog.emit("STORE", 0)
        res.label = rd.expr_column("knn_label", prog).column
    _features(rd, el, res, neighbors, id_vocab)


def _features(rd: Reader, el: Element, res: Result, neighbors: list[str],
              id_vocab: list[str] | None) -> None:
    def entity(of: Element) -> Col:
        r = integer(of.get("rank", "1"), of, "rank")
        if not 1 <= r <= len(neighbors):
            raise fail(of, f"rank={r} outside 1..numberOfNeighbors ({len(neighbors)})")
        col = neighbors[r - 1]
        return Col(col, "string", list(id_vocab)) if id_vocab is not None else Col(
            col, "double")

    res.features["entityId"] = entity
    for sub in res.multi:
        sub.features["entityId"] = entity


def _number(v: str, el: Element) -> float:
    if v.strip() == "":
        return math.nan
    try:
        t = xs_double(v)
    except ValueError:
        t = math.nan  # flagged below
    if not math.isfinite(t):
        raise fail(el, f"training instance target '{v}' is not a finite number")
    return t


def _sort_key(v: object) -> tuple:
    return (0, v, "") if isinstance(v, int | float) else (1, 0, str(v))
