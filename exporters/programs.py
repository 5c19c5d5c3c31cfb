"""``expression`` programs the scikit-learn exporters emit to glue estimators together
(averaging, voting, calibration maps, row norms, products): a small builder over the opcode
table of :mod:`scorer.kernels.expression`, plus the helpers that read a sub-estimator's output
columns back from the graph.

Every program here spells out scikit-learn's float64 operations in scikit-learn's order, so
the ``expression`` interpreter reproduces them bit for bit (or to libm's last ulp for ``exp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer.build.graph import Graph
from scorer.errors import ExportError
from scorer.ir import Output
from scorer.kernels.expression import OPCODES

from .registry import export_into


@dataclass
class Program:
    """An ``expression`` program under construction (one instruction per call)."""

    opcode: list[int] = field(default_factory=list)
    arg: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def emit(self, name: str, arg: int = 0, value: float = 0.0) -> Program:
        self.opcode.append(OPCODES[name])
        self.arg.append(int(arg))
        self.value.append(float(value))
        return self

    def load(self, j: int) -> Program:
        return self.emit("LOAD", j)

    def loadout(self, j: int) -> Program:
        return self.emit("LOADOUT", j)

    def const(self, v: float) -> Program:
        return self.emit("CONST", 0, v)

    def store(self, j: int) -> Program:
        return self.emit("STORE", j)

    def __len__(self) -> int:
        return len(self.opcode)

    def table(self) -> dict[str, np.ndarray]:
        return {"opcode": np.array(self.opcode, dtype=np.int32),
                "arg": np.array(self.arg, dtype=np.int32),
                "value": np.array(self.value, dtype=np.float64)}


def add_program(g: Graph, name: str, inputs: list[str], n_out: int, prog: Program, *,
                out_names: list[str] | None = None, nan_out: str = "propagate") -> list[str]:
    """Append an ``expression`` step running ``prog``; return its ``n_out`` output columns."""
    outs = g.new_columns(name, n_out) if out_names is None else g.new_columns(name,
                                                                              names=out_names)
    g.add_step("expression", name=name, inputs=inputs, outputs=outs, family="expression",
               tables={"program": prog.table()}, nan_out=nan_out)
    return outs


def argmax_index(g: Graph, cols: list[str], name: str) -> str:
    """A column holding the 0-based index of the largest of ``cols``, the first on ties
    (``np.argmax``; a NaN column never wins, so a row of NaN gives 0)."""
    p = Program()
    best, idx = 0, 1
    p.load(0).store(best).const(0.0).store(idx)
    for j in range(1, len(cols)):
        # if x_j > best: best = x_j; idx = j   (strictly greater: the first maximum stays)
        p.load(j).loadout(best).emit("GT").emit("SKIP_UNLESS", 4)
        p.load(j).store(best).const(float(j)).store(idx)
    return add_program(g, name, cols, 2, p, out_names=["best", "index"])[1]


def threshold_index(g: Graph, col: str, threshold: float, name: str) -> str:
    """``1.0 if col > threshold else 0.0`` (NaN stays NaN): a binary decision's class index."""
    p = Program().load(0).const(threshold).emit("GT").store(0)
    return add_program(g, name, [col], 1, p)[0]


@dataclass
class SubOutputs:
    """What a sub-estimator's exporter declared, read back from the graph."""

    outputs: list[Output]
    returned: list[str]
    task: str

    def columns(self, kind: str) -> list[str]:
        return [o.column for o in self.outputs if o.kind == kind and o.column is not None]

    @property
    def label(self) -> Output | None:
        return next((o for o in self.outputs if o.kind == "label"), None)


def export_sub(est: Any, g: Graph, cols: list[str]) -> SubOutputs:
    """Export ``est`` (a member of an ensemble) reading ``cols`` and return its declared
    outputs, leaving the graph's own outputs and task as they were."""
    saved = (g.outputs, g.task)
    g.outputs = []
    try:
        returned = export_into(est, g, cols)
        sub = SubOutputs(outputs=list(g.outputs), returned=returned, task=g.task)
    finally:
        g.outputs, g.task = saved
    return sub


def label_index(g: Graph, sub: SubOutputs, name: str) -> str:
    """The column holding the index (into the sub-estimator's ``classes_``) of its
    predicted class, built from its label output's rule."""
    lab = sub.label
    if lab is None:
        raise ExportError(f"{name}: the member estimator declares no label")
    if lab.rule == "argmax":
        cols = list(lab.columns or [])
        return argmax_index(g, cols, f"{name}.argmax") if len(cols) > 1 else _zero(g, cols, name)
    if lab.rule == "threshold":
        return threshold_index(g, lab.column, float(lab.threshold), f"{name}.threshold")
    raise ExportError(f"{name}: the member's label rule {lab.rule!r} is not supported")


def _zero(g: Graph, cols: list[str], name: str) -> str:
    return add_program(g, f"{name}.argmax", cols, 1, Program().const(0.0).store(0))[0]


def class_values(classes: Any) -> list[Any]:
    return [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()]


def relabel_classifier_outputs(g: Graph, classes: Any) -> None:
    """Rename a final estimator's class outputs from encoded indices (``0 .. k-1``: what
    the members of a meta-estimator were fitted on) to the meta-estimator's ``classes_``."""
    from scorer.build.outputs import class_type

    values = class_values(classes)
    for o in g.outputs:
        if o.kind in ("probability", "decision") and o.class_label is not None:
            o.class_label = values[int(o.class_label)]
            o.name = f"{o.kind}({o.class_label})"
        elif o.kind == "label":
            o.classes = [values[int(c)] for c in (o.classes or [])]
            o.type = class_type(o.classes)


def require_encoded(sub: Any, what: str) -> list[int]:
    """The member's ``classes_`` as integers (members of scikit-learn's meta-estimators are
    fitted on label-encoded targets)."""
    vals = class_values(sub.classes_)
    if not all(isinstance(v, int | float) and float(v).is_integer() for v in vals):
        raise ExportError(f"{what}: member {type(sub).__name__} has classes {vals[:5]}, "
                          "expected encoded class indices")
    return [int(v) for v in vals]


def pairwise_sum(p: Program, slots: list[int]) -> None:
    """Push the sum of output ``slots`` in NumPy's pairwise order (``pairwise_sum``): under
    8 values a running sum from 0.0; up to 128 eight strided accumulators combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the remainder one by one;
    beyond 128, the two halves (the first a multiple of 8) summed recursively and added."""
    n = len(slots)
    if n < 8:
        p.const(0.0)
        for s in slots:
            p.loadout(s).emit("ADD")
        return
    if n <= 128:
        body = n - n % 8

        def acc(j: int) -> None:
            p.loadout(slots[j])
            for i in range(8 + j, body, 8):
                p.loadout(slots[i]).emit("ADD")

        # ADD pushes b + a (b below): build each pair left operand first
        for quad in ((0, 1, 2, 3), (4, 5, 6, 7)):
            acc(quad[0])
            acc(quad[1])
            p.emit("ADD")
            acc(quad[2])
            acc(quad[3])
            p.emit("ADD")
            p.emit("ADD")
        p.emit("ADD")
        for i in range(body, n):
            p.loadout(slots[i]).emit("ADD")
        return
    n2 = n // 2
    n2 -= n2 % 8
    pairwise_sum(p, slots[:n2])
    pairwise_sum(p, slots[n2:])
    p.emit("ADD")
