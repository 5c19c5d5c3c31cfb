"""Family ``neural_network`` exporters: scikit-learn's multilayer perceptrons -> one
``neural_network`` step (plus a ``logistic2`` link for a binary classifier).

scikit-learn computes each layer as ``activation(X @ coefs_[l] + intercepts_[l])``; the last
layer's activation is ``out_activation_``: ``identity`` / ``exp`` (regressor), ``softmax``
(multiclass) or ``logistic`` (binary, whose ``predict_proba`` is ``[1 - p, p]``).
"""

from __future__ import annotations

from typing import Any

from scorer.build.graph import Graph
from scorer.build.linear import add_link
from scorer.build.neural_network import add_network
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .registry import register

FAMILY = "neural_network"

#: scikit-learn hidden-layer activation -> the op's activation
_HIDDEN = {"identity": "identity", "logistic": "logistic", "tanh": "tanh", "relu": "rectifier"}


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
