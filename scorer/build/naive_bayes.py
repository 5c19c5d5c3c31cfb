"""IR builder of family ``naive_bayes``: one ``naive_bayes`` step (see the op's spec)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ExportError
from ..ir import Table
from .graph import Graph

FAMILY = "naive_bayes"
KINDS = {"gaussian": 0, "poisson": 1, "linear": 2, "categorical": 3}


def add_naive_bayes(g: Graph, cols: list[str], *, name: str, log_prior: Any,
                    kinds: list[str], mean: Any = None, variance: Any = None, weight: Any = None,
                    binarize: Any = None, truncate: Any = None, unknown: Any = None,
                    categories: list[tuple[int, float, Any]] | None = None,
                    density: str = "log", threshold: float = 0.0, missing: str = "error",
                    normalize: str = "logsumexp", emit_jll: bool = True
                    ) -> tuple[list[str], list[str]]:
    """Append a ``naive_bayes`` step; return its (probability, joint log-likelihood) columns.

    Parameters
    ----------
    cols : list of str
        The ``n`` input columns, in the order of the per-input arguments.
    log_prior : array-like of shape (k,)
        Per-class additive constant.
    kinds : list of str of length n
        ``"gaussian"``, ``"poisson"``, ``"linear"`` or ``"categorical"`` per input.
    mean, variance, weight : array-like of shape (n, k), optional
        Per-input, per-class parameters (zeros where omitted).
    binarize : array-like of shape (n,), optional
        Binarization thresholds, NaN for none.
    truncate, unknown : array-like of shape (n,) of bool, optional
        Truncate values toward zero; refuse (True) or skip (False) unknown categories.
    categories : list of (input, value, log_p) tuples, optional
        ``log_p`` of shape (k,): the factor of category ``value`` of input ``input``.
    density, threshold, missing, normalize : str, float, str, str
        The op's params (docs: ``scorer.kernels.naive_bayes``).
    emit_jll : bool
        Also output the ``k`` joint log-likelihoods.

    Returns
    -------
    probs, jll : list of str
        ``k`` columns each (``jll`` empty unless ``emit_jll``).
    """
    n = len(cols)
    log_prior = np.asarray(log_prior, dtype=np.float64).reshape(-1)
    k = len(log_prior)

    def per_input(a: Any, fill: float) -> np.ndarray:
        if a is None:
            return np.full((n, k), fill)
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (n, k):
            raise ExportError(f"{name}: parameters of shape {a.shape}, expected {(n, k)}")
        return a

    mean_a, var_a, w_a = per_input(mean, 0.0), per_input(variance, 0.0), per_input(weight, 0.0)
    inputs: Table = {
        "kind": np.array([KINDS[c] for c in kinds], dtype=np.int8),
        "binarize": (np.full(n, np.nan) if binarize is None
                     else np.asarray(binarize, dtype=np.float64)),
        "truncate": np.zeros(n, dtype=bool) if truncate is None else np.asarray(truncate, bool),
        "unknown": (np.zeros(n, dtype=np.int8) if unknown is None
                    else np.asarray(unknown, dtype=np.int8)),
    }
    for label, a in (("mean", mean_a), ("variance", var_a), ("weight", w_a)):
        for j in range(k):
            inputs[f"{label}_{j}"] = np.ascontiguousarray(a[:, j])
    tables: dict[str, Table] = {"classes": {"log_prior": log_prior}, "inputs": inputs}
    if categories:
        lp = np.array([np.asarray(c[2], dtype=np.float64) for c in categories]).reshape(-1, k)
        tables["categories"] = {
            "input": np.array([c[0] for c in categories], dtype=np.int32),
            "value": np.array([c[1] for c in categories], dtype=np.float64),
            **{f"log_p_{j}": np.ascontiguousarray(lp[:, j]) for j in range(k)},
        }
    probs = g.new_columns(f"{name}.proba", k)
    jll = g.new_columns(f"{name}.jll", k) if emit_jll else []
    g.add_step("naive_bayes", name=name, inputs=cols, outputs=probs + jll, family=FAMILY,
               params={"n_classes": k, "density": density, "threshold": float(threshold),
                       "missing": missing, "normalize": normalize},
               tables=tables)
    return probs, jll
