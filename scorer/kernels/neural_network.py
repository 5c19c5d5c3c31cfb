"""Family ``neural_network``: feed-forward multilayer perceptrons.

Op ``neural_network`` version 1 (normative)
-------------------------------------------
Step inputs are the ``n_0`` input neurons, in order; the network has ``L >= 1`` dense layers;
step outputs are the ``n_L`` neurons of the last layer, in order. All arithmetic is float64.

tables
    ``layers``: one row per layer, in evaluation order: ``neurons`` (int32 ``n_l >= 1``),
    ``activation`` (string, below), ``threshold`` (float64, for ``threshold``), ``leakage``
    (float64, for ``rectifier``; 0 for a plain rectifier), ``normalization`` (string:
    ``none``, ``softmax`` or ``simplemax``).

    ``neurons``: one row per neuron, layer by layer, in neuron order: ``bias`` (float64),
    ``width`` and ``altitude`` (float64; used by ``radialBasis`` layers only, NaN / 1.0
    elsewhere).

    ``weights``: ``weight`` (float64), one row per (layer ``l``, neuron ``j``, source ``i``)
    for ``j < n_l``, ``i < n_{l-1}``, ordered by layer, then neuron, then source:
    ``w_l[i, j]`` is row ``sum_{m<l} n_m * n_{m-1} + j * n_{l-1} + i``.

Per row, ``a_0 = x`` (the inputs). For each layer ``l``, neuron ``j``:

- every activation but ``radialBasis``: ``z_j = (sum_i a_{l-1}[i] * w_l[i, j]) + bias_j``,
  the sum accumulated from 0.0 in source order (implementations MAY sum in another order;
  results then differ by rounding only), then ``a_l[j] = f(z_j)``;
- ``radialBasis``: ``s_j = sum_i (a_{l-1}[i] - w_l[i, j])^2``,
  ``z_j = s_j / (width_j * width_j * -2.0)``, plus ``n_{l-1} * ln(altitude_j)`` when
  ``altitude_j != 1``; ``a_l[j] = exp(z_j)`` (the bias is unused).

Activations ``f``: ``identity`` z; ``logistic`` 1 / (1 + exp(-z)); ``tanh`` tanh(z);
``rectifier`` z if z > 0 else leakage * z; ``exponential`` exp(z); ``reciprocal`` 1 / z;
``square`` z * z; ``Gauss`` exp(-(z * z)); ``sine`` sin(z); ``cosine`` cos(z); ``Elliott``
z / (1 + |z|); ``arctan`` 2 * atan(z) / pi; ``threshold`` 1.0 if z > threshold else 0.0
(NaN stays NaN).

Then the layer's normalization: ``softmax`` ``m = max_j a[j]``, ``a[j] = exp(a[j] - m) /
sum_k exp(a[k] - m)``; ``simplemax`` ``a[j] = a[j] / sum_k a[k]`` (sums in neuron order).

Missing values: if any input of a row is NaN, every output of that row is NaN (PMML: a
missing input makes the network's result missing). Otherwise NaN / inf arise only from IEEE
arithmetic (e.g. ``exp`` overflow) and propagate as IEEE says.

Implementation
--------------
Rows are processed in blocks of ``BLOCK``: a block's inputs are gathered into a contiguous
``(rows, n_0)`` scratch array, and each layer is a row-blocked matrix product into a second
scratch array (the inner loop runs over a layer's neurons, unit stride, so it vectorises while
each ``z_j`` still sums its sources in order); the arrays then swap roles. The parallel
kernel runs blocks on separate threads, each with its own scratch arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, index_col, table

ACTIVATIONS = {"identity": 0, "logistic": 1, "tanh": 2, "rectifier": 3, "exponential": 4,
               "reciprocal": 5, "square": 6, "Gauss": 7, "sine": 8, "cosine": 9, "Elliott": 10,
               "arctan": 11, "threshold": 12, "radialBasis": 13}
NORMALIZATIONS = {"none": 0, "softmax": 1, "simplemax": 2}
_RBF = 13
#: rows per block (scratch arrays of BLOCK x widest layer stay in L1/L2 cache)
BLOCK = 64
#: multiply-adds a batch must need before the parallel kernel pays for its thread start-up
#: (about 5 ms of serial work); the batch size threshold follows from the network's size
PARALLEL_MIN_WORK = 10_000_000


@njit(cache=True, nogil=True, error_model="numpy")
def _activate(z, code, thresh, leak):
    if code == 0:
        return z
    if code == 1:
        return 1.0 / (1.0 + math.exp(-z))
    if code == 2:
        return math.tanh(z)
    if code == 3:
        return z if z > 0.0 else leak * z
    if code == 4:
        return math.exp(z)
    if code == 5:
        return 1.0 / z
    if code == 6:
        return z * z
    if code == 7:
        return math.exp(-(z * z))
    if code == 8:
        return math.sin(z)
    if code == 9:
        return math.cos(z)
    if code == 10:
        return z / (1.0 + abs(z))
    if code == 11:
        return 2.0 * math.atan(z) / math.pi
    # threshold
    if z > thresh:
        return 1.0
    return 0.0 if z == z else z  # NaN stays NaN


@njit(cache=True, nogil=True, error_model="numpy")
def _block(ws, r0, r1, in_cols, out_cols, sizes, w_off, weights, n_off, bias, width, alt,
           act, thresh, leak, norm, a, b, bad):
    m = r1 - r0
    n0 = sizes[0]
    for r in range(m):
        bad[r] = False
        row = ws[r0 + r]
        dst = a[r]
        for f in range(n0):
            v = row[in_cols[f]]
            dst[f] = v
            if v != v:
                bad[r] = True
    for layer in range(act.shape[0]):
        nin = sizes[layer]
        nout = sizes[layer + 1]
        wo = w_off[layer]
        no = n_off[layer]
        code = act[layer]
        if code == _RBF:
            for r in range(m):
                src = a[r]
                dst = b[r]
                for j in range(nout):
                    acc = 0.0
                    for i in range(nin):
                        d = src[i] - weights[wo + i * nout + j]
                        acc += d * d
                    w = width[no + j]
                    z = acc / (w * w * -2.0)
                    if alt[no + j] != 1.0:
                        z += nin * math.log(alt[no + j])
                    dst[j] = math.exp(z)
        else:
            th = thresh[layer]
            lk = leak[layer]
            for r in range(m):
                src = a[r]
                dst = b[r]
                for j in range(nout):
                    dst[j] = 0.0
                for i in range(nin):
                    x = src[i]
                    wrow = weights[wo + i * nout : wo + (i + 1) * nout]
                    for j in range(nout):
                        dst[j] += x * wrow[j]
                for j in range(nout):
                    dst[j] = _activate(dst[j] + bias[no + j], code, th, lk)
        if norm[layer] == 1:
            for r in range(m):
                dst = b[r]
                mx = dst[0]
                for j in range(1, nout):
                    if dst[j] > mx:
                        mx = dst[j]
                s = 0.0
                for j in range(nout):
                    e = math.exp(dst[j] - mx)
                    dst[j] = e
                    s += e
                for j in range(nout):
                    dst[j] /= s
        elif norm[layer] == 2:
            for r in range(m):
                dst = b[r]
                s = 0.0
                for j in range(nout):
                    s += dst[j]
                for j in range(nout):
                    dst[j] /= s
        a, b = b, a
    k = out_cols.shape[0]
    for r in range(m):
        row = ws[r0 + r]
        src = a[r]
        if bad[r]:
            for j in range(k):
                row[out_cols[j]] = np.nan
        else:
            for j in range(k):
                row[out_cols[j]] = src[j]


@njit(cache=True, nogil=True, error_model="numpy")
def neural_network_kernel(ws, in_cols, out_cols, sizes, w_off, weights, n_off, bias, width,
                          alt, act, thresh, leak, norm):
    n = ws.shape[0]
    mw = sizes.max()
    a = np.empty((BLOCK, mw))
    b = np.empty((BLOCK, mw))
    bad = np.empty(BLOCK, dtype=np.bool_)
    for r0 in range(0, n, BLOCK):
        _block(ws, r0, min(r0 + BLOCK, n), in_cols, out_cols, sizes, w_off, weights, n_off,
               bias, width, alt, act, thresh, leak, norm, a, b, bad)
    return -1


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def neural_network_kernel_parallel(ws, in_cols, out_cols, sizes, w_off, weights, n_off, bias,
                                   width, alt, act, thresh, leak, norm):
    n = ws.shape[0]
    mw = sizes.max()
    n_blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        r0 = blk * BLOCK
        a = np.empty((BLOCK, mw))
        b = np.empty((BLOCK, mw))
        bad = np.empty(BLOCK, dtype=np.bool_)
        _block(ws, r0, min(r0 + BLOCK, n), in_cols, out_cols, sizes, w_off, weights, n_off,
               bias, width, alt, act, thresh, leak, norm, a, b, bad)
    return -1


def _activate_reference(z: np.ndarray, code: int, thresh: float, leak: float) -> np.ndarray:
    if code == 0:
        return z
    if code == 1:
        return 1.0 / (1.0 + np.exp(-z))
    if code == 2:
        return np.tanh(z)
    if code == 3:
        return np.where(z > 0.0, z, leak * z)
    if code == 4:
        return np.exp(z)
    if code == 5:
        return 1.0 / z
    if code == 6:
        return z * z
    if code == 7:
        return np.exp(-(z * z))
    if code == 8:
        return np.sin(z)
    if code == 9:
        return np.cos(z)
    if code == 10:
        return z / (1.0 + np.abs(z))
    if code == 11:
        return 2.0 * np.arctan(z) / np.pi
    return np.where(np.isnan(z), z, (z > thresh).astype(np.float64))


def neural_network_reference(ws, in_cols, out_cols, sizes, w_off, weights, n_off, bias, width,
                             alt, act, thresh, leak, norm):
    """Plain NumPy on the whole batch, layer by layer; sums accumulate source by source (and
    neuron by neuron) in the normative order, so only libm functions may differ from the
    kernel's."""
    a = ws[:, in_cols]
    n = a.shape[0]
    bad = np.isnan(a).any(axis=1)
    with np.errstate(all="ignore"):
        for layer in range(len(act)):
            nin, nout = int(sizes[layer]), int(sizes[layer + 1])
            w = weights[w_off[layer] : w_off[layer] + nin * nout].reshape(nin, nout)
            sl = slice(n_off[layer], n_off[layer] + nout)
            z = np.zeros((n, nout))
            if act[layer] == _RBF:
                for i in range(nin):
                    z += (a[:, i : i + 1] - w[i]) ** 2
                z = z / (width[sl] * width[sl] * -2.0)
                z = z + np.where(alt[sl] != 1.0, nin * np.log(alt[sl]), 0.0)
                a = np.exp(z)
            else:
                for i in range(nin):
                    z += a[:, i : i + 1] * w[i]
                a = _activate_reference(z + bias[sl], int(act[layer]), thresh[layer],
                                        leak[layer])
            if norm[layer] != 0:
                if norm[layer] == 1:
                    a = np.exp(a - a.max(axis=1, keepdims=True))
                s = np.zeros(n)
                for j in range(nout):
                    s += a[:, j]
                a = a / s[:, None]
    a = np.array(a, dtype=np.float64)
    a[bad] = np.nan
    ws[:, out_cols] = a
    return -1


@register_op("neural_network", family="neural_network")
def bind_neural_network(step: Step, ctx: BindContext) -> Bound:
    lt = table(step, "layers")
    nt = table(step, "neurons")
    w_flat = f64(table(step, "weights")["weight"])
    counts = index_col(lt["neurons"], "neural_network: layers.neurons", np.int64)
    n_layers = len(counts)
    if n_layers == 0 or (counts < 1).any():
        raise ValueError(f"neural_network step '{step.name}': needs at least one layer, each "
                         "with at least one neuron")
    n_bias = len(nt["bias"])
    if counts.max() > n_bias:  # also bounds the products below, which are taken in int64
        raise ValueError(f"neural_network step '{step.name}': a layer of {counts.max()} "
                         f"neurons, but the neurons table has {n_bias} rows")
    sizes = np.concatenate([[len(step.inputs)], counts]).astype(np.int64)
    if sizes[-1] != len(step.outputs):
        raise ValueError(f"neural_network step '{step.name}': the last layer has {sizes[-1]} "
                         f"neurons for {len(step.outputs)} outputs")
    n_w = sizes[:-1] * sizes[1:]
    if len(w_flat) != n_w.sum() or len(nt["bias"]) != counts.sum():
        raise ValueError(f"neural_network step '{step.name}': {len(w_flat)} weights and "
                         f"{len(nt['bias'])} neurons for layer sizes {sizes.tolist()}")
    acts, norms = [], []
    for a, nm in zip(lt["activation"], lt["normalization"], strict=True):
        if a not in ACTIVATIONS:
            raise ValueError(f"neural_network: activation '{a}' unknown (known: "
                             f"{', '.join(ACTIVATIONS)})")
        if nm not in NORMALIZATIONS:
            raise ValueError(f"neural_network: normalization '{nm}' unknown (known: "
                             f"{', '.join(NORMALIZATIONS)})")
        acts.append(ACTIVATIONS[a])
        norms.append(NORMALIZATIONS[nm])
    w_off = np.concatenate([[0], np.cumsum(n_w)[:-1]]).astype(np.int64)
    n_off = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # stored neuron-major (PMML's Neuron / Con order); the kernel reads source-major so that
    # one source's weights to all neurons of the layer are contiguous
    weights = np.concatenate([
        w_flat[w_off[k] : w_off[k] + n_w[k]].reshape(sizes[k + 1], sizes[k]).T.ravel()
        for k in range(n_layers)])
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), sizes, w_off,
            np.ascontiguousarray(weights), n_off, f64(nt["bias"]), f64(nt["width"]),
            f64(nt["altitude"]), np.asarray(acts, dtype=np.int64), f64(lt["threshold"]),
            f64(lt["leakage"]), np.asarray(norms, dtype=np.int64))
    return Bound(neural_network_kernel, neural_network_reference, args,
                 parallel=neural_network_kernel_parallel,
                 parallel_min_rows=parallel_min_rows(sizes))


def parallel_min_rows(sizes: np.ndarray) -> int:
    """Batch size from which the parallel kernel runs, for layer sizes ``[n_0, .., n_L]``."""
    work = int(np.sum(sizes[:-1] * sizes[1:]))
    return max(2 * BLOCK, PARALLEL_MIN_WORK // max(work, 1))
