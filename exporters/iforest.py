"""``sklearn.ensemble.IsolationForest``: ``score_samples``, ``decision_function``, ``predict``.

No op of its own. scikit-learn (1.9, ``_compute_score_samples``) adds, tree by tree from 0.0,
``depth[leaf] + c(n_node_samples[leaf]) - 1.0`` (``_decision_path_lengths`` and
``_average_path_length_per_tree``, both fitted attributes) for the leaf each row reaches in
the tree's feature subset ``estimators_features_`` (all columns, unpermuted, when
``max_features`` keeps every feature); so those float64 values, computed as scikit-learn
computes them, are the leaf values of one ``tree_ensemble`` step (aggregation ``sum``, base
0.0, float32 comparisons, node features mapped through each tree's subset): the depth sum is
scikit-learn's, bit for bit. An ``expression`` step then computes
``score_samples = -(2 ** -(depths / (n_trees * c(max_samples_))))`` (``2 ** -1`` where that
denominator is 0), ``decision_function = score_samples - offset_`` and the label ``-1`` if the
decision is below 0, else ``1``. ``pow`` is libm's; NumPy's SIMD ``power`` may differ from it
in the last ulp.

Inputs as scikit-learn validates them: NaN follows each node's ``missing_go_to_left``, and
infinity (or a value that overflows float32) compares as infinity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError
from scorer.ir import Output

from .programs import Program, add_program
from .registry import register
from .tree_ensemble import NEG_TINY, _check_width, _Forest, _refuse_codes, _tree_step


def _leaf_values(est: Any, t: int) -> np.ndarray:
    """``depth + c(n) - 1.0`` per node of tree ``t``, as scikit-learn adds it per row."""
    from sklearn.ensemble._iforest import _average_path_length

    if hasattr(est, "_decision_path_lengths"):  # fitted by scikit-learn >= 1.5
        depths = np.asarray(est._decision_path_lengths[t])
        avg = np.asarray(est._average_path_length_per_tree[t])
    else:  # what those attributes hold, computed as fit computes them
        tree = est.estimators_[t].tree_
        depths = np.asarray(tree.compute_node_depths())
        avg = _average_path_length(tree.n_node_samples)
    return depths + avg - 1.0


@register("sklearn.IsolationForest")
def export_isolation_forest(est: Any, g: Graph, cols: list[str]) -> list[str]:
    from sklearn.ensemble._iforest import _average_path_length

    trees = list(est.estimators_)
    if not trees:
        raise ExportError("IsolationForest has no trees")
    _check_width(est, cols)
    _refuse_codes(g, cols, est)
    # validate_data(dtype=float32, ensure_all_finite=False): NaN and +-inf pass, and so do
    # values beyond float32, which the cast makes +-inf
    g.require(cols, nan=True, inf=True)
    n_features = len(cols)
    subsample = est._max_features != n_features
    forest = _Forest(width=1)
    for t, tree in enumerate(trees):
        tt = tree.tree_
        feats = np.asarray(est.estimators_features_[t], dtype=np.int64) if subsample \
            else np.arange(n_features)
        left = tt.children_left.astype(np.int64)
        leaf = left < 0
        feature = np.where(leaf, -1, feats[np.where(leaf, 0, tt.feature)])
        forest.add(feature=feature, threshold=tt.threshold, left=left,
                   right=tt.children_right.astype(np.int64),
                   default_left=np.asarray(tt.missing_go_to_left).astype(bool),
                   values=_leaf_values(est, t).reshape(-1, 1))
    depths = _tree_step(g, cols, forest, name="isolationforest", n_outputs=1,
                        aggregation="sum", base=0.0, compare_dtype="float32",
                        refuse_overflow=False)
    denominator = float((len(trees) * _average_path_length([est._max_samples]))[0])
    p = Program().const(2.0)
    if denominator != 0:
        p.load(0).const(denominator).emit("DIV")
    else:  # np.divide(..., out=np.ones_like(depths), where=denominator != 0)
        p.const(1.0)
    p.emit("NEG").emit("POW").emit("NEG").store(0)  # score_samples = -(2 ** -(d / den))
    p.loadout(0).const(float(est.offset_)).emit("SUB").store(1)
    score, decision = add_program(g, "isolation_score", depths, 2, p,
                                  out_names=["score_samples", "decision"])
    g.task = "classification"
    # predict: -1 where decision < 0, else 1; "x > -5e-324" is "x >= 0" for every float64
    g.outputs = [Output(name="score_samples", kind="score", column=score),
                 Output(name="decision", kind="decision", column=decision),
                 Output(name="label", kind="label", type="integer", rule="threshold",
                        column=decision, threshold=NEG_TINY, classes=[-1, 1])]
    return [score, decision]
