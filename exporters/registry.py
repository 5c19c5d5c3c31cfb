"""Exporter registry: estimator class -> function that emits its bundle steps.

Keys are ``(top-level package, class name)`` so that registering an XGBoost or LightGBM
exporter does not import those libraries, and so that private module moves inside a library
do not break the lookup. Subclasses of a registered class use its exporter (MRO walk).

An exporter has the signature ``fn(estimator, graph, columns) -> list[str]``: it reads
workspace ``columns`` and returns the columns it produced. A final estimator also sets
``graph.outputs`` and ``graph.task``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from scorer.build.graph import Graph
from scorer.errors import UnsupportedEstimatorError

Exporter = Callable[[Any, Graph, list[str]], list[str]]

_EXPORTERS: dict[tuple[str, str], Exporter] = {}
# Exporters used where the estimator is a transformer inside a composition (a pipeline step
# before the last, a ColumnTransformer / FeatureUnion member): e.g. RFE, which as the last
# step also predicts, selects columns only there.
_TRANSFORMS: dict[tuple[str, str], Exporter] = {}

# Family modules, imported on first use. A module whose library is absent is skipped.
_FAMILY_MODULES = (
    "exporters.pipeline",
    "exporters.preprocessing",
    "exporters.encoding",
    "exporters.linear",
    "exporters.tree_ensemble",
    "exporters.xgboost",
    "exporters.lightgbm",
    "exporters.naive_bayes",
    "exporters.svm",
    "exporters.neural_network",
    "exporters.clustering",
    "exporters.nearest_neighbor",
    "exporters.feature_selection",
    "exporters.decomposition",
    "exporters.rowwise",
    "exporters.ensemble",
    "exporters.calibration",
    "exporters.quantile",
    "exporters.power",
    "exporters.target_encoding",
    "exporters.weight_boosting",
    "exporters.iforest",
    "exporters.spline",
)
_loaded = False


def register(*names: str) -> Callable[[Exporter], Exporter]:
    """Register an exporter for classes given as ``"package.ClassName"``."""

    def deco(fn: Exporter) -> Exporter:
        for full in names:
            pkg, _, cls = full.rpartition(".")
            _EXPORTERS[(pkg, cls)] = fn
        return fn

    return deco


def register_transform(*names: str) -> Callable[[Exporter], Exporter]:
    """Register the exporter used when the class appears as a transformer (see
    :func:`export_transform`); without one, its :func:`register` exporter is used."""

    def deco(fn: Exporter) -> Exporter:
        for full in names:
            pkg, _, cls = full.rpartition(".")
            _TRANSFORMS[(pkg, cls)] = fn
        return fn

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _FAMILY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            # Only a missing *third-party* library is acceptable (xgboost without xgboost).
            if exc.name and exc.name.split(".")[0] in ("exporters",):
                if exc.name != mod:
                    raise
                continue
            if exc.name and exc.name.split(".")[0] in ("xgboost", "lightgbm"):
                continue
            raise
    _loaded = True


def _key(cls: type) -> tuple[str, str]:
    return (cls.__module__.split(".")[0], cls.__name__)


def exporter_for(est: Any) -> Exporter:
    _load()
    for cls in type(est).__mro__:
        fn = _EXPORTERS.get(_key(cls))
        if fn is not None:
            return fn
    raise UnsupportedEstimatorError(
        f"no exporter for {type(est).__module__.split('.')[0]}.{type(est).__name__}; "
        f"supported: {', '.join(supported())}"
    )


def supported() -> list[str]:
    _load()
    return sorted(f"{pkg}.{cls}" for pkg, cls in _EXPORTERS)


def export_into(est: Any, g: Graph, columns: list[str]) -> list[str]:
    """Emit ``est``'s steps reading ``columns``; return its output columns."""
    return exporter_for(est)(est, g, columns)


def export_transform(est: Any, g: Graph, columns: list[str]) -> list[str]:
    """Emit ``est``'s steps as a transformer (its ``transform`` output), reading ``columns``."""
    _load()
    for cls in type(est).__mro__:
        fn = _TRANSFORMS.get(_key(cls))
        if fn is not None:
            return fn(est, g, columns)
        if _key(cls) in _EXPORTERS:
            break
    return export_into(est, g, columns)
