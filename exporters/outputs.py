"""Output-schema helpers shared by the model-family exporters, and the original model's
expected outputs for verification rows (used by ``export`` and by ``conformance``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.ir import Output

from .graph import Graph


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def class_type(classes: list[Any]) -> str:
    if all(isinstance(c, bool | np.bool_) for c in classes):
        return "boolean"
    if all(isinstance(c, int | np.integer) for c in classes):
        return "integer"
    if all(isinstance(c, float | np.floating) for c in classes):
        return "double"
    return "string"


def set_classifier_outputs(g: Graph, classes: Any, *, proba: list[str] | None = None,
                           decision: list[str] | None = None, label: str = "proba") -> None:
    """Declare a classifier's outputs.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        ``estimator.classes_``.
    proba : list of str, optional
        Workspace columns with one probability per class, in ``classes`` order.
    decision : list of str, optional
        Decision-function columns: one per class, or one for a binary model.
    label : {"proba", "decision"}
        Derive the label by argmax of probabilities, or from the decision function
        (argmax, or ``> 0`` for a single binary column) as scikit-learn's ``predict`` does.
    """
    cls = [_py(c) for c in np.asarray(classes).tolist()]
    ctype = class_type(cls)
    g.task = "classification"
    outs: list[Output] = []
    if proba:
        outs += [Output(name=f"probability({c})", kind="probability", column=col,
                        class_label=c) for c, col in zip(cls, proba, strict=True)]
    if decision:
        if len(decision) == 1:
            outs.append(Output(name="decision", kind="decision", column=decision[0]))
        else:
            outs += [Output(name=f"decision({c})", kind="decision", column=col, class_label=c)
                     for c, col in zip(cls, decision, strict=True)]
    if label == "proba":
        outs.append(Output(name="label", kind="label", type=ctype, rule="argmax",
                           columns=list(proba or []), classes=cls))
    elif decision and len(decision) == 1:
        outs.append(Output(name="label", kind="label", type=ctype, rule="threshold",
                           column=decision[0], threshold=0.0, classes=cls))
    else:
        outs.append(Output(name="label", kind="label", type=ctype, rule="argmax",
                           columns=list(decision or []), classes=cls))
    g.outputs = outs


def set_regressor_outputs(g: Graph, value_columns: list[str]) -> None:
    g.task = "regression"
    if len(value_columns) == 1:
        g.outputs = [Output(name="value", kind="value", column=value_columns[0])]
    else:
        g.outputs = [Output(name=f"value({j})", kind="value", column=c)
                     for j, c in enumerate(value_columns)]


def set_transform_outputs(g: Graph, columns: list[str], names: list[str] | None = None) -> None:
    g.task = "transform"
    names = names or [f"x{j}" for j in range(len(columns))]
    g.outputs = [Output(name=n, kind="transformed", column=c)
                 for n, c in zip(names, columns, strict=True)]


def expected_outputs(est: Any, X: Any, outputs: list[Output]) -> dict[str, np.ndarray]:
    """What the original estimator returns for every output column of the schema."""
    cache: dict[str, np.ndarray] = {}
    if type(est).__module__.startswith("xgboost") and type(est).__name__ == "Booster":
        import xgboost  # a raw Booster predicts on a DMatrix only

        X = xgboost.DMatrix(X)

    def call(method: str) -> np.ndarray:
        if method not in cache:
            r = getattr(est, method)(X)
            cache[method] = np.asarray(r.toarray() if hasattr(r, "toarray") else r)
        return cache[method]

    def class_index(label: Any) -> int:
        # PMML documents name classes as strings ("0"), scikit-learn keeps their type (0)
        classes = [str(_py(c)) for c in np.asarray(est.classes_).tolist()]
        return classes.index(str(label))

    result: dict[str, np.ndarray] = {}
    for o in outputs:
        # (a PMML document may add outputs the original does not expose, e.g. vote fractions
        # as "probabilities" of an SVC without predict_proba: there is nothing to compare)
        if o.kind == "probability" and not hasattr(est, "predict_proba"):
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
        elif o.kind == "transformed" and hasattr(est, "transform"):
            result[o.name] = call("transform")[:, outputs.index(o)]
    return result
