"""Turn fitted models into parameter bundles.

>>> from exporters import export
>>> export(fitted_pipeline, "models/churn/3", sample=X_valid)   # doctest: +SKIP

The exporter walks the estimator through the class registry (:mod:`exporters.registry`), emits
IR steps, records verification rows from ``sample`` (the original model's outputs on them),
checks that the tablescore scorer reproduces those rows, and only then writes the bundle
atomically.
"""

from __future__ import annotations

import heapq
import os
import sys
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

__all__ = ["build_bundle", "choose_verification_rows", "export", "supported", "to_pmml"]

#: most verification rows chosen from the sample (bundle size and load-time check stay small)
DEFAULT_VERIFICATION_ROWS = 256
#: quantile bins per numeric feature of the drift reference (10..20; 0: no reference)
DEFAULT_DRIFT_BINS = 10
#: fewest rows kept when the sample has them: coverage rows are topped up in sample order
MIN_VERIFICATION_ROWS = 64
#: rows of the sample the selection looks at (the original's apply is run on them)
SELECTION_POOL_ROWS = 50_000


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


def _library_spellings(label: Any) -> set[str]:
    """The names the supported libraries give a DataFrame column ``label``.

    scikit-learn and XGBoost keep ``str(label)`` (XGBoost joins a MultiIndex label's parts
    with spaces); LightGBM replaces every space with ``_`` (``"fixed acidity"`` ->
    ``"fixed_acidity"``, in its C++ ``Dataset::set_feature_names``).
    """
    s = str(label)
    out = {s, s.replace(" ", "_")}
    if isinstance(label, tuple):
        out.add(" ".join(str(p) for p in label))
    return out


def _caller_names(names: list[str], sample: Any) -> list[str]:
    """Map the estimator's input names back to the columns of the caller's ``sample`` frame.

    A library may have rewritten the caller's column names when it was fitted (LightGBM:
    spaces become ``_``), so ``names`` need not be columns of ``sample``. The original model
    reads the frame by position then (LightGBM and XGBoost refuse another width), so column
    ``j`` of the sample is input ``j`` when every column's library spelling is ``names[j]``:
    the bundle is then named, and scored, by the caller's columns. Matching is positional and
    exact, never by a looser lookup, so names that collide after a rewrite cannot be swapped.
    """
    labels = list(sample.columns)
    as_str = [str(c) for c in labels]
    if all(n in as_str for n in names):
        return names  # the caller's own names (the sample may hold more columns)
    if len(labels) == len(names) and all(
            n in _library_spellings(c) for c, n in zip(labels, names, strict=True)):
        if len(set(as_str)) != len(as_str):
            raise ExportError(f"the sample's column names are not unique as strings: "
                              f"{as_str}")
        return as_str
    missing = [n for n in names if n not in as_str]
    raise ExportError(
        f"the model's inputs {missing} are not columns of the sample, and the sample's "
        f"columns {as_str} are not the model's {names} in the model's order under any "
        "renaming its library does (LightGBM: spaces -> '_'): pass the frame the model was "
        "fitted on, or feature_names=")


def _fitted_names(est: Any) -> list[str] | None:
    """The input names the model was fitted with: scikit-learn's ``feature_names_in_``, or a
    raw LightGBM / XGBoost Booster's own (LightGBM's ``Column_<i>`` placeholders of a model
    fitted on an array are no names); None when it has none."""
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    kind = (type(est).__module__.split(".")[0], type(est).__name__)
    if kind == ("lightgbm", "Booster"):
        names = list(est.feature_name())
        if names == [f"Column_{i}" for i in range(len(names))]:
            return None
        return [str(n) for n in names]
    if kind == ("xgboost", "Booster") and est.feature_names is not None:
        return [str(n) for n in est.feature_names]
    return None


def infer_fields(est: Any, sample: Any = None, *,
                 feature_names: list[str] | None = None) -> tuple[list[Field], bool]:
    """Input schema from the estimator and the sample.

    Parameters
    ----------
    est : fitted estimator
        Its ``feature_names_in_`` (or ``n_features_in_``) gives the inputs.
    sample : DataFrame or array, optional
        A frame names the inputs when the estimator does not, and its columns are the names
        the bundle uses when the estimator's library renamed them (:func:`_caller_names`).
    feature_names : list of str, optional
        Explicit names (win over everything else).

    Returns
    -------
    fields : list of Field
        One per input, in the estimator's order.
    named : bool
        Whether the names are real (not the ``x0, x1, ..`` placeholders).
    """
    named = False
    if feature_names is not None:
        names = list(feature_names)
        named = True
    elif _fitted_names(est) is not None:
        names = _fitted_names(est)
        if sample is not None and _is_frame(sample):
            names = _caller_names(names, sample)
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
    if len(set(names)) != len(names):
        raise ExportError(f"input names are not unique: {names}")
    arr = None
    if sample is not None and not _is_frame(sample):
        arr = np.asarray(sample)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ExportError(f"sample has shape {arr.shape}; the model expects "
                              f"{len(names)} features")
    columns = _frame_columns(sample) if sample is not None and _is_frame(sample) else {}
    fields = []
    for j, n in enumerate(names):
        ftype = "double"
        if arr is not None:
            ftype = "double" if arr.dtype.kind in "fiub" else _field_type(arr[:, j])
        elif n in columns:
            ftype = _field_type(sample[columns[n]])
        fields.append(Field(name=n, type=ftype))
    return fields, named


def _frame_columns(frame: Any) -> dict[str, Any]:
    """Field name -> the frame's column label (labels need not be strings: ``0`` is ``"0"``)."""
    return {str(c): c for c in frame.columns}


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


def _rows(sample: Any, idx: np.ndarray) -> Any:
    return sample.iloc[idx] if _is_frame(sample) else np.asarray(sample)[idx]


def _verification_inputs(sample: Any, fields: list[Field], idx: np.ndarray) -> tuple[dict, Any]:
    part = _rows(sample, idx)
    if _is_frame(sample):
        labels = _frame_columns(part)
        cols = {f.name: part[labels[f.name]].to_numpy() for f in fields}
    else:
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


def _leaf_ids(est: Any, X: Any) -> np.ndarray | None:
    """``(n_rows, n_trees)`` leaf index of every row in every tree, from the original model
    (``apply`` / ``pred_leaf``), or None when it is not a tree ensemble that can say."""
    final, Xt = est, X
    if type(est).__name__ == "Pipeline" and hasattr(est, "steps"):
        final = est.steps[-1][1]
        try:
            Xt = est[:-1].transform(X) if len(est.steps) > 1 else X
        except Exception:  # any failure: fall back to spanning rows
            return None
    lib, cls = type(final).__module__.split(".")[0], type(final).__name__
    try:
        if lib == "lightgbm":
            leaves = final.predict(Xt, pred_leaf=True)
        elif lib == "xgboost" and cls == "Booster":
            import xgboost

            leaves = final.predict(xgboost.DMatrix(Xt), pred_leaf=True)
        elif lib in ("xgboost", "sklearn") and hasattr(final, "apply") and (
                hasattr(final, "estimators_") or hasattr(final, "tree_") or lib == "xgboost"):
            leaves = final.apply(Xt)
        else:
            return None
    except Exception:  # best effort: the verification still runs on spanning rows
        return None
    leaves = np.asarray(leaves)
    return leaves.reshape(leaves.shape[0], -1).astype(np.int64)


def _greedy_cover(leaves: np.ndarray, budget: int) -> tuple[list[int], int, int]:
    """Rows that together reach as many distinct (tree, leaf) pairs as possible.

    Greedy max coverage (each pick adds the most leaves not yet covered; ties to the earlier
    row), evaluated lazily: a row's gain only shrinks, so a stale gain is an upper bound.
    Returns ``(rows in pick order, leaves covered, distinct leaves the rows reach)``.
    """
    n, n_trees = leaves.shape
    # one global id per (tree, leaf): leaf ids are renumbered per tree
    gid = np.empty_like(leaves)
    total = 0
    for t in range(n_trees):
        uniq, inv = np.unique(leaves[:, t], return_inverse=True)
        gid[:, t] = inv.ravel() + total
        total += len(uniq)
    covered = np.zeros(total, dtype=bool)
    heap = [(-n_trees, i) for i in range(n)]
    chosen: list[int] = []
    while heap and len(chosen) < budget:
        _, i = heapq.heappop(heap)
        gain = int(np.count_nonzero(~covered[gid[i]]))
        if gain == 0:
            continue
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, i))
            continue
        chosen.append(i)
        covered[gid[i]] = True
    return chosen, int(covered.sum()), total


def _spanning_rows(table: dict[str, np.ndarray], fields: list[Field], budget: int) -> list[int]:
    """Rows holding each numeric input's minimum and maximum (and a missing value, if any)
    and each category of each string input, in field order, up to ``budget``."""
    rows: list[int] = []
    for f in fields:
        col = table[f.name]
        if f.type == "string":
            seen: dict[Any, int] = {}
            for i, v in enumerate(col.tolist()):
                seen.setdefault(v, i)
            rows += list(seen.values())
        else:
            finite = np.isfinite(col)
            if finite.any():
                where = np.flatnonzero(finite)
                rows += [int(where[np.argmin(col[finite])]), int(where[np.argmax(col[finite])])]
            for mask in (np.isnan(col), np.isinf(col)):
                if mask.any():
                    rows.append(int(np.flatnonzero(mask)[0]))
    return list(dict.fromkeys(rows))[:budget]


def _model_leaves(bundle: Bundle) -> int:
    """Leaves of the bundle's tree ensembles (nodes without children)."""
    return sum(int(np.count_nonzero(np.asarray(s.tables["nodes"]["left"]) < 0))
               for s in bundle.steps if s.op == "tree_ensemble" and "nodes" in s.tables)


def choose_verification_rows(est: Any, sample: Any, bundle: Bundle,
                             max_rows: int = DEFAULT_VERIFICATION_ROWS
                             ) -> tuple[np.ndarray, dict[str, Any]]:
    """Sample rows that exercise as much of the model as possible, and what they cover.

    Tree ensembles: greedy max coverage of the leaves the original model's ``apply`` says
    each row reaches (so an edited leaf that the sample reaches is caught at load). Other
    models: rows at each input's minimum and maximum and one per category. Both are topped up
    with rows in sample order to :data:`MIN_VERIFICATION_ROWS`; at most ``max_rows``.

    Returns
    -------
    rows : ndarray of int
        Row positions in ``sample``, ascending.
    coverage : dict
        ``method`` (``"leaves"`` or ``"span"``), ``rows``, and for ``"leaves"``:
        ``leaves_covered``, ``leaves_reached`` (distinct leaves the sample pool reaches),
        ``leaves_total`` (leaves of the bundle's trees), ``share`` (covered / total).
    """
    n = len(sample) if _is_frame(sample) else np.asarray(sample).shape[0]
    pool = min(n, SELECTION_POOL_ROWS)
    head = _rows(sample, np.arange(pool))
    leaves = _leaf_ids(est, head) if _model_leaves(bundle) else None
    coverage: dict[str, Any]
    if leaves is not None and leaves.shape[0] == pool:
        picked, covered, reached = _greedy_cover(leaves, max_rows)
        total = _model_leaves(bundle)
        coverage = {"method": "leaves", "leaves_covered": covered, "leaves_reached": reached,
                    "leaves_total": total, "share": covered / total if total else 1.0}
    else:
        table, _ = _verification_inputs(sample, bundle.inputs, np.arange(pool))
        picked = _spanning_rows(table, bundle.inputs, max_rows)
        coverage = {"method": "span"}
    chosen = dict.fromkeys(picked)
    for i in range(n):  # top up in sample order
        if len(chosen) >= min(max_rows, MIN_VERIFICATION_ROWS, n):
            break
        chosen.setdefault(i)
    rows = np.array(sorted(chosen), dtype=np.int64)
    coverage["rows"] = len(rows)
    return rows, coverage


def build_bundle(est: Any, *, sample: Any = None, name: str = "model", version: str = "1",
                 feature_names: list[str] | None = None,
                 verification_rows: int = DEFAULT_VERIFICATION_ROWS,
                 drift_bins: int = DEFAULT_DRIFT_BINS) -> Bundle:
    """Build the in-memory bundle for ``est`` (no disk access). See :func:`export`."""
    _check_fitted(est)
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
        idx, coverage = choose_verification_rows(est, sample, bundle, verification_rows)
        vin, part = _verification_inputs(sample, bundle.inputs, idx)
        if not named and len(bundle.inputs) != np.asarray(part).shape[1]:
            raise ExportError(f"sample has {np.asarray(part).shape[1]} columns, the model "
                              f"expects {len(bundle.inputs)}")
        expected = _original_outputs(est, part, bundle.outputs)
        bundle.verification = Verification(inputs=vin, expected=expected, abs_tol=tol.abs,
                                           rel_tol=tol.rel, coverage=coverage)
    if sample is not None and drift_bins:
        bundle.drift_reference = _drift_reference(bundle, sample, drift_bins)
    return bundle


def _check_fitted(est: Any) -> None:
    """ExportError for a scikit-learn estimator that was never fitted (its exporter would
    fail on a missing attribute)."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:
        return
    if isinstance(est, BaseEstimator):
        try:
            check_is_fitted(est)
        except NotFittedError:
            raise ExportError(f"{type(est).__name__} is not fitted: fit it before exporting "
                              "it") from None


def _original_outputs(est: Any, part: Any, outputs: list[Any]) -> dict[str, np.ndarray]:
    """:func:`expected_outputs` of the original on the sample's rows ``part``: a frame gives
    the columns the estimator was fitted on, in its order (the sample may hold more, or
    another order); the original refusing the sample is the caller's error (ExportError),
    not a crash."""
    names = _fitted_names(est)
    if _is_frame(part) and names is not None:
        labels = _frame_columns(part)
        if all(str(n) in labels for n in names):
            part = part[[labels[str(n)] for n in names]]
    # the bundle's numbers are float64: scikit-learn computes in float32 for float32 inputs
    # (about 1e-7 relative apart), so the original scores the sample as float64 too
    if _is_frame(part):
        low = [c for c, t in part.dtypes.items()
               if getattr(t, "kind", "") == "f" and t.itemsize < 8]
        if low:
            part = part.astype(dict.fromkeys(low, np.float64))
    elif isinstance(part, np.ndarray) and part.dtype.kind == "f" and part.dtype.itemsize < 8:
        part = part.astype(np.float64)
    try:
        return expected_outputs(est, part, outputs)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the original model could not score the sample ({first}): give a "
                          "sample of the columns and types it was fitted on") from exc


def _drift_reference(bundle: Bundle, sample: Any, bins: int) -> dict[str, Any]:
    """The reference profile of the whole sample (docs/bundle-format.md §7), as the
    manifest's ``drift_reference`` object."""
    from scorer.monitoring.profile import reference_profile

    n = len(sample) if _is_frame(sample) else np.asarray(sample).shape[0]
    columns, _ = _verification_inputs(sample, bundle.inputs, np.arange(n))
    return reference_profile(bundle, columns, bins=bins).to_json()


def export(est: Any, path: str | os.PathLike[str], *, sample: Any = None,
           name: str | None = None, version: str | None = None,
           feature_names: list[str] | None = None, overwrite: bool = False,
           verification_rows: int = DEFAULT_VERIFICATION_ROWS,
           drift_bins: int = DEFAULT_DRIFT_BINS) -> Bundle:
    """Export a fitted estimator or pipeline to a bundle directory.

    Parameters
    ----------
    est : fitted estimator
        scikit-learn estimator or Pipeline, XGBoost or LightGBM sklearn-API model.
    path : path-like
        Bundle directory to create (atomically).
    sample : DataFrame or array of shape (n_rows, n_features), optional
        Representative inputs. Up to ``verification_rows`` of its rows, chosen to cover the
        model (:func:`choose_verification_rows`: for tree ensembles the rows reaching the most
        distinct leaves), and the original model's outputs on them are stored in the bundle
        and re-checked whenever it is loaded.
        Strongly recommended: without it nothing proves the bundle reproduces the model.
        A frame's columns name the bundle's inputs, also where the model's library renamed
        them when it was fitted (LightGBM's ``fixed_acidity`` for ``fixed acidity``): the
        columns are matched to the model's inputs by position and must be the model's, in
        its order; labels that are not strings are named ``str(label)``.
        The whole sample also becomes the bundle's reference profile for drift monitoring
        (``drift_reference``: quantile bins per numeric input, category frequencies per
        string input, the same for every output; docs/monitoring.md).
    name, version : str, optional
        Model name and version recorded in the manifest. Default: for a version directory of
        a model repository (``models/churn/3``), the model's directory name and the version
        directory's (``churn``, ``3``); else the directory name and ``"1"``
        (:func:`scorer.bundle.default_identity`).
    feature_names : list of str, optional
        Input field names for a model fitted on a bare array.
    overwrite : bool
        Replace an existing bundle at ``path``.
    drift_bins : int
        Quantile bins per numeric feature of the drift reference (10..20); 0 stores none.

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
    from scorer.bundle import default_identity
    from scorer.model import Model

    name, version = default_identity(path, name or None, version)
    bundle = build_bundle(est, sample=sample, name=name,
                          version=version, feature_names=feature_names,
                          verification_rows=verification_rows, drift_bins=drift_bins)
    Model(bundle, verify=True)  # refuse to write a bundle that does not reproduce the model
    write_bundle(bundle, path, overwrite=overwrite)
    return bundle


from .to_pmml import to_pmml  # noqa: E402  (needs infer_fields above)
