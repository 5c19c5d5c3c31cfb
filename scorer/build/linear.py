"""IR builders of family ``linear``: ``linear`` steps (affine maps) and ``link`` steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ExportError
from .graph import Graph

FAMILY = "linear"


def add_linear(g: Graph, cols: list[str], coef: Any, intercept: Any, name: str) -> list[str]:
    """Append a ``linear`` step ``coef @ x + intercept`` (coef: float64[k, len(cols)],
    intercept: float64[k] or a scalar); return its ``k`` output columns."""
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OneHotEncoder / OrdinalEncoder)")
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))  # (k, f)
    k = coef.shape[0]
    if coef.shape[1] != len(cols):
        raise ExportError(f"{name} has {coef.shape[1]} coefficients per output but receives "
                          f"{len(cols)} columns")
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (k,)).copy()
    # scikit-learn's check_array refuses NaN and inf for linear models
    g.require(cols, nan=False, inf=False)
    outs = g.new_columns(f"{name}.margin", k)
    g.add_step("linear", name=name, inputs=cols, outputs=outs, family=FAMILY, tables={
        "coefficients": {f"coef_{j}": coef[j] for j in range(k)},
        "intercepts": {"intercept": intercept},
    })
    return outs


def add_link(g: Graph, margins: list[str], function: str) -> list[str]:
    """Append a ``link`` step mapping ``margins`` through ``function``; return its outputs
    (``identity`` adds nothing). Shared by every family that ends in margins."""
    if function == "identity":
        return margins
    n_out = 2 if function == "logistic2" else len(margins)
    outs = g.new_columns(function, n_out)
    g.add_step("link", name=f"link_{function}", inputs=margins, outputs=outs, family=FAMILY,
               params={"function": function})
    return outs


def add_scale(g: Graph, margins: list[str], factor: float, *, name: str = "scale") -> list[str]:
    """``factor * margin`` per column as a diagonal ``linear`` step: one exact float64 product
    per value (the zero off-diagonal terms add +0.0). ``factor == 1`` adds nothing."""
    if factor == 1.0:
        return margins
    k = len(margins)
    outs = g.new_columns(name, k)
    coef = np.eye(k) * factor
    g.add_step("linear", name=name, inputs=margins, outputs=outs, family=FAMILY,
               tables={"coefficients": {f"coef_{j}": coef[:, j] for j in range(k)},
                       "intercepts": {"intercept": np.zeros(k)}})
    return outs
