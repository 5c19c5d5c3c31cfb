"""Binning and divergence kernels of drift monitoring, each with its NumPy reference.

Bin layout of one feature (docs/bundle-format.md §7), ``E = len(edges) >= 2``:

- numeric: ``0`` missing (NaN), ``1`` below ``edges[0]`` (``-inf`` included), ``2 + i`` for
  ``edges[i] <= x < edges[i + 1]`` (the last inner bin also holds ``x == edges[-1]``),
  ``E + 1`` above ``edges[-1]`` (``+inf`` included): ``E + 2`` bins;
- categorical (codes: index in the category list, -1 unseen, NaN missing): ``0`` missing,
  ``1 + code`` for a known category, ``m + 1`` unseen: ``m + 2`` bins.

Every kernel *adds* into a flat int64 ``counts`` array holding all features' bins one after
the other (``offsets``), so one request is one call per group of columns, and window counts of
several processes merge by addition.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: proportion floor used for empty bins in PSI (docs/monitoring.md)
PSI_EPSILON = 1e-4


@njit(cache=True, nogil=True, inline="always")
def _numeric_bin(x: float, edges: np.ndarray, e0: int, e1: int) -> int:
    """Bin of ``x`` against ``edges[e0:e1]`` (see the module docstring)."""
    if x != x:
        return 0
    if x < edges[e0]:
        return 1
    if x > edges[e1 - 1]:
        return e1 - e0 + 1
    # largest i in [0, E-2] with edges[e0 + i] <= x: the number of inner edges <= x,
    # branch-free (a binary search's unpredictable branches cost more at E <= 22)
    b = 0
    for k in range(e0 + 1, e1 - 1):
        b += x >= edges[k]
    return 2 + b


@njit(cache=True, nogil=True)
def count_matrix(X, cols, edges, edge_off, count_off, counts):  # pragma: no cover - numba
    """Count the numeric columns ``cols`` of ``X`` into ``counts``.

    Parameters
    ----------
    X : ndarray of shape (rows, n_columns), any numeric dtype
        The request's inputs in the model's order.
    cols : int64 ndarray of shape (k,)
        Columns of ``X`` to count.
    edges : float64 ndarray of shape (sum of edge counts,)
        The edges of column ``cols[t]`` are ``edges[edge_off[t]:edge_off[t + 1]]``.
    edge_off : int64 ndarray of shape (k + 1,)
    count_off : int64 ndarray of shape (k,)
        First bin of column ``cols[t]`` in ``counts``.
    counts : int64 ndarray
        Added to in place.
    """
    n = X.shape[0]
    k = cols.size
    for i in range(n):  # row by row: X is read once, in memory order
        for t in range(k):
            x = np.float64(X[i, cols[t]])
            counts[count_off[t] + _numeric_bin(x, edges, edge_off[t], edge_off[t + 1])] += 1


@njit(cache=True, nogil=True)
def count_numeric(x, edges, offset, counts):  # pragma: no cover - numba
    """Count the 1-D numeric array ``x`` (rows,) against ``edges`` (E,) into
    ``counts[offset:offset + E + 2]``."""
    e1 = edges.size
    for i in range(x.size):
        counts[offset + _numeric_bin(np.float64(x[i]), edges, 0, e1)] += 1


@njit(cache=True, nogil=True)
def count_codes(codes, m, offset, counts):  # pragma: no cover - numba
    """Count the category codes ``codes`` (rows,) of a feature with ``m`` categories into
    ``counts[offset:offset + m + 2]``: NaN missing, -1 (or any code outside ``[0, m)``)
    unseen."""
    for i in range(codes.size):
        c = np.float64(codes[i])
        if c != c:
            b = 0
        elif c >= 0 and c < m:
            b = 1 + np.int64(c)
        else:
            b = m + 1
        counts[offset + b] += 1


@njit(cache=True, nogil=True)
def divergences(ref, cur, offsets, eps, psi_out, js_out):  # pragma: no cover - numba
    """PSI and Jensen-Shannon distance of every feature.

    Parameters
    ----------
    ref, cur : int64 ndarray of shape (total bins,)
        Reference and current counts, features one after the other.
    offsets : int64 ndarray of shape (n_features + 1,)
        Feature ``f`` owns bins ``offsets[f]:offsets[f + 1]``.
    eps : float
        Proportion floor of PSI.
    psi_out, js_out : float64 ndarray of shape (n_features,)
        Written; NaN for a feature whose reference or current counts are all zero.
    """
    for f in range(offsets.size - 1):
        a, b = offsets[f], offsets[f + 1]
        r_tot = 0.0
        c_tot = 0.0
        for i in range(a, b):
            r_tot += ref[i]
            c_tot += cur[i]
        if r_tot == 0.0 or c_tot == 0.0:
            psi_out[f] = np.nan
            js_out[f] = np.nan
            continue
        psi = 0.0
        js = 0.0
        for i in range(a, b):
            p = ref[i] / r_tot
            q = cur[i] / c_tot
            ps = max(p, eps)
            qs = max(q, eps)
            psi += (qs - ps) * np.log(qs / ps)
            m = 0.5 * (p + q)
            if p > 0.0:
                js += 0.5 * p * np.log2(p / m)
            if q > 0.0:
                js += 0.5 * q * np.log2(q / m)
        psi_out[f] = psi
        js_out[f] = np.sqrt(max(js, 0.0))


# --- NumPy references --------------------------------------------------------------------
def numeric_bins_reference(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of every value of ``x`` (rows,) against ``edges`` (E,): int64 (rows,)."""
    x = np.asarray(x, dtype=np.float64)
    e = len(edges)
    inner = 2 + np.clip(np.searchsorted(edges[:-1], x, side="right") - 1, 0, e - 2)
    out = np.where(x < edges[0], 1, np.where(x > edges[-1], e + 1, inner))
    return np.where(np.isnan(x), 0, out).astype(np.int64)


def code_bins_reference(codes: np.ndarray, m: int) -> np.ndarray:
    """Bin index of every category code (rows,) of a feature with ``m`` categories."""
    c = np.asarray(codes, dtype=np.float64)
    known = (c >= 0) & (c < m)
    out = np.where(known, 1 + np.where(known, c, 0), m + 1)
    return np.where(np.isnan(c), 0, out).astype(np.int64)


def psi_reference(ref: np.ndarray, cur: np.ndarray, eps: float = PSI_EPSILON) -> float:
    """PSI of one feature: ``sum((q' - p') * ln(q' / p'))`` with ``p' = max(p, eps)``,
    ``q' = max(q, eps)``, ``p``, ``q`` the reference and current proportions (bins,)."""
    p = np.asarray(ref, dtype=np.float64) / np.sum(ref)
    q = np.asarray(cur, dtype=np.float64) / np.sum(cur)
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_reference(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of one feature's counts (bins,)."""
    p = np.asarray(ref, dtype=np.float64) / np.sum(ref)
    q = np.asarray(cur, dtype=np.float64) / np.sum(cur)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(np.sqrt(max(0.5 * kl_p.sum() + 0.5 * kl_q.sum(), 0.0)))
