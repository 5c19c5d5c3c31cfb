"""Family ``quantile``: scikit-learn's ``QuantileTransformer`` as one ``quantile_transform``
step (op in :mod:`scorer.kernels.quantile`).

``_transform_col`` (forward) per column: NaN stays NaN; the mean of ``np.interp`` upward over
``(quantiles, references_)`` and downward over the negated, reversed arrays; the bounds
(``==`` the first / last quantile for uniform output, within ``BOUNDS_THRESHOLD = 1e-7`` of
them for normal output) set to 0 / 1; for normal output ``stats.norm.ppf`` (SciPy's Cephes
``ndtri``) clipped to ``ppf(1e-7 - eps)`` .. ``ppf(1 - (1e-7 - eps))``. The op performs
those float64 operations in that order: bit-exact. NaN inputs pass through as NaN (scikit-learn
validates with ``ensure_all_finite='allow-nan'``); inf is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .registry import register

FAMILY = "quantile"


@register("sklearn.QuantileTransformer")
def export_quantile_transformer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"QuantileTransformer received string column '{c}': encode it "
                              "first (OrdinalEncoder)")
    q = np.asarray(est.quantiles_, dtype=np.float64)
    refs = np.asarray(est.references_, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != len(cols) or q.shape[0] != len(refs):
        raise ExportError(f"QuantileTransformer has quantiles of shape {q.shape} but receives "
                          f"{len(cols)} columns")
    if est.output_distribution not in ("uniform", "normal"):
        raise ExportError(f"QuantileTransformer(output_distribution="
                          f"{est.output_distribution!r}) is not supported")
    if np.isnan(q).any() or np.any(np.diff(q, axis=0) < 0):
        raise ExportError("QuantileTransformer: quantiles_ are not non-decreasing")
    g.require(cols, nan=True, inf=False)  # check_array(ensure_all_finite='allow-nan')
    k, m = len(cols), q.shape[0]
    outs = g.new_columns("quantile", k)
    g.add_step("quantile_transform", name="quantile_transformer", inputs=cols, outputs=outs,
               family=FAMILY, params={"output": est.output_distribution},
               tables={"quantiles": {"input": np.repeat(np.arange(k, dtype=np.int32), m),
                                     "q": np.ascontiguousarray(q.T).ravel(),
                                     "r": np.tile(refs, k)}})
    return outs
