"""Composition: scikit-learn Pipeline and ColumnTransformer (no op of their own: they wire
the steps of the estimators they hold)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import export_into, register


@register("sklearn.Pipeline")
def export_pipeline(est: Any, g: Graph, cols: list[str]) -> list[str]:
    for _, step in est.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        cols = export_into(step, g, cols)
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
        outputs += export_into(trans, g, selected)
    return outputs


@register("sklearn.FunctionTransformer")
def export_function_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if est.func is None and est.inverse_func is None:
        return cols  # identity
    raise ExportError(
        "FunctionTransformer with a Python function cannot be exported: a bundle holds "
        "parameters, not code. Express the transform with supported transformers."
    )
