"""Row-wise transformers of ``sklearn.preprocessing`` that are not per-column affine maps:
``Normalizer``, ``Binarizer``, ``PolynomialFeatures``. Each is one ``expression`` step whose
program spells out scikit-learn's float64 operations in scikit-learn's order (no op of their
own). All three validate with ``check_array``'s defaults: NaN and inf are refused.

- ``Binarizer``: ``1.0 if x > threshold else 0.0`` (exact).
- ``PolynomialFeatures``: the dense ``transform`` builds each degree-``d`` column as
  ``XP[:, start + i] * X[:, f]`` from a degree ``d - 1`` column; the program replays that
  recursion, so every product is the same product in the same order (exact).
- ``Normalizer``: ``max``: ``max |x|`` (exact); ``l1``: ``np.sum(np.abs(X), axis=1)``, summed
  in NumPy's pairwise order (exact for a C-ordered ``X``; for an F-ordered one NumPy sums
  left to right, which differs from 8 columns on by an ulp or so); ``l2``:
  ``sqrt(einsum('ij,ij->i', X, X))``, whose SIMD summation order is CPU-specific:
  summed left to right here (a few ulp, within the ``expression`` tolerance).
  Then ``norm = 1.0 if norm < 10 * eps`` and ``x / norm``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError

from .programs import Program, add_program, pairwise_sum
from .registry import register


def _numeric(g: Graph, cols: list[str], name: str) -> None:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OneHotEncoder / OrdinalEncoder)")
    g.require(cols, nan=False, inf=False)  # check_array's default ensure_all_finite=True


@register("sklearn.Binarizer")
def export_binarizer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, "Binarizer")
    p = Program()
    for j in range(len(cols)):
        p.load(j).const(float(est.threshold)).emit("GT").store(j)
    return add_program(g, "binarizer", cols, len(cols), p)


@register("sklearn.Normalizer")
def export_normalizer(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, "Normalizer")
    n = len(cols)
    p = Program()
    # slots 0..n-1: the outputs; slot n: the norm; for l1 slots n+1..2n: |x_j|
    norm = n
    if est.norm == "l2":
        p.load(0).emit("DUP").emit("MUL")
        for j in range(1, n):
            p.load(j).emit("DUP").emit("MUL").emit("ADD")
        p.emit("SQRT").store(norm)
        n_out = n + 1
    elif est.norm == "max":
        p.load(0).emit("ABS")
        for j in range(1, n):
            p.load(j).emit("ABS").emit("MAX")
        p.store(norm)
        n_out = n + 1
    elif est.norm == "l1":
        for j in range(n):
            p.load(j).emit("ABS").store(n + 1 + j)
        pairwise_sum(p, list(range(n + 1, 2 * n + 1)))
        p.store(norm)
        n_out = 2 * n + 1
    else:
        raise ExportError(f"Normalizer(norm={est.norm!r}) is not supported")
    # _handle_zeros_in_scale: a norm under 10 * eps divides by 1.0 instead
    p.loadout(norm).const(10 * np.finfo(np.float64).eps).emit("LT").const(1.0)
    p.loadout(norm).emit("IF").store(norm)
    for j in range(n):
        p.load(j).loadout(norm).emit("DIV").store(j)
    outs = add_program(g, "normalizer", cols, n_out, p)
    return outs[:n]


@register("sklearn.PolynomialFeatures")
def export_polynomial_features(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, "PolynomialFeatures")
    n = len(cols)
    if n != est.n_features_in_:
        raise ExportError(f"PolynomialFeatures has {est.n_features_in_} features but receives "
                          f"{n} columns")
    # Replay the dense transform: recipe[c] = ("bias",) | ("x", f) | ("mul", parent, f)
    recipe: list[tuple] = []
    if est.include_bias:
        recipe.append(("bias",))
    max_degree, min_degree = est._max_degree, est._min_degree
    if max_degree > 0:
        current = len(recipe)
        recipe += [("x", f) for f in range(n)]
        index = list(range(current, current + n))
        current += n
        index.append(current)
        for _ in range(2, max_degree + 1):
            new_index = []
            end = index[-1]
            for f in range(n):
                start = index[f]
                new_index.append(current)
                if est.interaction_only:
                    start += index[f + 1] - index[f]
                nxt = current + end - start
                if nxt <= current:
                    break
                recipe += [("mul", start + i, f) for i in range(nxt - current)]
                current = nxt
            new_index.append(current)
            index = new_index
    full = len(recipe)
    if full != est._n_out_full:
        raise ExportError(f"PolynomialFeatures: replayed {full} columns, scikit-learn has "
                          f"{est._n_out_full}")
    p = Program()
    for c, r in enumerate(recipe):
        if r[0] == "bias":
            p.const(1.0)
        elif r[0] == "x":
            p.load(r[1])
        else:  # np.multiply(XP[:, start:end], X[:, f]): parent * x_f
            p.loadout(r[1]).load(r[2]).emit("MUL")
        p.store(c)
    outs = add_program(g, "polynomial", cols, full, p)
    if min_degree > 1:  # scikit-learn computes every degree, then keeps the last columns
        k = est.n_output_features_
        outs = [outs[0], *outs[full - k + 1:]] if est.include_bias else outs[full - k:]
    if len(outs) != est.n_output_features_:
        raise ExportError("PolynomialFeatures: output count differs from scikit-learn's")
    return outs
