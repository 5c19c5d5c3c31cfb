"""Composition: scikit-learn Pipeline and ColumnTransformer (no op of their own: they wire
the steps of the estimators they hold)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import export_into, export_transform, register, register_transform


def _is(step: Any, word: str) -> bool:
    return isinstance(step, str) and step == word


@register("sklearn.Pipeline")
def export_pipeline(est: Any, g: Graph, cols: list[str]) -> list[str]:
    steps = [s for _, s in est.steps if s is not None and not _is(s, "passthrough")]
    for i, step in enumerate(steps):
        # the steps before the last are transformers (an RFE there only selects)
        cols = (export_into if i == len(steps) - 1 else export_transform)(step, g, cols)
    return cols


@register_transform("sklearn.Pipeline")
def export_pipeline_transform(est: Any, g: Graph, cols: list[str]) -> list[str]:
    for _, step in est.steps:
        if step is None or _is(step, "passthrough"):
            continue
        cols = export_transform(step, g, cols)
    return cols


def _indices(ct: Any, name: str, columns: Any, n_in: int) -> list[int]:
    mapping = getattr(ct, "_transformer_to_input_indices", None)
    if mapping is not None and name in mapping:
        return [int(i) for i in mapping[name]]
    # Fall back to resolving the selector ourselves (older scikit-learn).
    names = list(getattr(ct, "feature_names_in_", []))
    if isinstance(columns, slice | int | str):
        columns = [columns] if not isinstance(columns, slice) else list(range(n_in))[columns]
    out = []
    for c in np.atleast_1d(np.asarray(columns, dtype=object)):
        if isinstance(c, bool | np.bool_):
            raise ExportError("boolean column masks need scikit-learn >= 1.2")
        out.append(names.index(c) if isinstance(c, str) else int(c))
    return out


@register("sklearn.ColumnTransformer")
def export_column_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    outputs: list[str] = []
    for name, trans, columns in est.transformers_:
        idx = _indices(est, name, columns, len(cols))
        if isinstance(trans, str) and trans == "drop":
            continue
        if not idx:
            continue
        selected = [cols[i] for i in idx]
        if isinstance(trans, str) and trans == "passthrough":
            outputs += selected
            continue
        outputs += export_transform(trans, g, selected)
    return outputs


@register("sklearn.FeatureUnion")
def export_feature_union(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """``np.hstack`` of each member's ``transform`` (times its ``transformer_weights`` entry:
    ``res * weight``, one exact product per value, as an ``affine`` step with ``mul``);
    ``'drop'`` members are skipped, ``'passthrough'`` ones repeat the input columns."""
    from .preprocessing import _affine

    weights = est.transformer_weights or {}
    outputs: list[str] = []
    for name, trans in est.transformer_list:
        if _is(trans, "drop"):
            continue
        out = list(cols) if _is(trans, "passthrough") else export_transform(trans, g, cols)
        w = weights.get(name)
        if w is not None and out:
            for c in out:
                if g.is_codes(c):
                    raise ExportError(f"FeatureUnion weight {w!r} on '{name}' would multiply "
                                      f"string column '{c}'")
            out = _affine(g, out, f"union_weight.{name}", mul=np.full(len(out), float(w)))
        outputs += out
    return outputs


@register("sklearn.FunctionTransformer")
def export_function_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if est.func is None and est.inverse_func is None:
        return cols  # identity
    raise ExportError(
        "FunctionTransformer with a Python function cannot be exported: a bundle holds "
        "parameters, not code. Express the transform with supported transformers."
    )
