"""Family ``preprocessing`` exporters: scikit-learn scalers and SimpleImputer.

Every scaler becomes one ``affine`` step, with its terms placed so that the scorer performs
the same float64 operations in the same order as scikit-learn (bit-exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import register

FAMILY = "preprocessing"


def _affine(g: Graph, cols: list[str], name: str, *, sub=None, div=None, mul=None, add=None,
            clip: tuple[float, float] | None = None) -> list[str]:
    n = len(cols)

    def vec(v: Any, default: float) -> np.ndarray:
        return np.full(n, default) if v is None else np.asarray(v, dtype=np.float64).copy()

    outs = g.new_columns(name, n)
    params: dict[str, Any] = {"clip": clip is not None}
    if clip is not None:
        params.update(clip_min=float(clip[0]), clip_max=float(clip[1]))
    g.add_step("affine", name=name, inputs=cols, outputs=outs, family=FAMILY,
               params=params, elementwise=True, tables={"columns": {
                   "sub": vec(sub, 0.0), "div": vec(div, 1.0),
                   "mul": vec(mul, 1.0), "add": vec(add, 0.0)}})
    return outs


def _no_codes(g: Graph, cols: list[str], what: str) -> None:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{what} received string column '{c}'; scale numbers only")


@register("sklearn.StandardScaler")
def export_standard_scaler(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _no_codes(g, cols, "StandardScaler")
    g.require(cols, nan=True, inf=False)
    # sklearn: X -= mean_ (with_mean); X /= scale_ (with_std)
    return _affine(g, cols, "standard_scaler",
                   sub=est.mean_ if est.with_mean else None,
                   div=est.scale_ if est.with_std else None)


@register("sklearn.RobustScaler")
def export_robust_scaler(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _no_codes(g, cols, "RobustScaler")
    g.require(cols, nan=True, inf=False)
    return _affine(g, cols, "robust_scaler",
                   sub=est.center_ if est.with_centering else None,
                   div=est.scale_ if est.with_scaling else None)


@register("sklearn.MinMaxScaler")
def export_min_max_scaler(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _no_codes(g, cols, "MinMaxScaler")
    g.require(cols, nan=True, inf=False)
    # sklearn: X *= scale_; X += min_; optional np.clip to feature_range
    clip = tuple(est.feature_range) if est.clip else None
    return _affine(g, cols, "min_max_scaler", mul=est.scale_, add=est.min_, clip=clip)


@register("sklearn.MaxAbsScaler")
def export_max_abs_scaler(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _no_codes(g, cols, "MaxAbsScaler")
    g.require(cols, nan=True, inf=False)
    return _affine(g, cols, "max_abs_scaler", div=est.scale_)


def _is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


@register("sklearn.SimpleImputer")
def export_simple_imputer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if not _is_nan(est.missing_values) and not isinstance(est.missing_values, int | float):
        raise ExportError(f"SimpleImputer(missing_values={est.missing_values!r}) is not "
                          "supported: only NaN/None or a number")
    missing_value = math.nan if _is_nan(est.missing_values) else float(est.missing_values)
    stats = np.asarray(est.statistics_, dtype=object)
    fill = np.zeros(len(cols))
    fill_cat: list[str | None] = [None] * len(cols)
    emit = np.ones(len(cols), dtype=bool)
    keep_empty = getattr(est, "keep_empty_features", False)
    for j, (c, s) in enumerate(zip(cols, stats, strict=True)):
        if _is_nan(s) and not keep_empty:
            emit[j] = False  # scikit-learn drops features whose statistic is NaN
            continue
        if g.is_codes(c):
            g.add_categories(c, [s])
            fill_cat[j] = str(s)
        else:
            try:
                fill[j] = float(s)
            except (TypeError, ValueError) as exc:
                raise ExportError(f"SimpleImputer fill value {s!r} for numeric column "
                                  f"'{c}'") from exc
    # numeric inputs: scikit-learn's check_array refuses inf (allow-nan)
    g.require([c for c in cols if not g.is_codes(c)], nan=True, inf=False)
    kept = [c for c, e in zip(cols, emit, strict=True) if e]
    outs = g.new_columns("imputer", len(kept))
    ind = np.zeros(0, dtype=np.int64)
    ind_outs: list[str] = []
    if est.indicator_ is not None:
        ind = np.asarray(est.indicator_.features_, dtype=np.int64)
        ind_outs = g.new_columns("imputer.missing", len(ind))
    tables: dict[str, Any] = {"columns": {"fill": fill, "emit": emit}}
    if any(v is not None for v in fill_cat):
        tables["columns"]["fill_category"] = np.array(fill_cat, dtype=object)
    if len(ind):
        tables["indicator"] = {"input": ind}
    g.add_step("impute", name="imputer", inputs=cols, outputs=outs + ind_outs,
                      family=FAMILY, params={"missing_value": missing_value},
                      tables=tables, nan_out="none")
    for src, out in zip(kept, outs, strict=True):
        g.propagate_codes(src, out)
        # a numeric missing_value marker leaves NaN alone: NaN still flows through
        if not math.isnan(missing_value):
            g.nan_src[out] = g.nan_src[src]
        g.inf_src[out] = g.inf_src[src]
    return outs + ind_outs
