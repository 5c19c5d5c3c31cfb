"""Output schemas shared by every importer: classifier, regressor and transform outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Output
from .graph import Graph


def python_scalar(v: Any) -> Any:
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
    cls = [python_scalar(c) for c in np.asarray(classes).tolist()]
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


def set_regressor_outputs(g: Graph, value_columns: list[str], *,
                          two_dimensional: bool = False) -> None:
    """Declare a regressor's value outputs: ``value`` for one target, else ``value(0)``,
    ``value(1)`` ... (``predict`` returns them as columns, shape (n_rows, n_targets)).
    ``two_dimensional``: the one target is a column too (a model fitted on y of shape
    (n, 1) whose ``predict`` returns shape (n_rows, 1))."""
    g.task = "regression"
    if len(value_columns) == 1 and not two_dimensional:
        g.outputs = [Output(name="value", kind="value", column=value_columns[0])]
    else:
        g.outputs = [Output(name=f"value({j})", kind="value", column=c)
                     for j, c in enumerate(value_columns)]


def set_transform_outputs(g: Graph, columns: list[str], names: list[str] | None = None) -> None:
    g.task = "transform"
    names = names or [f"x{j}" for j in range(len(columns))]
    g.outputs = [Output(name=n, kind="transformed", column=c)
                 for n, c in zip(names, columns, strict=True)]
