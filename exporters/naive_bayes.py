"""Family ``naive_bayes`` exporters: scikit-learn's naive Bayes classifiers -> one
``naive_bayes`` step (probabilities, and the joint log-likelihoods ``predict`` takes the argmax
of).

=================  ===========================================================================
GaussianNB         ``gaussian`` inputs (``theta_``, ``var_``, which already holds
                   ``var_smoothing``); log prior ``ln(class_prior_)``
MultinomialNB      ``linear`` inputs (``feature_log_prob_``); ``class_log_prior_``
ComplementNB       ``linear`` inputs (``feature_log_prob_``); no prior (sklearn adds it only
                   for a single class)
BernoulliNB        ``linear`` inputs ``w = flp - ln(1 - exp(flp))``, each binarized at
                   ``binarize`` (unless None); prior ``class_log_prior_ + sum ln(1 - exp(flp))``
                   (scikit-learn's own decomposition)
CategoricalNB      ``categorical`` inputs, categories ``0 .. n_categories_[f] - 1``, truncated to
                   integers first as scikit-learn's cast does; any other value is refused (as
                   scikit-learn refuses negative values and fails on unseen categories)
=================  ===========================================================================

Every estimator normalises with ``logsumexp`` (scikit-learn's ``_logsumexp``) and refuses
missing and infinite inputs, as scikit-learn's input validation does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.build.naive_bayes import add_naive_bayes
from scorer.build.outputs import set_classifier_outputs
from scorer.errors import ExportError

from .registry import register

FAMILY = "naive_bayes"


def _numeric(g: Graph, cols: list[str], est: Any) -> None:
    name = type(est).__name__
    for c in cols:
        if g.is_codes(c):
            raise ExportError(f"{name} received string column '{c}': encode it first "
                              "(OrdinalEncoder / OneHotEncoder)")
    if getattr(est, "n_features_in_", len(cols)) != len(cols):
        raise ExportError(f"{name} was fitted on {est.n_features_in_} features but receives "
                          f"{len(cols)} columns")
    # scikit-learn's input validation refuses NaN and +/-inf for every naive Bayes model
    g.require(cols, nan=False, inf=False)


def _outputs(g: Graph, est: Any, probs: list[str], jll: list[str]) -> list[str]:
    set_classifier_outputs(g, est.classes_, proba=probs, label="proba")
    # predict() is the argmax of the joint log-likelihood: exp() of nearly equal values may
    # round to equal probabilities, so the label reads the jll columns themselves
    g.outputs[-1].columns = list(jll)
    return probs


@register("sklearn.GaussianNB")
def export_gaussian_nb(est: Any, g: Graph, cols: list[str]) -> list[str]:
    if np.asarray(est.theta_).dtype != np.float64:
        raise ExportError(f"GaussianNB was fitted on {np.asarray(est.theta_).dtype} data; "
                          "its predict then computes partly in that dtype: refit it on "
                          "float64 data")
    _numeric(g, cols, est)
    probs, jll = add_naive_bayes(
        g, cols, name="gaussian_nb", log_prior=np.log(est.class_prior_),
        kinds=["gaussian"] * len(cols), mean=np.asarray(est.theta_).T,
        variance=np.asarray(est.var_).T)
    return _outputs(g, est, probs, jll)


@register("sklearn.MultinomialNB", "sklearn.ComplementNB")
def export_linear_nb(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, est)
    complement = type(est).__name__ == "ComplementNB"
    k = len(est.classes_)
    prior = (np.zeros(k) if complement and k != 1
             else np.asarray(est.class_log_prior_, dtype=np.float64))
    probs, jll = add_naive_bayes(
        g, cols, name="complement_nb" if complement else "multinomial_nb", log_prior=prior,
        kinds=["linear"] * len(cols), weight=np.asarray(est.feature_log_prob_).T)
    return _outputs(g, est, probs, jll)


@register("sklearn.BernoulliNB")
def export_bernoulli_nb(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, est)
    flp = np.asarray(est.feature_log_prob_, dtype=np.float64)
    neg = np.log(1 - np.exp(flp))  # the same expressions as BernoulliNB._joint_log_likelihood
    b = np.nan if est.binarize is None else float(est.binarize)
    probs, jll = add_naive_bayes(
        g, cols, name="bernoulli_nb", log_prior=est.class_log_prior_ + neg.sum(axis=1),
        kinds=["linear"] * len(cols), weight=(flp - neg).T, binarize=np.full(len(cols), b))
    return _outputs(g, est, probs, jll)


@register("sklearn.CategoricalNB")
def export_categorical_nb(est: Any, g: Graph, cols: list[str]) -> list[str]:
    _numeric(g, cols, est)
    n = len(cols)
    categories = []
    for f in range(n):
        flp = np.asarray(est.feature_log_prob_[f], dtype=np.float64)  # (k, n_categories)
        categories += [(f, float(c), flp[:, c]) for c in range(flp.shape[1])]
    probs, jll = add_naive_bayes(
        g, cols, name="categorical_nb", log_prior=est.class_log_prior_,
        kinds=["categorical"] * n, truncate=np.ones(n, dtype=bool),
        unknown=np.ones(n, dtype=bool), categories=categories)
    return _outputs(g, est, probs, jll)
