"""Feature selectors: scikit-learn's ``SelectorMixin`` estimators as a column selection.

A selector's ``transform`` is ``X[:, get_support()]`` (after its input validation): no step
is emitted, the exporter returns the selected workspace columns. What the selector refuses is
still refused: ``SelectorMixin.transform`` validates *every* input column with
``ensure_all_finite = not allow_nan`` (its tags; for ``SelectFromModel`` / ``RFE`` those of
the inner estimator), so the input fields that may reach any input column get the same NaN /
inf refusal. The selection itself needs only the fitted mask, never the inner estimator: a
``SelectFromModel`` over an estimator tablescore cannot score still exports.

``RFE`` / ``RFECV`` as the last step also predict (``estimator_`` on the selected columns):
that estimator is exported after the selection. Inside a composition (a pipeline step before
the last, a ColumnTransformer / FeatureUnion member) they only select.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import export_into, register, register_transform

SELECTORS = ("sklearn.SelectKBest", "sklearn.SelectPercentile", "sklearn.SelectFpr",
             "sklearn.SelectFdr", "sklearn.SelectFwe", "sklearn.GenericUnivariateSelect",
             "sklearn.SelectFromModel", "sklearn.VarianceThreshold",
             "sklearn.SequentialFeatureSelector")


def selected_columns(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """The columns ``est.transform`` keeps, with its input validation declared on ``g``."""
    name = type(est).__name__
    try:
        mask = np.asarray(est.get_support(), dtype=bool)
    except Exception as exc:  # not fitted, or a prefit estimator without importances
        raise ExportError(f"{name}: cannot read the selected features "
                          f"({type(exc).__name__}: {exc})") from exc
    if mask.shape != (len(cols),):
        raise ExportError(f"{name} selects among {mask.size} features but receives "
                          f"{len(cols)} columns")
    from sklearn.utils import get_tags

    allow = bool(get_tags(est).input_tags.allow_nan)
    # check_array(ensure_all_finite=not allow_nan) on the whole input: NaN and inf together
    g.require(cols, nan=allow, inf=allow)
    return [c for c, keep in zip(cols, mask, strict=True) if keep]


@register(*SELECTORS)
@register_transform("sklearn.RFE", "sklearn.RFECV")
def export_selector(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return selected_columns(est, g, cols)


@register("sklearn.RFE", "sklearn.RFECV")
def export_rfe(est: Any, g: Graph, cols: list[str]) -> list[str]:
    """``RFE.predict`` (and ``predict_proba`` / ``decision_function``) =
    ``estimator_.<method>(transform(X))``."""
    return export_into(est.estimator_, g, selected_columns(est, g, cols))
