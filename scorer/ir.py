"""The intermediate representation shared by every importer, the bundle writer and the scorer.

A model is a list of :class:`Step` objects that read and write named *columns* of one numeric
workspace (rows x columns, float64). Input fields are the first columns; each step appends its
outputs. String fields enter the workspace as category codes (index into the field's
``categories``; -1 for an unseen category, NaN for missing). The output schema names which
columns the caller sees and how labels are derived.

Importers (sklearn, XGBoost, LightGBM, PMML) build these objects; ``scorer.bundle`` writes and
reads them; ``scorer.model`` binds them to kernels. Nothing here imports a training library.
See docs/bundle-format.md for the normative description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: A table is an ordered mapping of column name -> 1-D numpy array (all the same length).
Table = dict[str, np.ndarray]

FIELD_TYPES = ("double", "integer", "string", "boolean")
OUTPUT_TYPES = ("double", "integer", "string", "boolean")
TASKS = ("classification", "regression", "transform")


@dataclass
class Field:
    """One input field of the model, in schema order.

    Parameters
    ----------
    name : str
        Column name the caller supplies.
    type : {"double", "integer", "string", "boolean"}
        Logical type. Numbers enter the workspace as float64; strings as category codes.
    categories : list of str, optional
        For string fields: the vocabulary. Code ``i`` means ``categories[i]``.
    missing : {"allow", "error"}
        Whether a missing value (None / NaN) is accepted for this field.
    infinite : {"allow", "error"}
        Whether +/-inf is accepted (scikit-learn refuses it for most estimators).
    unknown : {"code", "error"}
        For string fields: an unseen category becomes code -1 ("code") or is refused ("error").
    """

    name: str
    type: str = "double"
    categories: list[str] | None = None
    missing: str = "allow"
    infinite: str = "allow"
    unknown: str = "code"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categories is not None:
            d["categories"] = list(self.categories)
        d["missing"] = self.missing
        d["infinite"] = self.infinite
        if self.type == "string":
            d["unknown"] = self.unknown
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Field:
        return cls(
            name=d["name"],
            type=d.get("type", "double"),
            categories=d.get("categories"),
            missing=d.get("missing", "allow"),
            infinite=d.get("infinite", "allow"),
            unknown=d.get("unknown", "code"),
        )


@dataclass
class Step:
    """One operation of the model.

    Parameters
    ----------
    op : str
        Registered op name, e.g. ``"affine"``, ``"tree_ensemble"``.
    op_version : int
        Version of the op's semantics; a reader refuses a version it does not know.
    name : str
        Human-readable step name (unique in the bundle), used in table file names and errors.
    inputs : list of str
        Workspace columns the step reads, in the order the op's tables refer to them.
    outputs : list of str
        Workspace columns the step creates.
    params : dict
        Scalar parameters (JSON types only).
    tables : dict of str -> Table
        Parameter tables by role (``"nodes"``, ``"coefficients"``...).
    """

    op: str
    op_version: int
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)


@dataclass
class Output:
    """One output column of the model as the caller sees it.

    ``kind`` says what it is: ``"value"`` (regression prediction), ``"probability"``,
    ``"decision"`` (decision function / margin), ``"label"`` or ``"transformed"``.

    A plain output copies workspace column ``column``. A label output derives a class:

    - ``rule="argmax"``: ``classes[argmax(columns)]`` (first maximum wins);
    - ``rule="threshold"``: ``classes[1] if column > threshold else classes[0]``.
    """

    name: str
    kind: str
    type: str = "double"
    column: str | None = None
    rule: str | None = None
    columns: list[str] | None = None
    threshold: float | None = None
    classes: list[Any] | None = None
    class_label: Any = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "type": self.type}
        for key in ("column", "rule", "columns", "threshold", "classes"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.class_label is not None:
            d["class"] = self.class_label
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Output:
        return cls(
            name=d["name"],
            kind=d["kind"],
            type=d.get("type", "double"),
            column=d.get("column"),
            rule=d.get("rule"),
            columns=d.get("columns"),
            threshold=d.get("threshold"),
            classes=d.get("classes"),
            class_label=d.get("class"),
        )


@dataclass
class Verification:
    """Sample inputs with the original model's outputs, checked when the bundle loads.

    ``inputs`` has one column per input field (same names); ``expected`` one column per
    output. ``abs_tol`` / ``rel_tol`` come from the family tolerance table at export time.
    """

    inputs: Table
    expected: Table
    abs_tol: float
    rel_tol: float
    #: what the rows exercise, as the exporter measured it (informational, never checked):
    #: ``method`` ("leaves" or "span"), ``rows``, and for "leaves" ``leaves_covered``,
    #: ``leaves_reached``, ``leaves_total``, ``share`` (covered / total)
    coverage: dict[str, Any] | None = None


@dataclass
class Bundle:
    """A whole model: schema, steps, outputs, provenance and verification rows."""

    name: str
    version: str
    task: str
    inputs: list[Field]
    steps: list[Step]
    outputs: list[Output]
    producer: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    verification: Verification | None = None
    #: the reference profile for drift monitoring as its manifest object (docs/bundle-format.md
    #: §7; ``scorer.monitoring.Profile.from_json`` reads it), or None
    drift_reference: dict[str, Any] | None = None
    schema_version: str = "1.0"
    fingerprint: str | None = None
    #: Manifest keys this reader does not know (a newer minor version); kept, never interpreted.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def field(self, name: str) -> Field:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)
