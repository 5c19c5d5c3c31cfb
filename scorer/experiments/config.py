"""An experiment as ``DIR/<model>/config.json`` declares it (docs/experiments.md)::

    {"experiment": {"name": "churn-2026-12", "unit": "customer_id", "salt": "...",
                    "arms": [{"name": "control", "version": "1", "weight": 0.5},
                             {"name": "candidate", "version": "2", "weight": 0.5}],
                    "shadow": null}}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .assign import bounds, salt_state

_KEYS = {"name", "unit", "salt", "arms", "shadow"}
_ARM_KEYS = {"name", "version", "weight"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Arm:
    name: str
    #: a version number or an alias
    version: str
    weight: float


@dataclass(frozen=True)
class Experiment:
    """One model's experiment."""

    name: str
    unit: str
    salt: str
    arms: tuple[Arm, ...]
    shadow: str | None
    #: upper bucket bound of each arm (Python ints: ``bisect`` on them is cheaper than NumPy
    #: per request, and the dataclass compares by value)
    upper: tuple[int, ...]
    # --- derived once here, read on every request (not part of the value) ---------------------
    #: the hash state after the salt (assign.salt_state): a request hashes only its unit
    state: Any = field(init=False, compare=False, repr=False)
    #: ``{unit}``: the input column the router reads (Pipeline.extra_inputs)
    units: frozenset[str] = field(init=False, compare=False, repr=False)
    #: index of the arm named ``control``
    control: int = field(init=False, compare=False, repr=False)
    #: per arm, the response parameters it answers with (shared: never mutate them)
    responses: tuple[dict[str, str], ...] = field(init=False, compare=False, repr=False)
    #: the control arm's response parameters for a unit of the permanent control group
    holdout_response: dict[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: derived fields are set once, here
        put(self, "state", salt_state(self.salt))
        put(self, "units", frozenset((self.unit,)))
        names = [a.name for a in self.arms]
        control = names.index("control") if "control" in names else -1
        put(self, "control", control)
        put(self, "responses", tuple({"arm": a.name, "experiment": self.name}
                                     for a in self.arms))
        put(self, "holdout_response", {"arm": "control", "experiment": self.name,
                                       "holdout": "true"})

    def arm_named(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)


def parse_experiment(d: Any) -> Experiment:
    """The experiment in a config.json ``experiment`` value; ValueError naming what is wrong."""
    if not isinstance(d, dict):
        raise ValueError("experiment must be an object")
    unknown = set(d) - _KEYS
    missing = {"name", "unit", "salt", "arms"} - set(d)
    if unknown or missing:
        raise ValueError(f"experiment keys: unknown {sorted(unknown)}, missing {sorted(missing)}"
                         f" (allowed: {', '.join(sorted(_KEYS))})")
    for key in ("name", "unit", "salt"):
        if not isinstance(d[key], str) or not d[key]:
            raise ValueError(f"experiment.{key} must be a non-empty string")
    if not _NAME.fullmatch(d["name"]):
        raise ValueError("experiment.name: letters, digits, '_', '.', '-' (at most 128)")
    arms_in = d["arms"]
    if not isinstance(arms_in, list) or not arms_in:
        raise ValueError("experiment.arms must be a non-empty list")
    arms = []
    for i, a in enumerate(arms_in):
        if not isinstance(a, dict) or set(a) != _ARM_KEYS:
            raise ValueError(f"experiment.arms[{i}] must have exactly the keys name, version, "
                             "weight")
        w = a["weight"]
        if (not isinstance(w, int | float) or isinstance(w, bool) or not math.isfinite(w)
                or w < 0):
            raise ValueError(f"experiment.arms[{i}].weight must be a number >= 0")
        if not isinstance(a["name"], str) or not _NAME.fullmatch(a["name"]):
            raise ValueError(f"experiment.arms[{i}].name must be a name")
        if not isinstance(a["version"], str | int) or isinstance(a["version"], bool):
            raise ValueError(f"experiment.arms[{i}].version must be a version or an alias")
        arms.append(Arm(a["name"], str(a["version"]), float(w)))
    if len({a.name for a in arms}) != len(arms):
        raise ValueError("experiment.arms: arm names must be unique")
    total = sum(a.weight for a in arms)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"experiment.arms: weights must sum to 1 (they sum to {total:g})")
    if not any(a.name == "control" for a in arms):
        raise ValueError("experiment.arms: one arm must be named 'control' (the permanent "
                         "control group and the analysis compare against it)")
    shadow = d.get("shadow")
    if shadow is not None and (not isinstance(shadow, str | int) or isinstance(shadow, bool)):
        raise ValueError("experiment.shadow must be null or a version")
    return Experiment(d["name"], d["unit"], d["salt"], tuple(arms),
                      None if shadow is None else str(shadow),
                      tuple(int(x) for x in bounds([a.weight for a in arms])))
