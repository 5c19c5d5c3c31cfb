"""Matrix decompositions: scikit-learn ``PCA`` / ``IncrementalPCA`` and ``TruncatedSVD`` as
a ``linear`` step (+ an ``affine`` step for whitening). No op of their own.

scikit-learn 1.9's ``_BasePCA._transform`` is not ``(X - mean_) @ components_.T`` but
``X @ components_.T - mean_ @ components_.T`` (the second product computed once, as a
``(1, f) @ (f, k)`` matmul), then ``/= sqrt(explained_variance_)`` (floored at the dtype's
eps) when whitening. The ``linear`` step reproduces that order: its intercept is exactly
``-(mean_ @ components_.T)`` as scikit-learn computes it (``a - m == a + (-m)`` in IEEE), so
only the summation order of ``X @ components_.T`` (BLAS vs left to right) differs; the
whitening division is an exact elementwise ``affine`` ``div``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.linear import add_linear
from scorer.errors import ExportError

from .preprocessing import _affine
from .registry import register


def _components(est: Any, cols: list[str]) -> np.ndarray:
    comp = np.asarray(est.components_)
    if comp.ndim != 2 or comp.shape[1] != len(cols):
        raise ExportError(f"{type(est).__name__} has components of shape {comp.shape} but "
                          f"receives {len(cols)} columns")
    return comp


@register("sklearn.PCA", "sklearn.IncrementalPCA")
def export_pca(est: Any, g: Graph, cols: list[str]) -> list[str]:
    name = type(est).__name__
    comp = _components(est, cols)
    # exactly scikit-learn's product (same arrays, same dtypes, same matmul shape)
    centre = np.reshape(est.mean_, (1, -1)) @ comp.T
    outs = add_linear(g, cols, comp.astype(np.float64), -np.asarray(centre[0], np.float64),
                      name.lower())
    if est.whiten:
        scale = np.sqrt(est.explained_variance_)
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
        outs = _affine(g, outs, f"{name.lower()}_whiten", div=scale.astype(np.float64))
    return outs


@register("sklearn.TruncatedSVD")
def export_truncated_svd(est: Any, g: Graph, cols: list[str]) -> list[str]:
    comp = _components(est, cols)
    return add_linear(g, cols, comp.astype(np.float64), np.zeros(comp.shape[0]),
                      "truncated_svd")
