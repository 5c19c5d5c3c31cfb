"""Building ``expression`` programs (see :mod:`scorer.kernels.expression`) from Python."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..ir import Table
from ..kernels.expression import OPCODES

#: instructions one document may emit in all (a document whose expressions expand beyond
#: this, e.g. deeply nested string functions over large vocabularies, is refused)
MAX_INSTRUCTIONS = 2_000_000


class Budget:
    """Counts the instructions emitted while compiling one document."""

    def __init__(self, limit: int = MAX_INSTRUCTIONS) -> None:
        self.left = limit


_UNLIMITED = Budget(1 << 62)


class Program:
    """An instruction list under construction, with its input columns and set members.

    ``inputs`` are workspace column names; ``LOAD`` operands index into it (deduplicated).
    """

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or _UNLIMITED
        self.opcode: list[int] = []
        self.arg: list[int] = []
        self.value: list[float] = []
        self.inputs: list[str] = []
        self._input_pos: dict[str, int] = {}
        self.sets: list[float] = []

    def __len__(self) -> int:
        return len(self.opcode)

    def charge(self) -> None:
        """Count one unit of compile work against the document's budget (an instruction, or
        a step of inlining that emits none)."""
        self.budget.left -= 1
        if self.budget.left < 0:
            from .fields import PMMLError

            raise PMMLError(f"PMML: the document's expressions expand to more than "
                            f"{MAX_INSTRUCTIONS} instructions")

    def emit(self, name: str, arg: int = 0, value: float = 0.0) -> None:
        self.charge()
        self.opcode.append(OPCODES[name])
        self.arg.append(int(arg))
        self.value.append(float(value))

    def const(self, v: float) -> None:
        self.emit("CONST", value=v)

    def load(self, column: str) -> None:
        pos = self._input_pos.get(column)
        if pos is None:
            pos = self._input_pos[column] = len(self.inputs)
            self.inputs.append(column)
        self.emit("LOAD", pos)

    def skip(self, name: str = "SKIP") -> int:
        """Emit ``SKIP`` / ``SKIP_UNLESS`` whose target :meth:`land` sets later; returns its
        position."""
        self.emit(name, 0)
        return len(self.opcode) - 1

    def land(self, at: int) -> None:
        """Make the skip at position ``at`` continue at the next instruction emitted."""
        self.arg[at] = len(self.opcode) - at - 1

    def select(self, code: str | Callable[[], None],
               values: Sequence[float | str | Callable[[], None]]) -> None:
        """Push ``values[code]``, NaN when the code is none of ``0 .. len(values) - 1`` (e.g.
        missing): ``IF(code == 0, v0, IF(code == 1, v1, ... NaN))``. The code, and each value,
        is a workspace column (str, loaded) or a callable pushing it (the code's is called once
        per value); a value may also be a constant (float)."""
        for j, v in enumerate(values):
            self._push(code)
            self.const(float(j))
            self.emit("EQ")
            self._push(v)
        self.const(math.nan)
        for _ in values:
            self.emit("IF")

    def interpolate(self, column: str, x0: float, y0: float, x1: float, y1: float) -> None:
        """Push ``y0 + (column - x0) * (y1 - y0) / (x1 - x0)``, in exactly that order (the
        line through two points: NormContinuous's segments and their inverse)."""
        self.const(y0)
        self.load(column)
        self.const(x0)
        self.emit("SUB")
        self.const(y1 - y0)
        self.emit("MUL")
        self.const(x1 - x0)
        self.emit("DIV")
        self.emit("ADD")

    def _push(self, v: float | str | Callable[[], None]) -> None:
        if callable(v):
            v()
        elif isinstance(v, str):
            self.load(v)
        else:
            self.const(float(v))

    def in_set(self, members: list[float]) -> None:
        start = len(self.sets)
        self.sets.extend(float(m) for m in members)
        self.emit("IN_SET", start, len(members))

    def tables(self) -> dict[str, Table]:
        t: dict[str, Table] = {"program": {
            "opcode": np.asarray(self.opcode, dtype=np.int32),
            "arg": np.asarray(self.arg, dtype=np.int32),
            "value": np.asarray(self.value, dtype=np.float64)}}
        if self.sets:
            t["sets"] = {"value": np.asarray(self.sets, dtype=np.float64)}
        return t


def f32(v: float) -> float:
    """``v`` rounded to the nearest float32, as a Python float."""
    return float(np.float32(v)) if math.isfinite(v) else v
