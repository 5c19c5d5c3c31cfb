"""Family ``tree_ensemble`` exporters: scikit-learn trees, forests and gradient boosting.

Every model becomes one ``tree_ensemble`` step (raw margins / averaged leaf vectors, see
:mod:`scorer.kernels.tree_ensemble` for the op's semantics), followed where needed by a
``link`` step of the ``linear`` family:

- decision trees, random forests, extra trees: ``compare_dtype`` float32 (scikit-learn casts
  ``X`` to float32 and compares with float64 thresholds), ``x <= threshold``, NaN to
  ``tree_.missing_go_to_left``; classifier leaves are the per-class fractions
  ``tree_.value`` that ``predict_proba`` returns; forests average;
- ``GradientBoosting*``: the same trees, ``scale`` = learning rate, ``base_score`` = the init
  estimator's raw prediction; binary log-loss adds ``logistic2``, multiclass ``softmax``;
- ``HistGradientBoosting*``: float64 comparisons ``x <= num_threshold``,
  ``missing_go_to_left``, ``base_score`` = ``_baseline_prediction``; native categorical
  features (``categorical_features`` indices / mask, or pandas ``category`` columns) go
  through an ``ordinal`` step exported from the estimator's own OrdinalEncoder, then
  categorical splits on the encoded indices.

The input schema mirrors what the original refuses: trees and forests refuse infinity and
values too large for float32 (and NaN unless the estimator supports missing values);
GradientBoosting refuses NaN too; HistGradientBoosting accepts NaN and infinity.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.linear import add_link, add_scale
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .linear import regression_link
from .registry import export_into, register

FAMILY = "tree_ensemble"

#: ``x > NEG_TINY`` is ``x >= 0`` for every float64 (GradientBoostingClassifier's binary rule)
NEG_TINY = -5e-324


@dataclass
class _Forest:
    """Accumulates trees in the op's global node-table layout."""

    width: int
    feature: list[np.ndarray] = field(default_factory=list)
    threshold: list[np.ndarray] = field(default_factory=list)
    left: list[np.ndarray] = field(default_factory=list)
    right: list[np.ndarray] = field(default_factory=list)
    default_left: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    cat_node: list[np.ndarray] = field(default_factory=list)
    cat_value: list[np.ndarray] = field(default_factory=list)
    root: list[int] = field(default_factory=list)
    output: list[int] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    n_nodes: int = 0

    def add(self, *, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
            right: np.ndarray, default_left: np.ndarray, values: np.ndarray, output: int = 0,
            scale: float = 1.0, kind: np.ndarray | None = None,
            categories: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Append one tree given in its own node numbering (root = node 0).

        Parameters
        ----------
        feature : ndarray of shape (n,)
            Input position per node, -1 for leaves.
        threshold, left, right, default_left : ndarray of shape (n,)
            Split threshold, children (-1 on leaves), where a missing value goes.
        values : ndarray of shape (n, width)
            Leaf values (ignored on internal nodes).
        kind : ndarray of shape (n,), optional
            1 for categorical splits.
        categories : (nodes, categories), optional
            The categories sent left, per (tree-local) categorical node.
        """
        n = feature.shape[0]
        leaf = feature < 0
        off = self.n_nodes
        self.feature.append(np.where(leaf, -1, feature).astype(np.int32))
        self.threshold.append(np.where(leaf, 0.0, threshold).astype(np.float64))
        self.left.append(np.where(leaf, -1, left + off).astype(np.int32))
        self.right.append(np.where(leaf, -1, right + off).astype(np.int32))
        self.default_left.append(np.asarray(default_left, dtype=bool) & ~leaf)
        self.kind.append(np.zeros(n, np.int8) if kind is None else kind.astype(np.int8))
        self.values.append(np.where(leaf[:, None], values.reshape(n, self.width), 0.0))
        if categories is not None:
            self.cat_node.append(np.asarray(categories[0], dtype=np.int64) + off)
            self.cat_value.append(np.asarray(categories[1], dtype=np.int64))
        self.root.append(off)
        self.output.append(output)
        self.scale.append(float(scale))
        self.n_nodes += n

    def tables(self) -> dict[str, dict[str, np.ndarray]]:
        values = np.concatenate(self.values)
        nodes = {
            "feature": np.concatenate(self.feature),
            "threshold": np.concatenate(self.threshold),
            "left": np.concatenate(self.left),
            "right": np.concatenate(self.right),
            "default_left": np.concatenate(self.default_left),
            "missing": np.zeros(self.n_nodes, dtype=np.int8),
            "kind": np.concatenate(self.kind),
        }
        for w in range(self.width):
            nodes[f"value_{w}"] = np.ascontiguousarray(values[:, w])
        out = {
            "trees": {"root": np.asarray(self.root, dtype=np.int32),
                      "output": np.asarray(self.output, dtype=np.int32),
                      "scale": np.asarray(self.scale, dtype=np.float64)},
            "nodes": nodes,
        }
        if self.cat_node:
            out["categories"] = {
                "node": np.concatenate(self.cat_node).astype(np.int32),
                "category": np.concatenate(self.cat_value).astype(np.int32)}
        return out


def _tree_step(g: Graph, cols: list[str], forest: _Forest, *, name: str, n_outputs: int,
               aggregation: str, base: Any, compare_dtype: str, refuse_overflow: bool) -> list[str]:
    outs = g.new_columns(f"{name}.raw", n_outputs)
    params: dict[str, Any] = {
        "n_outputs": n_outputs,
        "leaf_width": forest.width,
        "aggregation": aggregation,
        "base_score": [float(b) for b in np.broadcast_to(np.asarray(base, np.float64),
                                                         (n_outputs,))],
        "accumulate_dtype": "float64",
        "compare_dtype": compare_dtype,
        "split_operator": "<=",
    }
    if refuse_overflow:
        params["refuse_overflow"] = True
    g.add_step("tree_ensemble", name=name, inputs=cols, outputs=outs, family=FAMILY,
               params=params, tables=forest.tables())
    return outs


def _refuse_codes(g: Graph, cols: list[str], est: Any, allowed: Collection[int] = ()) -> None:
    for j, c in enumerate(cols):
        if g.is_codes(c) and j not in allowed:
            raise ExportError(f"{type(est).__name__} received string column '{c}': encode it "
                              "first (OneHotEncoder / OrdinalEncoder)")


def _check_width(est: Any, cols: list[str]) -> None:
    n = getattr(est, "n_features_in_", len(cols))
    if n != len(cols):
        raise ExportError(f"{type(est).__name__} expects {n} features but receives "
                          f"{len(cols)} columns")


def _single_output(est: Any) -> None:
    if getattr(est, "n_outputs_", 1) != 1:
        raise ExportError(f"{type(est).__name__} with n_outputs_={est.n_outputs_} "
                          "(multi-output) is not supported")


# --- CART trees (DecisionTree*, ExtraTree*, forests, GradientBoosting) ---------------------
def _add_cart(forest: _Forest, tree: Any, *, n_values: int, output: int = 0,
              scale: float = 1.0) -> None:
    _add_cart_values(forest, tree, tree.tree_.value[:, 0, :n_values], output=output,
                     scale=scale)


def _add_cart_values(forest: _Forest, tree: Any, values: np.ndarray, *, output: int = 0,
                     scale: float = 1.0) -> None:
    """Append a CART tree whose leaves hold ``values`` (``(n_nodes, width)``)."""
    t = tree.tree_
    if t.n_outputs != 1:
        raise ExportError(f"{type(tree).__name__} with {t.n_outputs} outputs (multi-output) "
                          "is not supported")
    left = t.children_left.astype(np.int64)
    forest.add(feature=np.where(left < 0, -1, t.feature), threshold=t.threshold, left=left,
               right=t.children_right.astype(np.int64),
               default_left=np.asarray(t.missing_go_to_left).astype(bool),
               values=np.ascontiguousarray(values, dtype=np.float64),
               output=output, scale=scale)


def _cart_nan_allowed(tree: Any) -> bool:
    # What DecisionTree / forest ``_validate_X_predict`` asks: NaN passes iff this is True.
    return bool(tree._support_missing_values(np.zeros((1, 1))))


def _cart_inputs(g: Graph, cols: list[str], est: Any, tree: Any, *, nan: bool | None = None
                 ) -> None:
    _check_width(est, cols)
    _refuse_codes(g, cols, est)
    # check_array(dtype=float32) refuses inf and anything that overflows float32; the kernel
    # refuses the latter (refuse_overflow), the schema the former.
    g.require(cols, nan=_cart_nan_allowed(tree) if nan is None else nan, inf=False)


def _export_cart(est: Any, g: Graph, cols: list[str], trees: list[Any], *, average: bool,
                 name: str) -> list[str]:
    _single_output(est)
    _cart_inputs(g, cols, est, trees[0])
    classifier = hasattr(est, "classes_")
    k = len(est.classes_) if classifier else 1
    forest = _Forest(width=k)
    for tree in trees:
        _add_cart(forest, tree, n_values=k)
    outs = _tree_step(g, cols, forest, name=name, n_outputs=k,
                      aggregation="average" if average else "sum", base=0.0,
                      compare_dtype="float32", refuse_overflow=True)
    if classifier:
        set_classifier_outputs(g, est.classes_, proba=outs, label="proba")
    else:
        set_regressor_outputs(g, outs)
    return outs


@register("sklearn.DecisionTreeClassifier", "sklearn.DecisionTreeRegressor",
          "sklearn.ExtraTreeClassifier", "sklearn.ExtraTreeRegressor")
def export_decision_tree(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return _export_cart(est, g, cols, [est], average=False, name=type(est).__name__.lower())


@register("sklearn.RandomForestClassifier", "sklearn.RandomForestRegressor",
          "sklearn.ExtraTreesClassifier", "sklearn.ExtraTreesRegressor")
def export_forest(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if not est.estimators_:
        raise ExportError(f"{type(est).__name__} has no trees")
    return _export_cart(est, g, cols, list(est.estimators_), average=True,
                        name=type(est).__name__.lower())


# --- GradientBoosting ------------------------------------------------------------------------
def _gb_base(est: Any) -> np.ndarray:
    init = est.init_
    if not (isinstance(init, str) and init == "zero"):
        cls = type(init).__name__
        if cls not in ("DummyClassifier", "DummyRegressor") or getattr(
                init, "strategy", None) in ("stratified", "uniform"):
            raise ExportError(f"{type(est).__name__} with init={cls}: only the default "
                              "(constant) init estimator or init='zero' can be exported")
    row = np.zeros((1, est.n_features_in_), dtype=np.float32)
    return np.asarray(est._raw_predict_init(row), dtype=np.float64)[0]


@register("sklearn.GradientBoostingClassifier", "sklearn.GradientBoostingRegressor")
def export_gradient_boosting(est: Any, g: Graph, cols: list[str]) -> list[str]:
    name = type(est).__name__.lower()
    est_trees = est.estimators_  # (n_stages, K) of DecisionTreeRegressor
    # GradientBoosting validates with check_array's defaults: NaN and inf refused.
    _cart_inputs(g, cols, est, est_trees[0, 0], nan=False)
    n_stages, k = est_trees.shape
    forest = _Forest(width=1)
    for i in range(n_stages):
        for j in range(k):
            _add_cart(forest, est_trees[i, j], n_values=1, output=j, scale=est.learning_rate)
    raw = _tree_step(g, cols, forest, name=name, n_outputs=k, aggregation="sum",
                     base=_gb_base(est), compare_dtype="float32", refuse_overflow=True)
    if not hasattr(est, "classes_"):
        set_regressor_outputs(g, raw)
        return raw
    loss = type(est._loss).__name__
    n_classes = len(est.classes_)
    if n_classes == 2:
        if loss == "ExponentialLoss":
            # exponential loss: p = expit(2 * raw); 2 * raw is exact in float64
            proba = add_link(g, add_scale(g, raw[:1], 2.0, name="half_logit"), "logistic2")
        elif loss == "HalfBinomialLoss":
            proba = add_link(g, raw, "logistic2")
        else:
            raise ExportError(f"{type(est).__name__} with loss {loss} is not supported")
    else:
        if loss != "HalfMultinomialLoss":
            raise ExportError(f"{type(est).__name__} with loss {loss} is not supported")
        proba = add_link(g, raw, "softmax")
    set_classifier_outputs(g, est.classes_, proba=proba, decision=raw, label="decision")
    if n_classes == 2:
        # predict: classes_[raw >= 0]; the label rule is "> threshold"
        g.outputs[-1].threshold = NEG_TINY
    return proba


# --- HistGradientBoosting --------------------------------------------------------------------
def _bits(words: np.ndarray) -> np.ndarray:
    """Indices of the set bits of a uint32 bitset (scikit-learn's layout)."""
    words = np.asarray(words, dtype=np.uint32)
    idx = np.arange(words.shape[0] * 32)
    return idx[((words[idx // 32] >> (idx % 32).astype(np.uint32)) & 1).astype(bool)]


def _add_hgb(forest: _Forest, predictor: Any, known: np.ndarray, f_idx_map: np.ndarray,
             output: int) -> None:
    nodes = predictor.nodes
    n = nodes.shape[0]
    leaf = nodes["is_leaf"].astype(bool)
    fidx = nodes["feature_idx"].astype(np.int64)
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    default_left = nodes["missing_go_to_left"].astype(bool)
    is_cat = nodes["is_categorical"].astype(bool) & ~leaf
    cat_nodes: list[np.ndarray] = []
    cat_vals: list[np.ndarray] = []
    for i in np.flatnonzero(is_cat):
        left_set = _bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]])
        known_set = _bits(known[f_idx_map[fidx[i]]])
        # scikit-learn: in the left set -> left; another known category -> right; NaN,
        # negative or unknown -> the missing side. The op sends everything outside its set
        # right, so make the missing side the op's right: if missing values go left, swap
        # the children and use the known categories that go right as the set.
        if default_left[i]:
            left_set = np.setdiff1d(known_set, left_set)
            left[i], right[i] = right[i], left[i]
            default_left[i] = False
        cat_nodes.append(np.full(left_set.shape[0], i, dtype=np.int64))
        cat_vals.append(left_set)
    forest.add(feature=np.where(leaf, -1, fidx),
               threshold=np.where(is_cat, 0.0, nodes["num_threshold"]),
               left=left, right=right, default_left=default_left,
               values=nodes["value"].astype(np.float64).reshape(n, 1), output=output,
               kind=is_cat.astype(np.int8),
               categories=(np.concatenate(cat_nodes), np.concatenate(cat_vals))
               if cat_nodes else None)


def _hgb_inputs(est: Any, g: Graph, cols: list[str]) -> tuple[list[str], np.ndarray,
                                                               np.ndarray]:
    """The columns HistGradientBoosting's predictors index, and its known categories.

    With categorical features, ``_preprocessor`` (a ColumnTransformer) ordinal-encodes them
    (unknown and missing -> NaN) and puts them first, the numerical columns after; its
    OrdinalEncoder is exported as such (family ``encoding``), so the tree step sees exactly
    the encoded indices scikit-learn's predictors see.
    """
    pre = getattr(est, "_preprocessor", None)
    none = np.zeros((0, 8), dtype=np.uint32), np.zeros(len(cols), dtype=np.uint32)
    if pre is None:
        return cols, *none
    mapping = pre._transformer_to_input_indices
    cat_idx = [int(i) for i in mapping.get("encoder", [])]
    num_idx = [int(i) for i in mapping.get("numerical", [])]
    if sorted(cat_idx + num_idx) != list(range(len(cols))):
        raise ExportError(f"{type(est).__name__}: unexpected column layout of its categorical "
                          "preprocessor")
    encoded = export_into(pre.named_transformers_["encoder"], g, [cols[i] for i in cat_idx])
    known, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    return [*encoded, *(cols[i] for i in num_idx)], known, f_idx_map


@register("sklearn.HistGradientBoostingClassifier", "sklearn.HistGradientBoostingRegressor")
def export_hist_gradient_boosting(est: Any, g: Graph, cols: list[str]) -> list[str]:
    name = type(est).__name__.lower()
    _check_width(est, cols)
    inputs, known, f_idx_map = _hgb_inputs(est, g, cols)
    _refuse_codes(g, inputs, est)
    # HistGradientBoosting validates numbers with ensure_all_finite=False: NaN and inf pass
    # (its OrdinalEncoder refuses inf in categorical columns; that exporter says so).
    k = est.n_trees_per_iteration_
    forest = _Forest(width=1)
    for iteration in est._predictors:
        for j, predictor in enumerate(iteration):
            _add_hgb(forest, predictor, known, f_idx_map, j)
    raw = _tree_step(g, inputs, forest, name=name, n_outputs=k, aggregation="sum",
                     base=np.asarray(est._baseline_prediction, dtype=np.float64).ravel(),
                     compare_dtype="float64", refuse_overflow=False)
    link = type(est._loss.link).__name__
    if not hasattr(est, "classes_"):
        values = add_link(g, raw, regression_link(est, link))
        set_regressor_outputs(g, values)
        return values
    n_classes = len(est.classes_)
    proba = add_link(g, raw, "logistic2") if n_classes == 2 else add_link(g, raw, "softmax")
    # predict: binary "raw > 0" (the label rule's threshold 0), multiclass argmax of raw
    set_classifier_outputs(g, est.classes_, proba=proba, decision=raw, label="decision")
    return proba
