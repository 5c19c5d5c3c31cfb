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


@njit(cache=True, nogil=True)
def count_numeric(x, edges, offset, counts):  # pragma: no cover - numba
    """Count the 1-D numeric array ``x`` (rows,) against ``edges`` (E,) into
    ``counts[offset:offset + E + 2]``."""
    B = 512
    xs = np.empty(B)
    for a in range(0, x.size, B):
        m = min(B, x.size - a)
        for i in range(m):
            xs[i] = np.float64(x[a + i])
        _add_counts(xs[:m], edges, counts, offset)


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


# --- one pass over a batch ------------------------------------------------------------------
#: ``vkind`` of a column of ``V`` in :func:`count_batch`
V_NUMERIC, V_CODES, V_KEYS = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _add_counts(xs, edges, counts, o):  # pragma: no cover - numba
    """Add the bins of every value of ``xs`` (m,) against ``edges`` (E >= 2,) into
    ``counts[o:o + E + 2]``.

    Not bin by bin: per edge, the number of values ``>=`` it (``>`` for the last edge) is a
    reduction that vectorises, and a bin's count is the difference of two of them (NaN is
    counted apart: every comparison with it is false). A bin per value and a scatter into
    the counts cost ~2x more (the scatter's stores depend on each other)."""
    m = xs.size
    e = edges.size
    nan = 0
    for i in range(m):
        nan += xs[i] != xs[i]
    counts[o] += nan
    prev = m - nan  # values >= -inf: all but NaN
    for q in range(e - 1):
        eq = edges[q]
        g = 0
        for i in range(m):
            g += xs[i] >= eq
        counts[o + 1 + q] += prev - g  # below edges[0], then inner bin q - 1
        prev = g
    last = edges[e - 1]
    g = 0
    for i in range(m):
        g += xs[i] > last
    counts[o + e] += prev - g  # the last inner bin holds x == edges[-1]
    counts[o + e + 1] += g


@njit(cache=True, nogil=True)
def count_batch(X, cols, E, ne, coff, V, vstart, vrow, vkind, K, kn, kc, vm, voff,
                counts):  # pragma: no cover - numba
    """Count a batch of rows into ``counts``: the numeric columns of a matrix and any number
    of other columns (outputs, columns sent by name, categories) in one call.

    Parameters
    ----------
    X : ndarray of shape (rows, n_columns), any numeric dtype
        Inputs in the model's order (``(0, 0)`` when there are none).
    cols : int64 ndarray of shape (k,)
        Columns of ``X`` counted; column ``cols[t]`` against row ``t`` of ``E``.
    E : float64 ndarray of shape (k + k2, W)
        Bin edges, row by row, each padded with ``+inf`` to ``W``; ``ne`` (k + k2,) int64
        holds how many are real (>= 2).
    coff : int64 ndarray of shape (k,)
        First bin in ``counts`` of ``cols[t]``.
    V : float64 ndarray of shape (total,)
        The other columns one after the other: column ``j`` is ``V[vstart[j]:vstart[j + 1]]``
        (``vstart`` int64 (k2 + 1,)): its own number of rows.
    vrow, vkind : int64 ndarray of shape (k2,)
        For column ``j``: ``vkind`` 0 (``V_NUMERIC``) binned against ``E[vrow[j]]``,
        1 (``V_CODES``) category codes (NaN missing, outside ``[0, vm[j])`` unseen), 2
        (``V_KEYS``) values looked up in the sorted keys ``K[vrow[j], :kn[vrow[j]]]`` (NaN
        missing, a value not among them unseen), whose codes are ``kc[vrow[j]]``.
    K : float64 ndarray of shape (n_key_rows, WK); kn int64 (n_key_rows,); kc int64 like K
    vm : int64 ndarray of shape (k2,)
        Categories of column ``j`` (kinds 1 and 2).
    voff : int64 ndarray of shape (k2,)
        First bin in ``counts`` of column ``j``.
    counts : int64 ndarray
        Added to in place.
    """
    n = X.shape[0]
    k = cols.size
    # rows per block: the block's columns are copied side by side (X read in memory order;
    # one column's values contiguous for the per-edge reductions) and stay in L1
    B = 128
    xT = np.empty((max(k, 1), B))
    for a in range(0, n, B):
        m = min(B, n - a)
        for i in range(m):
            for t in range(k):
                xT[t, i] = np.float64(X[a + i, cols[t]])
        for t in range(k):
            _add_counts(xT[t, :m], E[t, :ne[t]], counts, coff[t])
    for j in range(vkind.size):
        kind, r, o, mj = vkind[j], vrow[j], voff[j], vm[j]
        if kind == 0:
            for a in range(vstart[j], vstart[j + 1], 4 * B):
                _add_counts(V[a:min(a + 4 * B, vstart[j + 1])], E[r, :ne[r]], counts, o)
            continue
        for i in range(vstart[j], vstart[j + 1]):
            x = V[i]
            if x != x:
                b = 0
            elif kind == 1:
                b = 1 + np.int64(x) if (x >= 0 and x < mj) else mj + 1
            else:  # binary search among the sorted keys
                lo, hi = 0, kn[r]
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if K[r, mid] < x:
                        lo = mid + 1
                    else:
                        hi = mid
                b = 1 + kc[r, lo] if (lo < kn[r] and K[r, lo] == x) else mj + 1
            counts[o + b] += 1


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


def count_batch_reference(X, cols, E, ne, coff, V, vstart, vrow, vkind, K, kn, kc, vm, voff,
                          counts) -> None:
    """NumPy reference of :func:`count_batch` (same arguments, adds into ``counts``)."""
    X = np.asarray(X)
    for t in range(len(cols)):
        edges = E[t, :ne[t]]
        b = numeric_bins_reference(X[:, cols[t]], edges)
        np.add.at(counts, coff[t] + b, 1)
    for j in range(len(vkind)):
        x = np.asarray(V[vstart[j]:vstart[j + 1]], dtype=np.float64)
        r = vrow[j]
        if vkind[j] == V_NUMERIC:
            b = numeric_bins_reference(x, E[r, :ne[r]])
        elif vkind[j] == V_CODES:
            b = code_bins_reference(x, vm[j])
        else:
            keys, codes = K[r, :kn[r]], kc[r, :kn[r]]
            pos = np.clip(np.searchsorted(keys, x), 0, max(len(keys) - 1, 0))
            found = (keys[pos] == x) if len(keys) else np.zeros(len(x), bool)
            code = np.where(found, codes[pos] if len(keys) else 0, -1)
            b = code_bins_reference(np.where(np.isnan(x), np.nan, code), vm[j])
        np.add.at(counts, voff[j] + b, 1)
