"""Helpers shared by kernel modules."""

from __future__ import annotations

import numpy as np

from ..ir import Step, Table


def table(step: Step, role: str) -> Table:
    try:
        return step.tables[role]
    except KeyError:
        raise KeyError(f"step '{step.name}' has no '{role}' table") from None


def f64(col) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(col, dtype=np.float64))


def i64(col) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(col, dtype=np.int64))


def param_float(step: Step, key: str, default: float | None = None) -> float:
    """Numeric params may be written as "NaN" / "Infinity" / "-Infinity" (JSON has no such)."""
    v = step.params.get(key, default)
    if v is None:
        raise KeyError(f"step '{step.name}' lacks parameter '{key}'")
    return float(v)


def param_choice(step: Step, key: str, options: dict[str, int], default: str | None = None) -> int:
    """The code of a param that names one of ``options`` (``default`` when absent)."""
    v = step.params.get(key, default)
    if v not in options:
        raise ValueError(f"{step.op} step '{step.name}': {key}={v!r} unknown "
                         f"(known: {', '.join(options)})")
    return options[v]
