"""Family ``spline``: scikit-learn's ``SplineTransformer`` as one ``bspline`` step (op in
:mod:`scorer.kernels.spline`, docs/bundle-format.md §6.16).

Each input's knot vector is ``bsplines_[j].t`` (the base knots with ``degree`` knots added on
each side, as ``fit`` built them); the kernel evaluates the basis as SciPy's
``BSpline.__call__`` does (the same interval, de Boor's recursion, the same sum of the 0/1
coefficient matrix: bit-exact). ``constant`` / ``linear`` extrapolation needs the basis values
and first derivatives at the boundary knots: taken here from the fitted ``BSpline`` (SciPy
computes them, as ``transform`` does on every call) into the ``edges`` table.

Missing values (``handle_missing``): ``'error'`` (the default) refuses NaN and inf at the
input, as ``validate_data`` does; ``'zeros'`` gives a NaN value all-zero features and lets inf
through (``ensure_all_finite=False``): its features are then what ``transform`` computes
(constant edge values, or NaN / ±inf). As a transformer before another step a row whose
features are not finite is refused, as the next estimator's ``check_array`` refuses them.

``sparse_output=True`` gives the same values as the dense output (the bundle is dense):
scikit-learn's sparse path (``BSpline.design_matrix``) raises on an inf under ``'continue'`` /
``'periodic'`` and for degree 0 periodic splines; those are refused (inf at the input; the
estimator at export).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import register, register_transform

FAMILY = "spline"


@register("sklearn.SplineTransformer")
def export_spline_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return _export(est, g, cols, refuse_nonfinite=False)


@register_transform("sklearn.SplineTransformer")
def export_spline_transform(est: Any, g: Graph, cols: list[str]) -> list[str]:
    return _export(est, g, cols, refuse_nonfinite=True)


def _export(est: Any, g: Graph, cols: list[str], *, refuse_nonfinite: bool) -> list[str]:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"SplineTransformer received string column '{c}': encode it "
                              "first (OrdinalEncoder)")
    splines = list(est.bsplines_)
    if len(splines) != len(cols):
        raise ExportError(f"SplineTransformer has {len(splines)} splines but receives "
                          f"{len(cols)} columns")
    d = int(est.degree)
    mode = est.extrapolation
    if mode not in ("error", "constant", "linear", "continue", "periodic"):
        raise ExportError(f"SplineTransformer(extrapolation={mode!r}) is not supported")
    missing = getattr(est, "handle_missing", "error")
    if missing not in ("error", "zeros"):
        raise ExportError(f"SplineTransformer(handle_missing={missing!r}) is not supported")
    sparse = bool(getattr(est, "sparse_output", False))
    if sparse and mode == "periodic" and d == 0:
        raise ExportError("SplineTransformer(sparse_output=True, extrapolation='periodic', "
                          "degree=0): scikit-learn's sparse path cannot transform it "
                          "(BSpline.design_matrix: inconsistent shapes); use "
                          "sparse_output=False")
    knots = [np.asarray(s.t, dtype=np.float64) for s in splines]
    if not all(np.isfinite(t).all() for t in knots):
        raise ExportError("SplineTransformer: knots must be finite (a column was fitted with "
                          "infinite values)")
    ns = int(splines[0].c.shape[1])
    for s, t in zip(splines, knots, strict=True):
        if s.k != d or s.c.shape[1] != ns or len(t) - d - 1 - (d if mode == "periodic" else 0) \
                != ns:
            raise ExportError("SplineTransformer: bsplines_ do not match degree / n_knots")
    # validate_data(ensure_all_finite=(handle_missing != 'zeros'))
    if missing == "error":
        g.require(cols, nan=False, inf=False)
    elif sparse and mode in ("continue", "periodic", "error"):
        # the sparse path zeroes a NaN row of feature j >= 1 in columns outside that
        # feature's block, so its features are those of the batch's minimum (nanmin):
        # batch-dependent, not reproducible row by row; refused. design_matrix refuses inf.
        g.require(cols[1:], nan=False, inf=mode == "error")
        g.require(cols, nan=True, inf=mode == "error")
    params: dict[str, Any] = {"degree": d, "extrapolation": mode,
                              "include_bias": bool(est.include_bias),
                              "refuse_nonfinite": refuse_nonfinite}
    tables: dict[str, dict[str, np.ndarray]] = {"knots": {
        "input": np.repeat(np.arange(len(cols), dtype=np.int32), [len(t) for t in knots]),
        "t": np.concatenate(knots)}}
    if mode in ("constant", "linear"):
        tables.update(_edges(splines, knots, d, ns, mode, sparse))
        # degree 0: transform assigns f_max[-0:] (all ns values) to an empty slice and
        # raises for a value above the last knot unless ns == 1
        # (the sparse path assigns them to all ns columns instead: hi_columns)
        params["refuse_above"] = mode == "constant" and d == 0 and ns != 1 and not sparse
    n_out = ns if est.include_bias else ns - 1
    if n_out == 0:
        raise ExportError("SplineTransformer(include_bias=False) with one spline per feature "
                          "outputs no columns")
    names = [f"{c}.sp{i}" for c in range(len(cols)) for i in range(n_out)]
    outs = g.new_columns("spline", names=names)
    g.add_step("bspline", name="spline_transformer", inputs=cols, outputs=outs,
               family=FAMILY, params=params, tables=tables, nan_out="none")
    # A NaN in gives zeros. Whether an inf in gives finite features depends on the mode
    # and degree (constant extrapolation, degree 0: finite), so no field refuses inf for
    # the steps after this one: the op refuses a row with non-finite features itself
    # (refuse_nonfinite) where they would.
    for o in outs:
        g.inf_src[o] = frozenset()
    return outs


def _edges(splines: list[Any], knots: list[np.ndarray], d: int, ns: int, mode: str,
           sparse: bool) -> dict[str, dict[str, np.ndarray]]:
    """The ``bounds`` and ``edges`` tables: per input the boundaries ``transform`` uses, the
    number of columns it extrapolates, and the basis values / slopes there, computed by the
    fitted ``BSpline`` as ``transform`` computes them.

    scikit-learn 1.9.0's ``'linear'`` branch raises its ``degree`` variable to 2 the first
    time it is <= 1 (feature 0) and never lowers it again, so for ``degree`` 0 / 1 the second
    feature on takes ``t[2]`` / ``t[-3]`` as boundaries (degree 0: ``t[1]`` / ``t[-2]`` for
    the second): reproduced per input, as the transform's output is what a bundle must give.
    ``'constant'`` with degree 0 sets no column below; above, the dense path raises
    (``refuse_above``) and the sparse path sets all of them (``f_max[-0:]``).
    """
    lo, hi, ecols, rows = [], [], [], []
    deg = d
    for j, (s, t) in enumerate(zip(splines, knots, strict=True)):
        if deg + 1 > len(t):
            raise ExportError(
                f"SplineTransformer(extrapolation={mode!r}, degree={d}) with {len(t)} knots: "
                f"scikit-learn's transform fails for feature {j} (it reads knot t[{deg}])")
        xmin, xmax = t[deg], t[-deg - 1]
        if mode == "linear" and deg <= 1:
            deg += 1
        e = deg
        if e > ns:
            raise ExportError(
                f"SplineTransformer(extrapolation={mode!r}, degree={d}) with {ns} spline "
                f"column(s): scikit-learn's transform extrapolates {e} columns of feature {j} "
                "(an index error, or a write into the previous feature's columns)")
        lo.append(xmin)
        hi.append(xmax)
        ecols.append((e, ns if sparse and mode == "constant" and d == 0 else e))
        # transform's own calls: spl(xmin), spl(xmax), spl(xmin, nu=1), spl(xmax, nu=1)
        rows.append(np.column_stack([s(xmin), s(xmax), s(xmin, nu=1), s(xmax, nu=1)]))
    e = np.vstack(rows)
    k = len(splines)
    ec = np.array(ecols, dtype=np.int32)
    return {"bounds": {"input": np.arange(k, dtype=np.int32), "lo": np.array(lo),
                       "hi": np.array(hi), "lo_columns": ec[:, 0], "hi_columns": ec[:, 1]},
            "edges": {"input": np.repeat(np.arange(k, dtype=np.int32), ns),
                      "lo_value": e[:, 0], "hi_value": e[:, 1], "lo_slope": e[:, 2],
                      "hi_slope": e[:, 3]}}
