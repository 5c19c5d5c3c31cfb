"""PMML ``ClusteringModel`` (center-based) -> one ``clustering`` step.

The step outputs the distance to every cluster and the 0-based index of the winning cluster
(the nearest, first in document order on ties). The model's result is that index, with the
cluster ids as its vocabulary: ``predictedValue`` / ``entityId`` is the cluster's ``id``
(or, without one, its 1-based position, as JPMML numbers clusters), ``predictedDisplayValue``
its ``name`` (else its id), ``clusterId`` its 1-based position, ``affinity`` /
``clusterAffinity`` the distance to the cluster named by ``value`` (the winner's without
one).

Also :func:`comparison` and :func:`field_table`, the ComparisonMeasure parsing the
NearestNeighborModel reader shares.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .expressions import resolve
from .fields import Col, Scope, array_values, attr_number, children, fail, number, numbers
from .program import Program
from .reader import emit_argmax, register_model
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

FAMILY = "clustering"
#: ComparisonMeasure children this reader computes
MEASURES = ("euclidean", "squaredEuclidean", "cityBlock", "chebychev", "minkowski")
#: binary similarity measures: refused, with a clear message
SIMILARITIES = ("simpleMatching", "jaccard", "tanimoto", "binarySimilarity")
_COMPARE = {"absDiff": 0, "gaussSim": 1, "delta": 2, "equal": 3}
#: Cluster children with no scoring semantics for a center-based model
_CLUSTER_INFO = ("Extension", "Array", "KohonenMap", "Covariances", "Partition")


def comparison(cm: Element | None, owner: Element) -> tuple[dict, str]:
    """``(params, default compare function)`` of a ComparisonMeasure element."""
    if cm is None:
        raise fail(owner, "has no ComparisonMeasure")
    kind = cm.get("kind")
    kids = [c for c in cm.children if c.tag != "Extension"]
    if len(kids) != 1:
        raise fail(cm, "needs exactly one measure element")
    m = kids[0]
    if m.tag in SIMILARITIES:
        raise fail(m, "similarity measures are not supported (distance measures only)")
    if m.tag not in MEASURES:
        raise fail(m, "measure not supported")
    if kind != "distance":
        raise fail(cm, f"kind='{kind}' not supported with <{m.tag}> (expected 'distance')")
    params: dict = {"measure": m.tag}
    if m.tag == "minkowski":
        p = attr_number(m, "p-parameter")
        if p is None or not p > 0:
            raise fail(m, "needs a p-parameter > 0")
        params["p"] = p
    default = cm.get("compareFunction", "absDiff")
    if default not in ("absDiff", "delta", "equal"):
        raise fail(cm, f"compareFunction='{default}' not supported here")
    return params, default


def field_table(rd: Reader, scope: Scope, specs: list[Element], default: str,
                missing_weights: list[float] | None) -> tuple[list[Col], dict]:
    """Columns and the ``fields`` table of ClusteringField / KNNInput elements."""
    cols: list[Col] = []
    weight, compare, scale = [], [], []
    for el in specs:
        if any(c.tag == "Comparisons" for c in el.children):
            raise fail(el, "Comparisons (compareFunction 'table') not supported")
        name = el.get("field")
        col = resolve(rd, name, scope, el)
        cf = el.get("compareFunction", default)
        if cf not in _COMPARE:
            raise fail(el, f"compareFunction='{cf}' not supported")
        if col.vocab is not None and cf in ("absDiff", "gaussSim"):
            raise fail(el, f"field '{name}' is categorical: compareFunction='{cf}' needs "
                           "numbers")
        s = el.get("similarityScale")
        if cf == "gaussSim" and s is None:
            raise fail(el, "gaussSim needs a similarityScale")
        cols.append(col)
        weight.append(attr_number(el, "fieldWeight", "1"))
        compare.append(_COMPARE[cf])
        scale.append(number(s, el, "similarityScale") if s is not None else math.nan)
    qw = missing_weights if missing_weights is not None else [1.0] * len(cols)
    if len(qw) != len(cols):
        raise fail(specs[0] if specs else None,
                   f"MissingValueWeights has {len(qw)} entries for {len(cols)} fields")
    return cols, {"weight": np.array(weight), "compare": np.array(compare, dtype=np.int8),
                  "scale": np.array(scale), "missing_weight": np.array(qw, dtype=np.float64)}


def point_value(col: Col, text: str, el: Element) -> float:
    """A center / instance coordinate: the category's code for categorical fields."""
    if col.vocab is not None:
        return col.code(text)
    return number(text, el)


def select_by_index(rd: Reader, index_col: str, values: list[str], name: str) -> Col:
    """``values[int(index)]`` (NaN when the index is NaN) as one expression column."""
    prog = Program(rd.budget)
    prog.select(index_col, values)
    prog.emit("STORE", 0)
    return rd.expr_column(name, prog)


@register_model("ClusteringModel", parts=("ComparisonMeasure", "ClusteringField",
                                          "MissingValueWeights", "Cluster", "CenterFields"),
                functions=("clustering",))
def clustering_model(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    if el.get("modelClass", "centerBased") != "centerBased":
        raise fail(el, f"modelClass='{el.get('modelClass')}' not supported (centerBased only)")
    if el.find("CenterFields") is not None:
        raise fail(el.find("CenterFields"), "CenterFields (PMML 3.x) not supported")
    params, default = comparison(el.find("ComparisonMeasure"), el)
    specs = [c for c in el.findall("ClusteringField") if c.get("isCenterField", "true") != "false"]
    if not specs:
        raise fail(el, "has no ClusteringField")
    mvw = el.find("MissingValueWeights")
    qw = None
    if mvw is not None:
        arr = mvw.find("Array")
        if arr is None:
            raise fail(mvw, "needs an Array")
        qw = numbers(array_values(arr), arr)
    cols, fields = field_table(rd, scope, specs, default, qw)
    clusters = el.findall("Cluster")
    if not clusters:
        raise fail(el, "has no Cluster")
    centers = np.empty((len(clusters), len(cols)))
    ids: list[str] = []
    names: list[str] = []
    for c, cl in enumerate(clusters):
        for k in cl.children:
            if k.tag not in _CLUSTER_INFO:
                raise fail(k, "not supported in a Cluster")
        arr = cl.find("Array")
        if arr is None:
            raise fail(cl, "has no center Array")
        vals = array_values(arr)
        if len(vals) != len(cols):
            raise fail(arr, f"holds {len(vals)} values for {len(cols)} center fields")
        centers[c] = [point_value(col, v, arr) for col, v in zip(cols, vals, strict=True)]
        cid = cl.get("id") or str(c + 1)
        if cid in ids:
            raise fail(cl, f"cluster id '{cid}' repeats")
        ids.append(cid)
        names.append(cl.get("name") or cid)
    k = len(clusters)
    outs = rd.g.new_columns("cluster", names=[f"distance({i})" for i in ids] + ["index"])
    rd.g.add_step("clustering", name="clustering", inputs=[c.column for c in cols],
                  outputs=outs, family=FAMILY, params=params, tables={
                      "fields": fields,
                      "centers": {f"x_{j}": centers[:, j].copy() for j in range(len(cols))}})
    dist, winner = outs[:k], outs[k]
    res.classes = ids
    res.label = winner
    res.target_dtype = "string"
    add_cluster_features(rd, res, winner, ids, names, dist)


def add_cluster_features(rd: Reader, res: Result, winner: str, ids: list[str],
                         names: list[str], dist: list[str] | None) -> None:
    """OutputField features of a clustering result (also used by cluster ensembles)."""
    cache: dict[str, Col] = {}

    def display(of: Element) -> Col:
        return Col(winner, "string", list(names))

    def entity(of: Element) -> Col:
        return Col(winner, "string", list(ids))

    def cluster_id(of: Element) -> Col:
        if "id" not in cache:
            prog = Program(rd.budget)
            prog.load(winner)
            prog.const(1.0)
            prog.emit("ADD")
            prog.emit("STORE", 0)
            cache["id"] = rd.expr_column("cluster_id", prog, "integer")
        return cache["id"]

    def affinity(of: Element) -> Col:
        v = of.get("value")
        if v is None:
            if "winner" not in cache:
                cache["winner"] = select_by_index(rd, winner, dist, "affinity")
            return cache["winner"]
        hit = [i for i, c in enumerate(ids) if c == v]
        if not hit:
            raise fail(of, f"'{v}' is not a cluster id")
        return Col(dist[hit[0]], "double")

    res.features.update({"predictedDisplayValue": display, "entityId": entity,
                         "clusterId": cluster_id})
    if dist is not None:
        res.features.update({"affinity": affinity, "clusterAffinity": affinity})


# --- MiningModel functionName="clustering": a vote among ClusteringModel segments ---------------
@register_model("MiningModel", parts=("Segmentation",), functions=("clustering",))
def cluster_ensemble(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    """Segments (``True`` predicates, ClusteringModels) each vote for their winning cluster
    id (weight 1, or the segment's ``weight`` for weightedMajorityVote); the result is the id
    with the most votes, the first in order of first appearance (segment order, then cluster
    order) on ties; missing when no segment has a winner."""
    seg = el.find("Segmentation")
    if seg is None:
        raise fail(el, "has no Segmentation")
    method = seg.get("multipleModelMethod")
    if method not in ("majorityVote", "weightedMajorityVote"):
        raise fail(seg, f"multipleModelMethod='{method}' not supported for clustering")
    subs: list[tuple[Result, float]] = []
    for s in children(seg, "Segment", where="Segmentation"):
        kids = [c for c in s.children if c.tag != "Extension"]
        if len(kids) != 2 or kids[0].tag != "True" or kids[1].tag != "ClusteringModel":
            raise fail(s, "a clustering ensemble needs <True/> and a ClusteringModel per "
                          "Segment")
        w = attr_number(s, "weight", "1") if method == "weightedMajorityVote" else 1.0
        subs.append((rd.model(kids[1], scope), w))
    if not subs:
        raise fail(seg, "has no Segment")
    ids: list[str] = []
    for sub, _ in subs:
        ids.extend(c for c in sub.classes if c not in ids)
    u = len(ids)
    prog = Program(rd.budget)
    for j, cid in enumerate(ids):
        n = 0
        for sub, w in subs:
            if cid not in sub.classes:
                continue
            prog.load(sub.label)
            prog.const(float(sub.classes.index(cid)))
            prog.emit("EQ")
            prog.const(0.0)
            prog.emit("SURROGATE")  # a segment without a winner votes for nobody
            prog.const(w)
            prog.emit("MUL")
            if n:
                prog.emit("ADD")
            n += 1
        prog.emit("STORE", j)
    emit_argmax(prog, list(range(u)), u, u + 1)
    for j in range(u):  # no votes at all: no winner
        prog.emit("LOADOUT", j)
        if j:
            prog.emit("ADD")
    prog.const(0.0)
    prog.emit("GT")
    prog.emit("LOADOUT", u)
    prog.const(math.nan)
    prog.emit("IF")
    prog.emit("STORE", u)
    outs = rd.program_step("cluster_vote", prog, u + 2)
    res.classes = ids
    res.label = outs[u]
    res.target_dtype = "string"
    add_cluster_features(rd, res, outs[u], ids, list(ids), None)
