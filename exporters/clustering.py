"""Family ``clustering`` exporters: scikit-learn ``KMeans`` / ``MiniBatchKMeans`` ->
``clustering`` step (+ an ``expression`` step turning the winning index into one indicator
column per cluster, which the ``label`` output takes the argmax of).

scikit-learn computes distances with the squared-norm expansion (``transform``:
``sqrt(max(|x|^2 - 2 x.c + |c|^2, 0))``; ``predict``: the smallest ``|c|^2 - 2 x.c``), not the
exact ``sqrt(sum (x - c)^2)``: near-ties between two centers can then pick another center than
the exact distance would. The step records that choice (``expansion=true``) and computes the
same formula; only the dot products' summation order (BLAS vs left to right) remains, which
the ``clustering`` tolerance covers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError
from scorer.ir import Output
from scorer.kernels.expression import OPCODES

from .registry import register

FAMILY = "clustering"


def unit_fields(f: int) -> dict[str, np.ndarray]:
    """The ``fields`` table of a plain (unweighted, absDiff, no missing weights) distance."""
    return {"weight": np.ones(f), "compare": np.zeros(f, dtype=np.int8),
            "scale": np.full(f, np.nan), "missing_weight": np.ones(f)}


def numeric_inputs(g: Graph, cols: list[str], name: str) -> None:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OneHotEncoder / OrdinalEncoder)")
    # scikit-learn's check_array refuses NaN and inf here
    g.require(cols, nan=False, inf=False)


def indicators(g: Graph, index_col: str, n: int, name: str) -> list[str]:
    """``n`` columns, column ``j`` = 1.0 where ``index_col == j`` else 0.0."""
    op, arg, val = [], [], []
    for j in range(n):
        op += [OPCODES["LOAD"], OPCODES["CONST"], OPCODES["EQ"], OPCODES["STORE"]]
        arg += [0, 0, 0, j]
        val += [0.0, float(j), 0.0, 0.0]
    outs = g.new_columns(name, n)
    g.add_step("expression", name=name, inputs=[index_col], outputs=outs, family="expression",
               tables={"program": {"opcode": np.array(op, dtype=np.int32),
                                   "arg": np.array(arg, dtype=np.int32),
                                   "value": np.array(val, dtype=np.float64)}})
    return outs


@register("sklearn.KMeans", "sklearn.MiniBatchKMeans")
def export_kmeans(est: Any, g: Graph, cols: list[str]) -> list[str]:
    name = type(est).__name__
    centers = np.asarray(est.cluster_centers_)
    if centers.dtype != np.float64:
        raise ExportError(f"{name} was fitted on {centers.dtype} data; its predict / transform "
                          "then compute in that dtype: refit it on float64 data")
    k, f = centers.shape
    if f != len(cols):
        raise ExportError(f"{name} has {f} features but receives {len(cols)} columns")
    numeric_inputs(g, cols, name)
    outs = g.new_columns(name.lower(), names=[f"distance({j})" for j in range(k)] + ["index"])
    g.add_step("clustering", name=name.lower(), inputs=cols, outputs=outs, family=FAMILY,
               params={"measure": "euclidean", "expansion": True},
               tables={"fields": unit_fields(f),
                       "centers": {f"x_{j}": centers[:, j].copy() for j in range(f)}})
    dist, index = outs[:k], outs[k]
    ind = indicators(g, index, k, "cluster_indicator")
    g.task = "classification"
    # transform's columns first: expected_outputs reads transform()[:, position]
    g.outputs = [Output(name=f"distance({j})", kind="transformed", column=c)
                 for j, c in enumerate(dist)]
    g.outputs.append(Output(name="label", kind="label", type="integer", rule="argmax",
                            columns=ind, classes=list(range(k))))
    return dist
