"""Output-schema helpers shared by the model-family exporters, and the original model's
expected outputs for verification rows (used by ``export`` and by ``conformance``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.build.outputs import python_scalar
from scorer.ir import Output

#: sklearn2pmml's output fields of an outlier detector -> the scikit-learn method they are
#: (``outlier`` is ``predict(X) == -1``)
_OUTLIER_FIELDS = {"decisionFunction": "decision_function", "outlier": "predict",
                   "predict(outlier)": "predict"}


def expected_outputs(est: Any, X: Any, outputs: list[Output]) -> dict[str, np.ndarray]:
    """What the original estimator returns for every output column of the schema."""
    cache: dict[str, np.ndarray] = {}
    if type(est).__module__.startswith("xgboost") and type(est).__name__ == "Booster":
        import xgboost  # a raw Booster predicts on a DMatrix only

        # (enable_categorical: a Booster trained on pandas category columns needs it to
        # predict; numeric data reads the same)
        X = xgboost.DMatrix(X, enable_categorical=True)

    def call(method: str) -> np.ndarray:
        if method not in cache:
            r = getattr(est, method)(X)
            cache[method] = np.asarray(r.toarray() if hasattr(r, "toarray") else r)
        return cache[method]

    def class_index(label: Any) -> int:
        # PMML documents name classes as strings ("0"), scikit-learn keeps their type (0)
        classes = [str(python_scalar(c)) for c in np.asarray(est.classes_).tolist()]
        return classes.index(str(label))

    result: dict[str, np.ndarray] = {}
    for o in outputs:
        # (a PMML document may add outputs the original does not expose, e.g. vote fractions
        # as "probabilities" of an SVC without predict_proba: there is nothing to compare)
        if o.kind == "probability" and not hasattr(est, "predict_proba"):
            continue
        if _OUTLIER_FIELDS.get(o.name) and hasattr(est, "score_samples") and not hasattr(
                est, "predict_proba"):
            # an outlier detector's PMML document (sklearn2pmml's IsolationForest fields)
            r = call(_OUTLIER_FIELDS[o.name])
            result[o.name] = r == -1 if o.name == "outlier" else r
            continue
        # nor a member's probabilities that a document also returns (sklearn2pmml's
        # StackingClassifier: 'probability(2, 0)' is member 2's): the model's own outputs
        # are named probability(<class>), in bundles and sklearn2pmml documents alike
        if o.kind == "probability" and o.name != f"probability({o.class_label})":
            continue
        if o.kind == "probability":
            result[o.name] = call("predict_proba")[:, class_index(o.class_label)]
        elif o.kind == "decision":
            d = call("decision_function")
            result[o.name] = d if d.ndim == 1 else d[:, class_index(o.class_label)]
        elif o.kind in ("label", "value"):
            p = call("predict")
            if p.ndim == 2:
                j = int(o.name[len("value("):-1]) if o.name.startswith("value(") else 0
                p = p[:, j]
            result[o.name] = p
        elif o.kind == "score":  # an outlier detector's score_samples
            result[o.name] = call("score_samples")
        elif o.kind == "transformed" and hasattr(est, "transform"):
            result[o.name] = call("transform")[:, outputs.index(o)]
    return result
