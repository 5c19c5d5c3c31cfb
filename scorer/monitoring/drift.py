"""Comparing an observed profile with the reference: PSI and Jensen-Shannon distance per
feature, and the thresholds that turn them into levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import PSI_EPSILON, divergences
from .profile import Profile

#: default PSI thresholds: below the first is stable, from the second on drift (an alert)
DEFAULT_THRESHOLDS = (0.1, 0.2)
LEVELS = ("ok", "warn", "alert")


@dataclass(frozen=True)
class Thresholds:
    """PSI levels: ``psi < warn`` ok, ``warn <= psi < alert`` warn, ``psi >= alert`` alert."""

    warn: float = DEFAULT_THRESHOLDS[0]
    alert: float = DEFAULT_THRESHOLDS[1]

    def __post_init__(self) -> None:
        if not (0 <= self.warn <= self.alert) or not np.isfinite(self.alert):
            raise ValueError(f"drift thresholds must be 0 <= warn <= alert, got "
                             f"{self.warn}, {self.alert}")

    @classmethod
    def parse(cls, text: str, *, option: str = "--drift-thresholds") -> Thresholds:
        """``"0.1,0.2"`` (warn, alert) or one number (both); errors name ``option``."""
        try:
            parts = [float(p) for p in text.split(",")]
        except ValueError as exc:
            raise ValueError(f"{option}: '{text}' is not WARN,ALERT (numbers)") from exc
        if len(parts) not in (1, 2):
            raise ValueError(f"{option}: '{text}' is not WARN,ALERT")
        return cls(parts[0], parts[-1])

    def level(self, psi: float) -> str:
        """"ok", "warn" or "alert" ("ok" for NaN: nothing to compare)."""
        if not psi >= self.warn:
            return "ok"
        return "alert" if psi >= self.alert else "warn"


@dataclass
class FeatureDrift:
    """One feature's drift against the reference.

    ``role`` is ``"input"`` or ``"output"``; ``psi`` / ``js`` are NaN when either side
    counted no rows.
    """

    name: str
    role: str
    psi: float
    js: float
    reference_rows: int
    current_rows: int


def compare(reference: Profile, current: Profile, *,
            eps: float = PSI_EPSILON) -> list[FeatureDrift]:
    """PSI and JS distance of every feature of ``current`` against ``reference`` (same
    layout), in profile order."""
    if not reference.same_layout(current):
        raise ValueError("the current profile does not have the reference's bins")
    return compare_flat(reference, reference.flat_counts(), current.flat_counts(), eps=eps)


def compare_flat(layout: Profile, ref: np.ndarray, cur: np.ndarray, *,
                 eps: float = PSI_EPSILON) -> list[FeatureDrift]:
    """:func:`compare` on flat counts (total bins,) of ``layout``."""
    off = layout.offsets()
    n = len(off) - 1
    psi, js = np.empty(n), np.empty(n)
    divergences(np.ascontiguousarray(ref, np.int64), np.ascontiguousarray(cur, np.int64),
                off, eps, psi, js)
    n_in = len(layout.inputs)
    return [FeatureDrift(f.name, "input" if i < n_in else "output", float(psi[i]),
                         float(js[i]), int(ref[off[i]:off[i + 1]].sum()),
                         int(cur[off[i]:off[i + 1]].sum()))
            for i, f in enumerate(layout.features)]
