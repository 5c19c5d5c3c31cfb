"""Family ``linear``: linear predictors and link functions.

Ops
---
``linear`` v1
    ``out[j] = intercept[j] + sum_f x[f] * coef[f, j]`` for ``j < k`` outputs, summed in
    float64 in input order. Table ``coefficients``: one row per input (step input order), one
    float64 column per output named ``coef_<j>``. Table ``intercepts``: ``k`` rows, float64
    column ``intercept``.
``link`` v1
    Maps margins to outputs; ``params.function`` is one of:

    - ``identity``: ``y = x`` (k -> k);
    - ``logistic``: ``y = 1 / (1 + exp(-x))`` elementwise (k -> k);
    - ``logistic2``: one margin -> two columns ``[1 - p, p]``, ``p = 1 / (1 + exp(-x))``;
    - ``softmax``: ``exp(x - max) / sum(exp(x - max))`` (k -> k);
    - ``logistic_ovr``: ``p = 1 / (1 + exp(-x))`` elementwise, then ``p / sum(p)`` (k -> k;
      scikit-learn's one-vs-rest probability);
    - ``exp``: ``y = exp(x)`` (log link, e.g. Poisson / Gamma / Tweedie).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, pack_cols, table, unpack_cols
from .preprocessing import _consecutive

LINKS = {"identity": 0, "logistic": 1, "logistic2": 2, "softmax": 3, "logistic_ovr": 4, "exp": 5}


# --- linear ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def linear_kernel(ws, in_cols, out_cols, coef, intercept):
    n = ws.shape[0]
    nf = in_cols.shape[0]
    k = out_cols.shape[0]
    if nf and _consecutive(in_cols):
        # inputs are a run of columns: unit-stride reads (same summation order as below)
        a = in_cols[0]
        i = 0
        # four rows at a time: four independent add chains overlap in the CPU (one row's
        # chain is nf dependent additions); each row still sums in input order
        while i + 4 <= n:
            x0 = ws[i, a : a + nf]
            x1 = ws[i + 1, a : a + nf]
            x2 = ws[i + 2, a : a + nf]
            x3 = ws[i + 3, a : a + nf]
            for j in range(k):
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                for f in range(nf):
                    c = coef[f, j]
                    a0 += x0[f] * c
                    a1 += x1[f] * c
                    a2 += x2[f] * c
                    a3 += x3[f] * c
                b = intercept[j]
                o = out_cols[j]
                ws[i, o] = a0 + b
                ws[i + 1, o] = a1 + b
                ws[i + 2, o] = a2 + b
                ws[i + 3, o] = a3 + b
            i += 4
        for r in range(i, n):
            x = ws[r, a : a + nf]
            for j in range(k):
                acc = 0.0
                for f in range(nf):
                    acc += x[f] * coef[f, j]
                ws[r, out_cols[j]] = acc + intercept[j]
        return -1
    for i in range(n):
        for j in range(k):
            acc = 0.0
            for f in range(nf):
                acc += ws[i, in_cols[f]] * coef[f, j]
            ws[i, out_cols[j]] = acc + intercept[j]
    return -1


def linear_reference(ws, in_cols, out_cols, coef, intercept):
    ws[:, out_cols] = ws[:, in_cols] @ coef + intercept
    return -1


@register_op("linear", family="linear")
def bind_linear(step: Step, ctx: BindContext) -> Bound:
    c = table(step, "coefficients")
    k = len(step.outputs)
    coef = np.ascontiguousarray(np.column_stack([f64(c[f"coef_{j}"]) for j in range(k)]))
    intercept = f64(table(step, "intercepts")["intercept"])
    if coef.shape[0] != len(step.inputs) or intercept.shape[0] != k:
        raise ValueError(f"linear: coefficients are {coef.shape}, intercepts "
                         f"{intercept.shape}, for {len(step.inputs)} inputs and {k} outputs")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), coef, intercept)
    return Bound(linear_kernel, linear_reference, args)


# --- link ------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _expit(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, nogil=True, error_model="numpy")
def link_kernel(ws, in_cols, out_cols, function):
    n = ws.shape[0]
    k = in_cols.shape[0]
    for i in range(n):
        if function == 0:
            for j in range(k):
                ws[i, out_cols[j]] = ws[i, in_cols[j]]
        elif function == 1:
            for j in range(k):
                ws[i, out_cols[j]] = _expit(ws[i, in_cols[j]])
        elif function == 2:
            p = _expit(ws[i, in_cols[0]])
            ws[i, out_cols[0]] = 1.0 - p
            ws[i, out_cols[1]] = p
        elif function == 3:
            m = ws[i, in_cols[0]]
            for j in range(1, k):
                if ws[i, in_cols[j]] > m:
                    m = ws[i, in_cols[j]]
            s = 0.0
            for j in range(k):
                e = math.exp(ws[i, in_cols[j]] - m)
                ws[i, out_cols[j]] = e
                s += e
            for j in range(k):
                ws[i, out_cols[j]] /= s
        elif function == 4:
            s = 0.0
            for j in range(k):
                p = _expit(ws[i, in_cols[j]])
                ws[i, out_cols[j]] = p
                s += p
            for j in range(k):
                ws[i, out_cols[j]] /= s
        else:
            for j in range(k):
                ws[i, out_cols[j]] = math.exp(ws[i, in_cols[j]])
    return -1


def link_reference(ws, in_cols, out_cols, function):
    x = ws[:, in_cols]
    if function == 0:
        y = x
    elif function == 1:
        y = 1.0 / (1.0 + np.exp(-x))
    elif function == 2:
        p = 1.0 / (1.0 + np.exp(-x[:, 0]))
        y = np.column_stack([1.0 - p, p])
    elif function == 3:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
    elif function == 4:
        p = 1.0 / (1.0 + np.exp(-x))
        y = p / p.sum(axis=1, keepdims=True)
    else:
        y = np.exp(x)
    ws[:, out_cols] = y
    return -1


@register_op("link", family="linear")
def bind_link(step: Step, ctx: BindContext) -> Bound:
    name = step.params["function"]
    if name not in LINKS:
        raise ValueError(f"link function '{name}' unknown (known: {', '.join(LINKS)})")
    code = LINKS[name]
    n_in, n_out = len(step.inputs), len(step.outputs)
    # (softmax reads input 0 of every row: no inputs would read past in_cols)
    if ((code == 2 and (n_in, n_out) != (1, 2)) or (code != 2 and n_in != n_out)
            or n_in == 0):
        raise ValueError(f"link '{name}' cannot map {n_in} inputs to {n_out} outputs")
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), code)
    return Bound(link_kernel, link_reference, args, link=True, single=link_row_kernel,
                 single_args=(pack_link(*args),))


def pack_link(in_cols: np.ndarray, out_cols: np.ndarray, function: int) -> np.ndarray:
    """``link_kernel``'s arguments for :func:`link_row_kernel`: ``[function, n_in,
    in_cols..., out_cols...]`` (:func:`~._common.pack_cols`)."""
    return pack_cols(function, in_cols, out_cols)


@njit(cache=True, nogil=True, error_model="numpy")
def link_row_kernel(ws, link):
    """:func:`link_kernel` with its arguments packed by :func:`pack_link`."""
    function, in_cols, out_cols = unpack_cols(link)
    return link_kernel(ws, in_cols, out_cols, function)
