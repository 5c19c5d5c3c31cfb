"""``TargetEncoder`` as fitted: one ``ordinal`` step (op of family ``encoding``) whose
category values are the fitted ``encodings_`` and whose unknown value is ``target_mean_``.

``TargetEncoder.transform`` (not ``fit_transform``, whose cross-fitting encodes the training
rows with per-fold encodings a bundle does not hold) looks each category up in its feature's
encoding; a category not seen in fit (NaN included, when NaN was not a training category) gets
``target_mean_``. ``target_type_`` binary and continuous: one output per feature;
multiclass: ``n_classes`` outputs per feature (feature-major, as ``encodings_`` is), the
feature's column repeated as an input of the step once per class. Exact lookups.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .encoding import FAMILY, _category_rows, _concat, _field_name, _typed
from .registry import register


@register("sklearn.TargetEncoder")
def export_target_encoder(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if len(est.categories_) != len(cols):
        raise ExportError(f"TargetEncoder was fitted on {len(est.categories_)} features but "
                          f"receives {len(cols)} columns")
    multiclass = est.target_type_ == "multiclass"
    if est.target_type_ not in ("binary", "continuous", "multiclass"):
        raise ExportError(f"TargetEncoder(target_type_={est.target_type_!r}) is not supported")
    k = len(est.classes_) if multiclass else 1
    means = np.atleast_1d(np.asarray(est.target_mean_, dtype=np.float64))
    if len(est.encodings_) != len(cols) * k or len(means) != k:
        raise ExportError("TargetEncoder: encodings_ / target_mean_ do not match the features "
                          "and classes")
    inputs, parts, unknown = [], [], []
    for e_idx, encoding in enumerate(est.encodings_):
        j = e_idx // k  # scikit-learn: feat_idx = e_idx // n_classes, mean_idx = e_idx % ..
        cats = est.categories_[j]
        enc = np.asarray(encoding, dtype=np.float64)
        if len(enc) != len(cats):
            raise ExportError(f"TargetEncoder: feature {j} has {len(cats)} categories but "
                              f"{len(enc)} encodings")
        rows = _category_rows(g, cols[j], e_idx, cats, "TargetEncoder")
        rows["code"] = enc.tolist()
        parts.append(rows)
        inputs.append(cols[j])
        unknown.append(float(means[e_idx % k]))
    # ensure_all_finite='allow-nan': inf is refused; unknown / missing values are encoded
    g.require(cols, nan=True, inf=False)
    outs = g.new_columns("target_encoder", len(inputs))
    tables = {
        "categories": _typed(_concat(parts), "code", np.float64),
        "inputs": {"handle_unknown": np.asarray(["value"] * len(inputs), dtype=object),
                   "unknown_value": np.asarray(unknown, dtype=np.float64),
                   "field": np.asarray([_field_name(g, c) for c in inputs], dtype=object)},
    }
    g.add_step("ordinal", name="target_encoder", inputs=inputs, outputs=outs, family=FAMILY,
               tables=tables, nan_out="none")
    for o in outs:  # finite encodings and means: never NaN, never inf
        g.nan_src[o] = frozenset()
        g.inf_src[o] = frozenset()
    if any(math.isnan(u) for u in unknown):
        raise ExportError("TargetEncoder: target_mean_ is NaN")
    return outs
