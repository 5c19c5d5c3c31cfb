"""Family ``xgboost`` exporters: XGBoost tree models -> ``tree_ensemble`` (+ ``link``) steps.

The model is read from XGBoost's own JSON serialisation (``Booster.save_raw("json")``), never
from a text dump; every float in it is read as the float32 it denotes (:func:`parse_f32`).
XGBoost's prediction semantics, reproduced by the step parameters:

- inputs are cast to float32 (finite values beyond float32 become +/-inf) and a row goes left
  iff ``x < split_condition``; NaN follows ``default_left``. ``inplace_predict`` (what the
  scikit-learn API calls) accepts +/-inf, a ``DMatrix`` (raw ``Booster.predict``) refuses it;
- margins are accumulated in float32: ``base_score`` converted to margin space as XGBoost
  does in float32, then every tree in model order (``tree_info`` names its output; vector
  leaves of multi-output trees add into every output); dart trees are weighted by
  ``weight_drop``;
- a categorical split sends the categories of its set to the RIGHT and everything else,
  including negative and out-of-range codes, to the left. ``tree_ensemble`` sends its listed
  categories left, so children and the default direction are swapped. Training categories
  are matched to the input field's vocabulary by name; unseen ones are refused, as XGBoost
  refuses them.

The binary classifier's label is ``argmax([1 - p, p])``: XGBoost computes ``p > 0.5`` in
float32, which differs only for ``|margin| < ~1.2e-7``.

:class:`TreeTables`, the library-neutral table builder, is shared with
:mod:`exporters.lightgbm` (it imports nothing from XGBoost).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.linear import add_link
from scorer.build.outputs import class_type, set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError
from scorer.ir import Output, Table

from .programs import Program
from .registry import register

FAMILY = "xgboost"

#: ``tree_ensemble`` node ``missing`` codes
MISSING_NAN, MISSING_ZERO, MISSING_NONE = 0, 1, 2
#: ``tree_ensemble`` node ``kind`` codes
KIND_NUMERIC, KIND_CATEGORICAL = 0, 1


# --- library-neutral table builder ---------------------------------------------------------------
class TreeTables:
    """Rows of the ``trees``, ``nodes`` and ``categories`` tables of one ``tree_ensemble`` step.

    Nodes get global indices in the order they are allocated with :meth:`node`; a tree's root
    is the node allocated right after :meth:`tree` is called.

    Parameters
    ----------
    leaf_width : int
        Number of values per leaf (1 for boosting).
    """

    def __init__(self, leaf_width: int = 1) -> None:
        self.leaf_width = leaf_width
        self.root: list[int] = []
        self.output: list[int] = []
        self.scale: list[float] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.default_left: list[bool] = []
        self.missing: list[int] = []
        self.kind: list[int] = []
        self.values: list[list[float]] = [[] for _ in range(leaf_width)]
        self.cat_node: list[int] = []
        self.cat_value: list[int] = []

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    def tree(self, output: int, scale: float = 1.0) -> None:
        """Start a tree whose leaves add into outputs ``output .. output + leaf_width - 1``."""
        self.root.append(self.n_nodes)
        self.output.append(int(output))
        self.scale.append(float(scale))

    def node(self) -> int:
        """Allocate a node row (a leaf with value 0 until :meth:`split` / :meth:`leaf`)."""
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(-1)
        self.right.append(-1)
        self.default_left.append(False)
        self.missing.append(MISSING_NAN)
        self.kind.append(KIND_NUMERIC)
        for col in self.values:
            col.append(0.0)
        return self.n_nodes - 1

    def split(self, i: int, *, feature: int, left: int, right: int, default_left: bool,
              threshold: float = 0.0, missing: int = MISSING_NAN,
              categories: Sequence[int] | None = None) -> None:
        """Make node ``i`` a split; ``categories`` (going left) makes it categorical."""
        self.feature[i] = int(feature)
        self.threshold[i] = float(threshold)
        self.left[i] = int(left)
        self.right[i] = int(right)
        self.default_left[i] = bool(default_left)
        self.missing[i] = int(missing)
        if categories is not None:
            self.kind[i] = KIND_CATEGORICAL
            for c in sorted(set(int(c) for c in categories)):
                self.cat_node.append(i)
                self.cat_value.append(c)

    def leaf(self, i: int, values: Sequence[float]) -> None:
        if len(values) != self.leaf_width:
            raise ExportError(f"internal: leaf with {len(values)} values, expected "
                              f"{self.leaf_width}")
        for w, v in enumerate(values):
            self.values[w][i] = float(v)

    def tables(self) -> dict[str, Table]:
        nodes: Table = {
            "feature": np.asarray(self.feature, dtype=np.int32),
            "threshold": np.asarray(self.threshold, dtype=np.float64),
            "left": np.asarray(self.left, dtype=np.int32),
            "right": np.asarray(self.right, dtype=np.int32),
            "default_left": np.asarray(self.default_left, dtype=bool),
            "missing": np.asarray(self.missing, dtype=np.int8),
            "kind": np.asarray(self.kind, dtype=np.int8),
        }
        for w, col in enumerate(self.values):
            nodes[f"value_{w}"] = np.asarray(col, dtype=np.float64)
        out: dict[str, Table] = {
            "trees": {"root": np.asarray(self.root, dtype=np.int32),
                      "output": np.asarray(self.output, dtype=np.int32),
                      "scale": np.asarray(self.scale, dtype=np.float64)},
            "nodes": nodes,
        }
        if self.cat_node:
            out["categories"] = {"node": np.asarray(self.cat_node, dtype=np.int32),
                                 "category": np.asarray(self.cat_value, dtype=np.int32)}
        return out


def category_codes(g: Graph, column: str, categories: Sequence[Any], *, what: str) -> list[int]:
    """Workspace codes of a string column for a library's categories, in the library's order.

    The field learns the categories it lacks (in order, so a fresh field's code ``i`` is the
    library's code ``i``); a field whose vocabulary was filled differently is remapped.
    """
    g.add_categories(column, categories)
    field = g.fields[g.code_origin[column]]
    index = {c: i for i, c in enumerate(field.categories or [])}
    codes = []
    for c in categories:
        if c is None or (isinstance(c, float) and c != c):
            raise ExportError(f"{what}: missing value used as a category")
        codes.append(index[str(c)])
    return codes


def check_numeric_codes(g: Graph, cols: list[str], used_numeric: set[int],
                        codes: dict[int, list[int] | None], what: str) -> None:
    """Check string-code columns that a model compares numerically.

    A model fitted on a categorical column may still compare its codes with thresholds (an
    ordered pandas category in LightGBM): that needs the workspace code to equal the
    library's code, and an unseen category (code -1 here, missing there) to be refused. A raw
    string field with no known mapping cannot be compared at all.
    """
    for f in sorted(used_numeric):
        col = cols[f]
        if not g.is_codes(col):
            continue
        mapped = codes.get(f)
        if mapped is not None:
            if mapped != list(range(len(mapped))):
                raise ExportError(f"{what} compares the codes of '{col}' with thresholds, but "
                                  "the field's vocabulary is ordered differently")
            g.refuse_unknown(col)
        elif col in g.fields:
            raise ExportError(f"{what} compares string field '{col}' numerically: encode it "
                              "first, or fit the model on a pandas category column")


# --- reading XGBoost's JSON ----------------------------------------------------------------------
def _pack_f32(v: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:  # finite float64 beyond float32: rounds to +/-inf
        return math.copysign(math.inf, v)


def parse_f32(text: str) -> float:
    """The float32 nearest to decimal ``text``, as a Python float.

    XGBoost prints each float32 with the shortest decimal that reads back to it. Rounding that
    decimal to float64 and then to float32 is exact except when the float64 lands exactly on a
    float32 midpoint (double rounding); then the decimal itself decides.
    """
    v = float(text)
    f = _pack_f32(v)
    if f == v or math.isinf(f) or math.isnan(v):
        return f
    other = 2.0 * v - f
    if _pack_f32(other) == other and other != f:  # v is the midpoint of f and other
        exact = Fraction(text)
        if exact != Fraction(v):
            return max(f, other) if exact > Fraction(v) else min(f, other)
    return f


def _f32(v: Any) -> float:
    return parse_f32(str(v)) if not isinstance(v, float) else v


def model_json(booster: Any) -> dict[str, Any]:
    """XGBoost's JSON model with every float read as the float32 it denotes."""
    raw = bytes(booster.save_raw(raw_format="json"))
    return json.loads(raw, parse_float=parse_f32)


def _float_list(text: Any) -> list[float]:
    """``"[5E-1,2E-1]"`` (XGBoost 3 vectors), ``"5E-1"`` or a number -> floats (float32)."""
    if isinstance(text, int | float):
        return [_f32(text)]
    s = str(text).strip()
    if s.startswith("["):
        s = s[1:-1]
    return [parse_f32(p) for p in s.split(",") if p.strip()]


def _decode_categories(enc: dict[str, Any]) -> list[Any]:
    """One feature's training categories (code order) from the model's ``cats`` section."""
    if "offsets" in enc:  # strings: UTF-8 bytes split by offsets
        off, data = enc["offsets"], bytes(enc["values"])
        return [data[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]
    return list(enc.get("values", []))


# objective -> (base_score to margin, link applied to margins)
_OBJECTIVES: dict[str, tuple[str, str]] = {
    "reg:squarederror": ("identity", "identity"),
    "reg:linear": ("identity", "identity"),
    "reg:squaredlogerror": ("identity", "identity"),
    "reg:pseudohubererror": ("identity", "identity"),
    "reg:absoluteerror": ("identity", "identity"),
    "reg:quantileerror": ("identity", "identity"),
    "reg:logistic": ("logit", "logistic"),
    "binary:logistic": ("logit", "logistic"),
    # XGBoost 3 keeps a logitraw base_score as given (verified with output_margin=True)
    "binary:logitraw": ("identity", "identity"),
    "count:poisson": ("log", "exp"),
    "reg:gamma": ("log", "exp"),
    "reg:tweedie": ("log", "exp"),
    "multi:softprob": ("identity", "softmax"),
    "multi:softmax": ("identity", "softmax"),
}


def _to_margin(base: list[float], how: str) -> list[float]:
    """``base_score`` (objective output space) -> margin, as XGBoost computes it in float32.

    XGBoost evaluates ``-logf(1.0f / b - 1.0f)`` / ``logf(b)``: float32 arithmetic, then a
    correctly rounded ``logf`` (NumPy's float32 ``log`` is not always correctly rounded, so the
    logarithm is taken in float64 and rounded once).
    """
    out = []
    for b in base:
        x = np.float32(b)
        if how == "logit":
            if not 0.0 < x < 1.0:
                raise ExportError(f"XGBoost base_score {float(x)!r} is not a probability")
            # XGBoost clamps it to [1e-6, 1 - 1e-6] (float32) first: base_score 1e-8 is the
            # margin of 1e-6
            eps = np.float32(1e-6)
            x = min(max(x, eps), np.float32(1.0) - eps)
            m = -math.log(float(np.float32(1.0) / x - np.float32(1.0)))
        elif how == "log":
            if not x > 0.0:
                raise ExportError(f"XGBoost base_score {float(x)!r} is not positive")
            m = math.log(float(x))
        else:
            m = float(x)
        out.append(float(np.float32(m)))
    return out


class _XGBModel:
    """The parts of an XGBoost JSON model a ``tree_ensemble`` step needs."""

    def __init__(self, booster: Any, iteration_range: tuple[int, int] | None) -> None:
        j = model_json(booster)
        learner = j["learner"]
        self.objective = learner["objective"]["name"]
        mp = learner["learner_model_param"]
        self.num_feature = int(mp.get("num_feature", 0))
        self.num_class = int(mp.get("num_class", 0))
        self.num_target = int(mp.get("num_target", 1) or 1)
        self.base_score = _float_list(mp["base_score"])
        self.feature_names = list(learner.get("feature_names") or [])
        self.feature_types = list(learner.get("feature_types") or [])
        gb = learner["gradient_booster"]
        self.booster_name = gb["name"]
        if self.booster_name == "gbtree":
            model, weights = gb["model"], None
        elif self.booster_name == "dart":
            model, weights = gb["gbtree"]["model"], [_f32(w) for w in gb["weight_drop"]]
        else:
            raise ExportError(f"XGBoost booster '{self.booster_name}' is not supported (only "
                              "gbtree and dart)")
        trees = model["trees"]
        tree_info = [int(t) for t in model["tree_info"]]
        indptr = model.get("iteration_indptr")
        if not indptr:
            per_iter = int(model["gbtree_model_param"].get("num_parallel_tree", 1)) * max(
                self.num_class, self.num_target, 1)
            indptr = list(range(0, len(trees) + 1, per_iter))
        begin, end = iteration_range or (0, 0)
        if end <= 0 or end > len(indptr) - 1:
            end = len(indptr) - 1
        lo, hi = indptr[begin], indptr[end]
        self.trees = trees[lo:hi]
        self.tree_info = tree_info[lo:hi]
        self.weights = weights[lo:hi] if weights is not None else None
        cats = model.get("cats") or {}
        self.categories: dict[int, list[Any]] = {
            f: _decode_categories(e) for f, e in enumerate(cats.get("enc") or [])
            if e.get("values")}

    @property
    def n_outputs(self) -> int:
        return max(self.num_class, self.num_target, 1)


def _iteration_range(est: Any) -> tuple[int, int] | None:
    """What ``predict`` uses by default (the best iteration after early stopping)."""
    get = getattr(est, "_get_iteration_range", None)
    if get is not None:
        return tuple(get(None))
    try:
        return (0, int(est.best_iteration) + 1)
    except (AttributeError, ValueError, TypeError):
        return None


def _category_maps(m: _XGBModel, g: Graph,
                   cols: list[str]) -> tuple[dict[int, list[int] | None], list[str]]:
    """Feature -> workspace code of each training code (``None``: values are the codes), and
    the columns the trees read (an integer-category column through a check that refuses a
    value XGBoost did not see in training)."""
    maps: dict[int, list[int] | None] = {}
    cols = list(cols)
    for f in range(len(cols)):
        is_cat = f < len(m.feature_types) and m.feature_types[f] == "c"
        if not is_cat:
            continue
        names = m.categories.get(f)
        if g.is_codes(cols[f]):
            if names is None:
                raise ExportError(f"XGBoost: categorical feature {f} ('{cols[f]}') is a string "
                                  "column but the model records no categories for it")
            maps[f] = category_codes(g, cols[f], names, what="XGBoost")
            # XGBoost refuses a category it did not see in training
            g.refuse_unknown(cols[f])
        elif names is not None and list(names) != list(range(len(names))):
            shown = ", ".join(repr(c) for c in names[:6])
            raise ExportError(
                f"XGBoost: categorical feature '{cols[f]}' has non-string categories "
                f"({shown}...) that the model uses by position; convert the categories to "
                "strings before fitting")
        else:
            maps[f] = None
            if names is not None:  # pandas categories 0 .. n-1: the values are the codes
                cols[f] = _refuse_unseen_codes(g, cols[f], len(names))
    return maps, cols


def _refuse_unseen_codes(g: Graph, col: str, n: int) -> str:
    """``col`` through a step that refuses a value other than 0 .. n-1 (XGBoost: "Found a
    category not in the training set"); missing passes (it follows the default branch)."""
    p = Program()
    # NOT(0 <= x < n AND floor(x) == x): NaN compares unknown, which does not refuse
    p.load(0).const(0.0).emit("GE")
    p.load(0).const(float(n)).emit("LT").emit("AND")
    p.load(0).emit("FLOOR").load(0).emit("EQ").emit("AND")
    p.emit("NOT").emit("REFUSE_IF")
    p.load(0).store(0)
    out = g.new_columns("xgb_categories", 1)
    g.add_step("expression", name="xgboost_categories", inputs=[col], outputs=out,
               family="expression", elementwise=True, tables={"program": p.table()},
               params={"refuse_message": f"XGBoost: '{col}' holds a category the model did "
                                         f"not see in training (its categories are 0 .. "
                                         f"{n - 1})"})
    return out[0]


def _add_tree(tb: TreeTables, tree: dict[str, Any], output: int, scale: float,
              cat_maps: dict[int, list[int] | None], used_numeric: set[int],
              shift: float | None = None) -> None:
    """Append one XGBoost tree; with ``shift = b`` a leaf is stored as dart's in-place
    predictor sees it: ``float32(float32(b + leaf) - b)``."""
    left, right = tree["left_children"], tree["right_children"]
    feat, cond = tree["split_indices"], tree["split_conditions"]
    dleft = tree["default_left"]
    stype = tree.get("split_type") or [0] * len(left)
    node_cats: dict[int, list[int]] = {}
    seg, size, allcats = (tree.get("categories_segments") or [],
                          tree.get("categories_sizes") or [], tree.get("categories") or [])
    for k, nid in enumerate(tree.get("categories_nodes") or []):
        node_cats[int(nid)] = [int(c) for c in allcats[seg[k]:seg[k] + size[k]]]
    width = int(tree["tree_param"].get("size_leaf_vector", "1") or 1)
    if width != tb.leaf_width:
        raise ExportError(f"XGBoost tree with {width} values per leaf in a model of "
                          f"{tb.leaf_width}")
    # vector leaves (multi_strategy="multi_output_tree"): a leaf's right_children entry is
    # its index into leaf_weights
    vector = tree.get("leaf_weights") if width > 1 else None
    tb.tree(output, scale)
    gid = {0: tb.node()}
    stack = [0]
    while stack:
        nid = stack.pop()
        i = gid[nid]
        if left[nid] == -1 and vector is not None:
            r = int(right[nid])
            tb.leaf(i, [_f32(v) for v in vector[r * width:(r + 1) * width]])
            continue
        if left[nid] == -1:
            value = np.float32(_f32(cond[nid]))
            if shift is not None:
                value = (np.float32(shift) + value) - np.float32(shift)
            tb.leaf(i, [float(value)])
            continue
        a, b = int(left[nid]), int(right[nid])
        gid[a] = tb.node()
        gid[b] = tb.node()
        f = int(feat[nid])
        if int(stype[nid]) == 1:
            codes = node_cats.get(nid, [])
            cmap = cat_maps.get(f)
            if cmap is not None:
                codes = [cmap[c] for c in codes if c < len(cmap)]
            # XGBoost sends its set right: swap so that the listed categories go left
            tb.split(i, feature=f, left=gid[b], right=gid[a], default_left=not dleft[nid],
                     categories=codes)
        else:
            used_numeric.add(f)
            tb.split(i, feature=f, threshold=_f32(cond[nid]), left=gid[a], right=gid[b],
                     default_left=bool(dleft[nid]))
        stack += [b, a]


def tree_step(m: _XGBModel, g: Graph, cols: list[str], *, name: str = "xgboost",
              inplace: bool = True) -> list[str]:
    """Emit the ``tree_ensemble`` step of an XGBoost model; return its margin columns.

    ``inplace``: reproduce ``inplace_predict`` (what the scikit-learn API calls) rather than
    ``Booster.predict(DMatrix)``; they differ for dart only. In-place dart prediction adds
    ``(float32(base[out] + leaf) - base[out]) * weight`` per tree, not ``leaf * weight``
    (verified bit for bit against XGBoost 3.2).
    """
    if len(cols) != m.num_feature:
        raise ExportError(f"XGBoost model has {m.num_feature} features but receives "
                          f"{len(cols)} columns")
    if not m.trees:  # (its classifier predicts sigmoid(base_score), not base_score)
        raise ExportError("XGBoost model without trees (n_estimators=0) is not supported")
    cat_maps, cols = _category_maps(m, g, cols)
    k = m.n_outputs
    how, _ = _OBJECTIVES[m.objective]
    base = _to_margin(m.base_score, how)
    if len(base) == 1 and k > 1:
        base = base * k
    if len(base) != k:
        raise ExportError(f"XGBoost base_score has {len(base)} values for {k} outputs")
    width = max((int(t["tree_param"].get("size_leaf_vector", "1") or 1) for t in m.trees),
                default=1)
    if width > 1 and m.weights is not None:
        raise ExportError("XGBoost dart with multi-output trees is not supported")
    tb = TreeTables(leaf_width=width)
    used_numeric: set[int] = set()
    for t, tree in enumerate(m.trees):
        out = m.tree_info[t]
        if m.weights is None:
            _add_tree(tb, tree, out, 1.0, cat_maps, used_numeric)
        else:
            shift = base[out] if inplace else None
            _add_tree(tb, tree, out, m.weights[t], cat_maps, used_numeric, shift)
    check_numeric_codes(g, cols, used_numeric, {}, "XGBoost")
    margins = g.new_columns(f"{name}.margin", k)
    g.add_step("tree_ensemble", name=name, inputs=list(cols), outputs=margins, family=FAMILY,
               nan_out="none", tables=tb.tables(), params={
                   "n_outputs": k, "leaf_width": width, "aggregation": "sum",
                   "base_score": base, "accumulate_dtype": "float32",
                   "compare_dtype": "float32", "split_operator": "<"})
    return margins


def _check_objective(m: _XGBModel) -> str:
    if m.objective not in _OBJECTIVES:
        raise ExportError(f"XGBoost objective '{m.objective}' is not supported (supported: "
                          f"{', '.join(sorted(_OBJECTIVES))})")
    return _OBJECTIVES[m.objective][1]


def _check_missing(est: Any) -> None:
    missing = getattr(est, "missing", np.nan)
    if missing is not None and not (isinstance(missing, float | np.floating)
                                    and math.isnan(missing)):
        raise ExportError(f"XGBoost model with missing={missing!r}: only missing=NaN is "
                          "supported")


# --- exporters -----------------------------------------------------------------------------------
@register("xgboost.XGBClassifier")
def export_xgb_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """XGBClassifier (and XGBRFClassifier): probabilities and label as ``predict`` returns."""
    _check_missing(est)
    m = _XGBModel(est.get_booster(), _iteration_range(est))
    link = _check_objective(m)
    classes = np.asarray(est.classes_)
    n_classes = len(classes)
    if m.num_target > 1:
        raise ExportError("XGBClassifier with several targets (multi-label) is not supported")
    if m.objective.startswith("multi:"):
        if n_classes != m.num_class or n_classes < 3:
            raise ExportError(f"XGBClassifier '{m.objective}' with {n_classes} classes is not "
                              "supported (XGBoost treats 2 softmax columns as multi-label)")
    elif m.objective not in ("binary:logistic", "binary:logitraw") or n_classes != 2:
        raise ExportError(f"XGBClassifier with objective '{m.objective}' and {n_classes} "
                          "classes is not supported")
    margins = tree_step(m, g, cols)
    if m.objective == "binary:logitraw":
        # predict compares the raw margin with 0.5 (predict_proba is not a probability)
        g.task = "classification"
        cls = [c.item() if isinstance(c, np.generic) else c for c in classes.tolist()]
        g.outputs = [Output(name="label", kind="label", type=class_type(cls),
                            rule="threshold", column=margins[0], threshold=0.5, classes=cls)]
        return margins
    proba = add_link(g, margins, "logistic2" if link == "logistic" else link)
    # predict: p > 0.5 (binary) or argmax of probabilities: the same as argmax of [1 - p, p]
    set_classifier_outputs(g, classes, proba=proba)
    return proba


@register("xgboost.XGBRegressor")
def export_xgb_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """XGBRegressor (and XGBRFRegressor): ``predict``'s values (one per target)."""
    _check_missing(est)
    m = _XGBModel(est.get_booster(), _iteration_range(est))
    link = _check_objective(m)
    if m.objective == "multi:softmax":
        raise ExportError("XGBRegressor with objective 'multi:softmax' (predicts class "
                          "indices) is not supported")
    values = add_link(g, tree_step(m, g, cols), link)
    set_regressor_outputs(g, values)
    return values


@register("xgboost.Booster")
def export_xgb_booster(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """A raw Booster: what ``Booster.predict(DMatrix(X))`` returns (probabilities for logistic /
    softprob models). A DMatrix refuses +/-inf and values beyond float32, so does the bundle."""
    m = _XGBModel(est, None)
    link = _check_objective(m)
    if m.objective == "multi:softmax":
        raise ExportError("XGBoost Booster with objective 'multi:softmax' (predicts class "
                          "indices) is not supported; use multi:softprob")
    margins = tree_step(m, g, cols, inplace=False)
    g.require(cols, nan=True, inf=False)
    g.steps[-1].params["refuse_overflow"] = True
    values = add_link(g, margins, link)
    set_regressor_outputs(g, values)
    return values
