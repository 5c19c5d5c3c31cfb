"""Family ``neural_network`` exporters: scikit-learn's multilayer perceptrons -> one
``neural_network`` step (plus a ``logistic2`` link for a binary classifier).

scikit-learn computes each layer as ``activation(X @ coefs_[l] + intercepts_[l])``; the last
layer's activation is ``out_activation_``: ``identity`` / ``exp`` (regressor), ``softmax``
(multiclass) or ``logistic`` (binary, whose ``predict_proba`` is ``[1 - p, p]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.errors import ExportError

from .graph import Graph
from .linear import add_link
from .outputs import set_classifier_outputs, set_regressor_outputs
from .registry import register

FAMILY = "neural_network"

#: scikit-learn hidden-layer activation -> the op's activation
_HIDDEN = {"identity": "identity", "logistic": "logistic", "tanh": "tanh", "relu": "rectifier"}


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


def _network(est: Any, g: Graph, cols: list[str], out_activation: str,
             out_norm: str = "none") -> list[str]:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{type(est).__name__} received string column '{c}': encode it "
                              "first (OneHotEncoder / OrdinalEncoder)")
    if est.activation not in _HIDDEN:
        raise ExportError(f"{type(est).__name__}: activation '{est.activation}' is not "
                          "supported")
    # scikit-learn's check_array refuses NaN and inf
    g.require(cols, nan=False, inf=False)
    n = len(est.coefs_)
    acts = [_HIDDEN[est.activation]] * (n - 1) + [out_activation]
    norms = ["none"] * (n - 1) + [out_norm]
    return add_network(g, cols, est.coefs_, est.intercepts_, acts, normalizations=norms,
                       name=type(est).__name__.lower())


@register("sklearn.MLPClassifier")
def export_mlp_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if getattr(est._label_binarizer, "y_type_", None) == "multilabel-indicator":
        raise ExportError("MLPClassifier trained on a multilabel target is not supported "
                          "(one label per row only)")
    if est.out_activation_ == "softmax":
        proba = _network(est, g, cols, "identity", "softmax")
    elif est.out_activation_ == "logistic" and len(est.classes_) == 2:
        # the output neuron's margin -> [1 - p, p], p = expit(margin)
        proba = add_link(g, _network(est, g, cols, "identity"), "logistic2")
    else:
        raise ExportError(f"MLPClassifier with output activation '{est.out_activation_}' "
                          f"and {len(est.classes_)} classes is not supported")
    set_classifier_outputs(g, est.classes_, proba=proba)
    return proba


@register("sklearn.MLPRegressor")
def export_mlp_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    # loss='poisson' predicts through an exp output
    out = {"identity": "identity", "exp": "exponential"}.get(est.out_activation_)
    if out is None:
        raise ExportError(f"MLPRegressor with output activation '{est.out_activation_}' is "
                          "not supported")
    values = _network(est, g, cols, out)
    set_regressor_outputs(g, values)
    return values
