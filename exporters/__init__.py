"""Turn fitted models into parameter bundles.

>>> from exporters import export
>>> export(fitted_pipeline, "models/churn/3", sample=X_valid)   # doctest: +SKIP

The exporter walks the estimator through the class registry (:mod:`exporters.registry`), emits
IR steps, records verification rows from ``sample`` (the original model's outputs on them),
checks that the tablescore scorer reproduces those rows, and only then writes the bundle
atomically.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from scorer import __version__
from scorer.build.graph import Graph
from scorer.bundle import write_bundle
from scorer.errors import ExportError
from scorer.ir import Bundle, Field, Verification
from scorer.tolerances import tolerance_for

from .outputs import expected_outputs
from .registry import export_into, supported

__all__ = ["build_bundle", "export", "supported", "to_pmml"]

DEFAULT_VERIFICATION_ROWS = 64


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "iloc")


def _field_type(values: Any) -> str:
    dtype = getattr(values, "dtype", None)
    categories = getattr(dtype, "categories", None)
    if categories is not None:  # pandas categorical: scikit-learn sees the category values
        return _field_type(np.asarray(categories))
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "double"
    # object / pandas string / category: strings unless every present value is a number
    vals = [v for v in np.asarray(values, dtype=object).tolist()
            if v is not None and not (isinstance(v, float) and v != v)]
    if vals and all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
                    for v in vals):
        return "double"
    return "string"


def infer_fields(est: Any, sample: Any = None, *,
                 feature_names: list[str] | None = None) -> tuple[list[Field], bool]:
    """Input schema from the estimator and the sample. Returns ``(fields, named)``."""
    named = False
    if feature_names is not None:
        names = list(feature_names)
        named = True
    elif getattr(est, "feature_names_in_", None) is not None:
        names = [str(n) for n in est.feature_names_in_]
        named = True
    elif sample is not None and _is_frame(sample):
        names = [str(c) for c in sample.columns]
        named = True
    elif getattr(est, "n_features_in_", None) is not None:
        names = [f"x{i}" for i in range(int(est.n_features_in_))]
    elif sample is not None:
        names = [f"x{i}" for i in range(np.asarray(sample).shape[1])]
    else:
        raise ExportError("cannot tell the input fields: pass sample= or feature_names=")
    arr = None
    if sample is not None and not _is_frame(sample):
        arr = np.asarray(sample)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ExportError(f"sample has shape {arr.shape}; the model expects "
                              f"{len(names)} features")
    fields = []
    for j, n in enumerate(names):
        ftype = "double"
        if arr is not None:
            ftype = "double" if arr.dtype.kind in "fiub" else _field_type(arr[:, j])
        elif sample is not None and n in sample.columns:
            ftype = _field_type(sample[n])
        fields.append(Field(name=n, type=ftype))
    return fields, named


def _producer(est: Any) -> dict[str, Any]:
    libs = {"numpy": np.__version__}
    for mod, name in (("sklearn", "scikit-learn"), ("xgboost", "xgboost"),
                      ("lightgbm", "lightgbm")):
        if mod in sys.modules:
            libs[name] = getattr(sys.modules[mod], "__version__", "?")
    return {
        "library": "tablescore",
        "version": __version__,
        "exporter": "exporters",
        "estimator": f"{type(est).__module__.split('.')[0]}.{type(est).__name__}",
        "libraries": libs,
    }


def _verification_inputs(sample: Any, fields: list[Field], rows: int) -> tuple[dict, Any]:
    if _is_frame(sample):
        part = sample.iloc[:rows]
        cols = {f.name: part[f.name].to_numpy() for f in fields}
    else:
        arr = np.asarray(sample)
        part = arr[:rows]
        cols = {f.name: part[:, j] for j, f in enumerate(fields)}
    table = {}
    for f in fields:
        col = cols[f.name]
        if f.type == "string":
            table[f.name] = np.array(
                [None if v is None or (isinstance(v, float) and v != v) else str(v)
                 for v in np.asarray(col, dtype=object)], dtype=object)
        else:
            table[f.name] = np.asarray(col, dtype=np.float64)
    return table, part


def build_bundle(est: Any, *, sample: Any = None, name: str = "model", version: str = "1",
                 feature_names: list[str] | None = None,
                 verification_rows: int = DEFAULT_VERIFICATION_ROWS) -> Bundle:
    """Build the in-memory bundle for ``est`` (no disk access). See :func:`export`."""
    fields, named = infer_fields(est, sample, feature_names=feature_names)
    g = Graph(fields)
    cols = export_into(est, g, list(g.order))
    if not g.outputs:
        from scorer.build.outputs import set_transform_outputs

        set_transform_outputs(g, cols)
    if named:
        used = {c for s in g.steps for c in s.inputs} | {
            c for o in g.outputs for c in ([o.column] if o.column else []) + (o.columns or [])}
        g.order = [n for n in g.order if n in used]
    bundle = g.build(name=name, version=version, producer=_producer(est))
    if sample is not None and verification_rows > 0:
        tol = tolerance_for(sorted(g.families))
        vin, part = _verification_inputs(sample, bundle.inputs, verification_rows)
        if not named and len(bundle.inputs) != np.asarray(part).shape[1]:
            raise ExportError(f"sample has {np.asarray(part).shape[1]} columns, the model "
                              f"expects {len(bundle.inputs)}")
        expected = expected_outputs(est, part, bundle.outputs)
        bundle.verification = Verification(inputs=vin, expected=expected, abs_tol=tol.abs,
                                           rel_tol=tol.rel)
    return bundle


def export(est: Any, path: str | os.PathLike[str], *, sample: Any = None,
           name: str | None = None, version: str = "1",
           feature_names: list[str] | None = None, overwrite: bool = False,
           verification_rows: int = DEFAULT_VERIFICATION_ROWS) -> Bundle:
    """Export a fitted estimator or pipeline to a bundle directory.

    Parameters
    ----------
    est : fitted estimator
        scikit-learn estimator or Pipeline, XGBoost or LightGBM sklearn-API model.
    path : path-like
        Bundle directory to create (atomically).
    sample : DataFrame or array of shape (n_rows, n_features), optional
        Representative inputs. The first ``verification_rows`` rows and the original model's
        outputs on them are stored in the bundle and re-checked whenever it is loaded.
        Strongly recommended: without it nothing proves the bundle reproduces the model.
    name, version : str
        Model name (default: the directory name) and version recorded in the manifest.
    feature_names : list of str, optional
        Input field names for a model fitted on a bare array.
    overwrite : bool
        Replace an existing bundle at ``path``.

    Returns
    -------
    Bundle
        The bundle as written (with its fingerprint).

    Raises
    ------
    UnsupportedEstimatorError
        No exporter for a class in the pipeline; the message lists what is supported.
    VerificationError
        The tablescore scorer does not reproduce the original model on ``sample``; nothing is
        written.
    """
    from scorer.model import Model

    bundle = build_bundle(est, sample=sample, name=name or Path(path).name or "model",
                          version=version, feature_names=feature_names,
                          verification_rows=verification_rows)
    Model(bundle, verify=True)  # refuse to write a bundle that does not reproduce the model
    write_bundle(bundle, path, overwrite=overwrite)
    return bundle


from .to_pmml import to_pmml  # noqa: E402  (needs infer_fields above)
