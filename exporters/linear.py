"""Family ``linear`` exporters: scikit-learn linear models -> ``linear`` (+ ``link``) steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.linear import add_linear, add_link
from scorer.build.outputs import set_classifier_outputs, set_regressor_outputs
from scorer.errors import ExportError

from .registry import register

FAMILY = "linear"


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
    margins = add_linear(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    # (LinearRegression fitted on y of shape (n, 1) keeps coef_ 2-D: predict is (n, 1))
    set_regressor_outputs(g, margins, two_dimensional=np.ndim(est.coef_) == 2)
    return margins


@register("sklearn.PoissonRegressor", "sklearn.GammaRegressor", "sklearn.TweedieRegressor")
def export_glm_regressor(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = add_linear(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    link = type(est._base_loss.link).__name__ if hasattr(est, "_base_loss") else "LogLink"
    values = add_link(g, margins, regression_link(est, link))
    set_regressor_outputs(g, values)
    return values


@register("sklearn.LogisticRegression", "sklearn.LogisticRegressionCV")
def export_logistic_regression(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = add_linear(g, cols, est.coef_, est.intercept_, "logistic_regression")
    n_classes = len(est.classes_)
    if n_classes == 2:
        proba = add_link(g, margins, "logistic2")
    else:
        proba = add_link(g, margins, "softmax")
    set_classifier_outputs(g, est.classes_, proba=proba, decision=margins, label="decision")
    return proba


@register("sklearn.SGDClassifier")
def export_sgd_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    margins = add_linear(g, cols, est.coef_, est.intercept_, "sgd_classifier")
    proba = None
    if est.loss == "log_loss":
        proba = (add_link(g, margins, "logistic2") if len(est.classes_) == 2
                 else add_link(g, margins, "logistic_ovr"))
    set_classifier_outputs(g, est.classes_, proba=proba, decision=margins, label="decision")
    return proba or margins


@register("sklearn.LinearSVC", "sklearn.RidgeClassifier", "sklearn.RidgeClassifierCV",
          "sklearn.Perceptron", "sklearn.PassiveAggressiveClassifier")
def export_linear_decision_classifier(est: Any, g: Graph, cols: list[str]) -> list[str]:
    binarizer = getattr(est, "_label_binarizer", None)  # (Ridge classifiers)
    if str(getattr(binarizer, "y_type_", "")).startswith("multilabel"):
        # predict is one 0/1 indicator per label (decision > 0), not one label per row
        raise ExportError(f"{type(est).__name__} trained on a multilabel target (a 2-D "
                          "indicator y) is not supported: its predict gives one indicator "
                          "column per label")
    margins = add_linear(g, cols, est.coef_, est.intercept_, type(est).__name__.lower())
    set_classifier_outputs(g, est.classes_, decision=margins, label="decision")
    return margins
