"""IR builder of family ``neural_network``: one step of dense layers."""

from __future__ import annotations

import numpy as np

from ..errors import ExportError
from .graph import Graph

FAMILY = "neural_network"


def add_network(g: Graph, cols: list[str], coefs: list[np.ndarray],
                intercepts: list[np.ndarray], activations: list[str], *,
                normalizations: list[str] | None = None, thresholds: list[float] | None = None,
                leakages: list[float] | None = None, widths: list[np.ndarray] | None = None,
                altitudes: list[np.ndarray] | None = None, name: str = "mlp") -> list[str]:
    """Append one ``neural_network`` step of dense layers; return its output columns.

    Parameters
    ----------
    cols : list of str
        Workspace columns feeding the input neurons, in order.
    coefs : list of ndarray of shape (n_{l-1}, n_l)
        Weight matrices, as scikit-learn's ``coefs_``.
    intercepts : list of ndarray of shape (n_l,)
        Biases, as scikit-learn's ``intercepts_``.
    activations : list of str
        The op's activation name per layer.
    normalizations : list of str, optional
        Per layer ``none`` / ``softmax`` / ``simplemax`` (default: all ``none``).
    thresholds, leakages : list of float, optional
        Per layer, for ``threshold`` / ``rectifier`` activations (default 0).
    widths, altitudes : list of ndarray of shape (n_l,), optional
        Per neuron, for ``radialBasis`` layers (default NaN / 1.0).
    """
    n_layers = len(coefs)
    norms = normalizations or ["none"] * n_layers
    coefs = [np.asarray(c, dtype=np.float64) for c in coefs]
    if coefs[0].shape[0] != len(cols):
        raise ExportError(f"{name} expects {coefs[0].shape[0]} features but receives "
                          f"{len(cols)} columns")
    sizes = [c.shape[1] for c in coefs]
    outs = g.new_columns(name, sizes[-1])
    g.add_step("neural_network", name=name, inputs=cols, outputs=outs, family=FAMILY, tables={
        "layers": {"neurons": np.asarray(sizes, dtype=np.int32),
                   "activation": np.asarray(activations, dtype=object),
                   "threshold": np.asarray(thresholds or [0.0] * n_layers, dtype=np.float64),
                   "leakage": np.asarray(leakages or [0.0] * n_layers, dtype=np.float64),
                   "normalization": np.asarray(norms, dtype=object)},
        "neurons": {"bias": np.concatenate([np.asarray(b, dtype=np.float64).ravel()
                                            for b in intercepts]),
                    "width": (np.concatenate(widths).astype(np.float64) if widths
                              else np.full(sum(sizes), np.nan)),
                    "altitude": (np.concatenate(altitudes).astype(np.float64) if altitudes
                                 else np.ones(sum(sizes)))},
        # neuron-major: row (j, i) of layer l is coefs_[l][i, j]
        "weights": {"weight": np.concatenate([c.T.ravel() for c in coefs])},
    })
    return outs
