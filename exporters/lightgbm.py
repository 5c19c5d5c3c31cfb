"""Family ``lightgbm`` exporters: LightGBM tree models -> ``tree_ensemble`` (+ ``link``) steps.

The model is read from ``Booster.dump_model()`` (thresholds and leaf values printed with 17
significant digits, so they read back to the same doubles). LightGBM's prediction semantics,
reproduced by the step parameters:

- float64 comparisons, ``x <= threshold`` goes left; per node ``missing_type`` NaN (NaN takes
  the default child), Zero (NaN and ``|x| <= kZeroThreshold`` take it) or None (NaN becomes
  0.0 and is compared);
- the dense predictor drops ``|x| <= kZeroThreshold`` (``(double)1e-35f``) before the trees
  see the row, i.e. reads it as 0.0; thresholds in that band are moved so that plain
  comparisons of the unrounded value give the same side (see :func:`_threshold`);
- a categorical split sends the categories of its set left; NaN and values ``<= -1`` right.
  LightGBM truncates toward zero, so it reads a value in ``(-1, 0)`` as category 0, where
  ``tree_ensemble`` (``x >= 0`` required) sends it right: the one known difference, reachable
  only through a numeric categorical column (pandas category codes are integers);
- margins are summed in float64 in tree order, starting at 0 (the ``boost_from_average`` bias
  lives in the first trees' leaves); ``rf`` boosting averages over the iterations used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.linear import add_link, add_scale
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .registry import register
from .xgboost import MISSING_NAN, MISSING_NONE, MISSING_ZERO, TreeTables, category_codes
from .xgboost import check_numeric_codes as _check_numeric_codes

FAMILY = "lightgbm"

#: LightGBM's kZeroThreshold: ``const double kZeroThreshold = 1e-35f`` (a float literal).
K_ZERO = float(np.float32(1e-35))

_MISSING = {"NaN": MISSING_NAN, "Zero": MISSING_ZERO, "None": MISSING_NONE}

# objective name -> link applied to the (sigmoid-scaled) margins
_IDENTITY = ("regression", "regression_l2", "l2", "mean_squared_error", "mse",
             "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "quantile",
             "mape", "mean_absolute_percentage_error")
_EXP = ("poisson", "gamma", "tweedie")


def _threshold(t: float) -> float:
    """A threshold for the raw value equivalent to LightGBM's on the zeroed value.

    LightGBM reads ``|x| <= K_ZERO`` as 0.0, so for those ``x`` the side is that of 0.0.
    Outside the band any threshold within it gives the same side as ``t``; inside, the
    replacement puts the whole band on 0.0's side.

    ``dump_model()`` clamps thresholds to +/-1e300 (LightGBM's AvoidInf) while the model holds
    +/-inf (e.g. "every number left, NaN right" splits of features trained with NaN): a
    dumped +/-1e300 is read back as +/-inf, or +/-inf and values above 1e300 would go the
    wrong way.
    """
    if abs(t) >= 1e300:
        return math.copysign(math.inf, t)
    if 0.0 <= t < K_ZERO:
        return K_ZERO
    if -K_ZERO <= t < 0.0:
        return float(np.nextafter(-K_ZERO, -np.inf))
    return t


class _LGBModel:
    """The parts of ``dump_model()`` a ``tree_ensemble`` step needs."""

    def __init__(self, booster: Any) -> None:
        d = booster.dump_model(num_iteration=-1)
        self.objective_string = str(d.get("objective", ""))
        parts = self.objective_string.split()
        self.objective = parts[0] if parts else ""
        self.options = dict(p.split(":", 1) if ":" in p else (p, "") for p in parts[1:])
        self.num_class = int(d.get("num_class", 1))
        self.k = int(d.get("num_tree_per_iteration", 1))
        self.n_features = int(d.get("max_feature_idx", -1)) + 1
        self.average = bool(d.get("average_output", False))
        self.pandas_categorical = d.get("pandas_categorical") or getattr(
            booster, "pandas_categorical", None) or []
        trees = d["tree_info"]
        best = int(getattr(booster, "best_iteration", 0) or 0)
        n_iter = len(trees) // self.k if self.k else 0
        # predict(num_iteration=None) uses the best iteration when early stopping set one
        self.n_iter = best if 0 < best <= n_iter else n_iter
        self.trees = [t["tree_structure"] for t in trees[: self.n_iter * self.k]]

    @property
    def sigmoid(self) -> float:
        return float(self.options.get("sigmoid", 1.0))


def _categorical_codes(m: _LGBModel, g: Graph, cols: list[str]) -> dict[int, list[int] | None]:
    """Feature -> workspace code of each pandas code, for pandas category columns."""
    code_cols = [f for f, c in enumerate(cols) if g.is_codes(c)]
    if not m.pandas_categorical:
        return {}
    if len(code_cols) != len(m.pandas_categorical):
        raise ExportError(
            f"LightGBM was fitted on {len(m.pandas_categorical)} pandas category columns but "
            f"{len(code_cols)} string columns reach it; categories with non-string values are "
            "not supported (convert them to strings before fitting)")
    out: dict[int, list[int] | None] = {}
    for f, cats in zip(code_cols, m.pandas_categorical, strict=True):
        out[f] = category_codes(g, cols[f], cats, what="LightGBM")
    return out


def _add_tree(tb: TreeTables, root: dict[str, Any], output: int, scale: float,
              codes: dict[int, list[int] | None], used_numeric: set[int]) -> None:
    if any(k in root for k in ("leaf_const", "leaf_coeff")):
        raise ExportError("LightGBM linear trees (linear_tree=True) are not supported")
    tb.tree(output, scale)
    stack = [(root, tb.node())]
    while stack:
        node, i = stack.pop()
        if "split_feature" not in node:
            if "leaf_coeff" in node or "leaf_const" in node:
                raise ExportError("LightGBM linear trees (linear_tree=True) are not supported")
            tb.leaf(i, [float(node["leaf_value"])])
            continue
        a, b = tb.node(), tb.node()
        f = int(node["split_feature"])
        if node["decision_type"] == "==":
            cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
            cmap = codes.get(f)
            if cmap is not None:
                cats = [cmap[c] for c in cats if 0 <= c < len(cmap)]
            # NaN and negative values go right whatever the node's missing type
            tb.split(i, feature=f, left=a, right=b, default_left=False, missing=MISSING_NAN,
                     categories=cats)
        elif node["decision_type"] == "<=":
            used_numeric.add(f)
            missing = _MISSING.get(str(node.get("missing_type", "None")))
            if missing is None:
                raise ExportError(f"LightGBM missing_type {node.get('missing_type')!r} unknown")
            tb.split(i, feature=f, threshold=_threshold(float(node["threshold"])), left=a,
                     right=b, default_left=bool(node.get("default_left", False)),
                     missing=missing)
        else:
            raise ExportError(f"LightGBM decision_type {node['decision_type']!r} unknown")
        stack += [(node["right_child"], b), (node["left_child"], a)]


def _tree_step(m: _LGBModel, g: Graph, cols: list[str], outputs: list[int],
               name: str) -> list[str]:
    """One ``tree_ensemble`` step over the trees of ``outputs`` (class indices)."""
    codes = _categorical_codes(m, g, cols)
    tb = TreeTables(leaf_width=1)
    used_numeric: set[int] = set()
    for t, tree in enumerate(m.trees):
        cls = t % m.k
        if cls in outputs:
            _add_tree(tb, tree, outputs.index(cls), 1.0, codes, used_numeric)
    _check_numeric_codes(g, cols, used_numeric, codes, "LightGBM")
    k = len(outputs)
    margins = g.new_columns(f"{name}.margin", k)
    g.add_step("tree_ensemble", name=name, inputs=list(cols), outputs=margins, family=FAMILY,
               nan_out="none", tables=tb.tables(), params={
                   "n_outputs": k, "leaf_width": 1,
                   "aggregation": "average" if m.average else "sum",
                   "base_score": [0.0] * k, "accumulate_dtype": "float64",
                   "compare_dtype": "float64", "split_operator": "<="})
    return margins


def tree_steps(m: _LGBModel, g: Graph, cols: list[str]) -> list[str]:
    """Emit the model's trees; return one raw-score column per tree of an iteration."""
    if len(cols) != m.n_features:
        raise ExportError(f"LightGBM model has {m.n_features} features but receives "
                          f"{len(cols)} columns")
    if m.n_iter == 0:
        raise ExportError("LightGBM model has no trees")
    if m.average and m.k > 1:
        # rf averages each class over the iterations: one step per class keeps the
        # step's "average" (over its own trees) exactly that division
        return [c for j in range(m.k)
                for c in _tree_step(m, g, cols, [j], f"lightgbm_class{j}")]
    return _tree_step(m, g, cols, list(range(m.k)), "lightgbm")


def _transform(m: _LGBModel, g: Graph, margins: list[str], *, binary_two: bool) -> list[str]:
    """LightGBM's ``ConvertOutput``: raw scores -> what ``predict`` returns.

    ``binary_two``: a binary model yields ``[1 - p, p]`` (classifier) instead of ``p``.
    """
    obj = m.objective
    if "sqrt" in m.options:
        raise ExportError(f"LightGBM objective '{m.objective_string}' (reg_sqrt) is not "
                          "supported")
    if obj in _IDENTITY:
        return margins
    if obj in _EXP:
        return add_link(g, margins, "exp")
    if obj in ("binary", "cross_entropy", "xentropy"):
        scaled = add_scale(g, margins, m.sigmoid if obj == "binary" else 1.0)
        return add_link(g, scaled, "logistic2" if binary_two else "logistic")
    if obj in ("multiclass", "softmax"):
        return add_link(g, margins, "softmax")
    if obj in ("multiclassova", "multiclass_ova", "ova", "ovr"):
        return add_link(g, add_scale(g, margins, m.sigmoid), "logistic")
    raise ExportError(f"LightGBM objective '{m.objective_string or 'custom'}' is not "
                      "supported (regression, regression_l1, huber, fair, quantile, mape, "
                      "poisson, gamma, tweedie, binary, cross_entropy, multiclass, "
                      "multiclassova)")


def _check_linear(booster: Any) -> None:
    params = getattr(booster, "params", None) or {}
    if str(params.get("linear_tree", "false")).lower() in ("true", "1"):
        raise ExportError("LightGBM linear trees (linear_tree=True) are not supported")


# --- exporters -----------------------------------------------------------------------------------
@register("lightgbm.LGBMClassifier")
def export_lgbm_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """LGBMClassifier: ``predict_proba`` columns and the argmax label ``predict`` returns."""
    booster = est.booster_
    _check_linear(booster)
    m = _LGBModel(booster)
    classes = np.asarray(est.classes_)
    if m.objective not in ("binary", "cross_entropy", "xentropy", "multiclass", "softmax",
                           "multiclassova", "multiclass_ova", "ova", "ovr"):
        raise ExportError(f"LGBMClassifier with objective '{m.objective_string or 'custom'}' "
                          "is not supported")
    if m.k not in (1, len(classes)) or (m.k == 1 and len(classes) != 2):
        raise ExportError(f"LGBMClassifier with {m.k} trees per iteration for "
                          f"{len(classes)} classes is not supported")
    proba = _transform(m, g, tree_steps(m, g, cols), binary_two=True)
    set_classifier_outputs(g, classes, proba=proba)
    return proba


@register("lightgbm.LGBMRegressor")
def export_lgbm_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """LGBMRegressor: ``predict``'s values."""
    booster = est.booster_
    _check_linear(booster)
    m = _LGBModel(booster)
    values = _transform(m, g, tree_steps(m, g, cols), binary_two=False)
    set_regressor_outputs(g, values)
    return values


@register("lightgbm.Booster")
def export_lgbm_booster(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """A raw Booster: what ``Booster.predict`` returns (probabilities for binary/multiclass)."""
    _check_linear(est)
    m = _LGBModel(est)
    values = _transform(m, g, tree_steps(m, g, cols), binary_two=False)
    set_regressor_outputs(g, values)
    return values

