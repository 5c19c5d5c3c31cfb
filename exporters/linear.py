"""Family ``linear`` exporters: scikit-learn linear models -> ``linear`` (+ ``link``) steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.errors import ExportError

from .graph import Graph
from .outputs import set_classifier_outputs, set_regressor_outputs
from .registry import register

FAMILY = "linear"


def _linear_step(g: Graph, cols: list[str], coef: Any, intercept: Any, name: str) -> list[str]:
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OneHotEncoder / OrdinalEncoder)")
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))  # (k, f)
    k = coef.shape[0]
    if coef.shape[1] != len(cols):
        raise ExportError(f"{name} has {coef.shape[1]} coefficients per output but receives "
                          f"{len(cols)} columns")
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (k,)).copy()
    # scikit-learn's check_array refuses NaN and inf for linear models
    g.require(cols, nan=False, inf=False)
    outs = g.new_columns(f"{name}.margin", k)
    g.add_step("linear", name=name, inputs=cols, outputs=outs, family=FAMILY, tables={
        "coefficients": {f"coef_{j}": coef[j] for j in range(k)},
        "intercepts": {"intercept": intercept},
    })
    return outs


def add_link(g: Graph, margins: list[str], function: str) -> list[str]:
    """Append a ``link`` step mapping ``margins`` through ``function``; return its outputs
    (``identity`` adds nothing). Shared by every family that ends in margins."""
    if function == "identity":
        return margins
    n_out = 2 if function == "logistic2" else len(margins)
    outs = g.new_columns(function, n_out)
    g.add_step("link", name=f"link_{function}", inputs=margins, outputs=outs, family=FAMILY,
               params={"function": function})
    return outs


def add_scale(g: Graph, margins: list[str], factor: float, *, name: str = "scale") -> list[str]:
    """``factor * margin`` per column as a diagonal ``linear`` step: one exact float64 product
    per value (the zero off-diagonal terms add +0.0). ``factor == 1`` adds nothing."""
    if factor == 1.0:
        return margins
    k = len(margins)
    outs = g.new_columns(name, k)
    coef = np.eye(k) * factor
    g.add_step("linear", name=name, inputs=margins, outputs=outs, family=FAMILY,
               tables={"coefficients": {f"coef_{j}": coef[:, j] for j in range(k)},
                       "intercepts": {"intercept": np.zeros(k)}})
    return outs


def regression_link(est: Any, link_name: str) -> str:
    """Our link function for scikit-learn's ``IdentityLink`` / ``LogLink``."""
    links = {"IdentityLink": "identity", "LogLink": "exp"}
    if link_name not in links:
        raise ExportError(f"{type(est).__name__} with link {link_name} is not supported")
    return links[link_name]


@register("sklearn.LinearRegression", "sklearn.Ridge", "sklearn.RidgeCV", "sklearn.Lasso",
          "sklearn.LassoCV", "sklearn.ElasticNet", "sklearn.ElasticNetCV", "sklearn.Lars",
          "sklearn.LassoLars", "sklearn.BayesianRidge", "sklearn.ARDRegression",
          "sklearn.HuberRegressor", "sklearn.SGDRegressor", "sklearn.LinearSVR",
          "sklearn.QuantileRegressor", "sklearn.OrthogonalMatchingPursuit")
def export_linear_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = _linear_step(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    set_regressor_outputs(g, margins)
    return margins


@register("sklearn.PoissonRegressor", "sklearn.GammaRegressor", "sklearn.TweedieRegressor")
def export_glm_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = _linear_step(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    link = type(est._base_loss.link).__name__ if hasattr(est, "_base_loss") else "LogLink"
    values = add_link(g, margins, regression_link(est, link))
    set_regressor_outputs(g, values)
    return values


@register("sklearn.LogisticRegression", "sklearn.LogisticRegressionCV")
def export_logistic_regression(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = _linear_step(g, cols, est.coef_, est.intercept_, "logistic_regression")
    n_classes = len(est.classes_)
    if n_classes == 2:
        proba = add_link(g, margins, "logistic2")
    else:
        proba = add_link(g, margins, "softmax")
    set_classifier_outputs(g, est.classes_, proba=proba, decision=margins, label="decision")
    return proba


@register("sklearn.SGDClassifier")
def export_sgd_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = _linear_step(g, cols, est.coef_, est.intercept_, "sgd_classifier")
    proba = None
    if est.loss == "log_loss":
        proba = (add_link(g, margins, "logistic2") if len(est.classes_) == 2
                 else add_link(g, margins, "logistic_ovr"))
    set_classifier_outputs(g, est.classes_, proba=proba, decision=margins, label="decision")
    return proba or margins


@register("sklearn.LinearSVC", "sklearn.RidgeClassifier", "sklearn.RidgeClassifierCV",
          "sklearn.Perceptron", "sklearn.PassiveAggressiveClassifier")
def export_linear_decision_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = _linear_step(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    set_classifier_outputs(g, est.classes_, decision=margins, label="decision")
    return margins
