"""Compare what tablescore returns with what the original model returns, column by column.

``check`` is the function a training script calls right after export, the CLI's
``tablescore conformance check`` calls, and the test-suite uses: it scores the same rows with
the original Python model and with tablescore (in process; over gRPC too when a client
function is given) and reports, per output column, the max absolute error, the max ULP
distance, label mismatches with examples, and pass/fail against the family tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from exporters.outputs import expected_outputs
from scorer.model import Model
from scorer.tolerances import Tolerance, close_mask


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of representable float64 values between ``a`` and ``b`` (0 when equal,
    NaN == NaN counts as 0; NaN vs a number as the maximum int64)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)

    def ordered(x: np.ndarray) -> np.ndarray:
        i = x.view(np.int64)
        # map the sign-magnitude bit pattern onto a monotone integer line
        return np.where(i < 0, np.int64(-(2**63)) - i, i)

    oa, ob = ordered(a), ordered(b)
    hi, lo = np.maximum(oa, ob), np.minimum(oa, ob)
    # exact: the true difference is < 2**64, so modular uint64 subtraction is exact
    d = (hi.view(np.uint64) - lo.view(np.uint64)).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d = np.where(nan_a & nan_b, 0.0, d)
    d = np.where(nan_a ^ nan_b, float(np.iinfo(np.int64).max), d)
    return d


@dataclass
class ColumnResult:
    name: str
    kind: str
    passed: bool
    max_abs_error: float | None = None
    max_ulp: float | None = None
    #: the largest ``|got - expected| / (abs_tol + rel_tol * |expected|)``: at most 1 where
    #: the column passes. Unlike the absolute error it does not grow with the outputs' scale
    #: (a 1e-16 relative difference on an output of 1e300 is an absolute error of 1e284)
    max_tol_ratio: float | None = None
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    model: str
    transport: str
    rows: int
    tolerance: dict[str, float]
    columns: list[ColumnResult]
    #: over gRPC: the served name, the version asked for and the version that answered
    served: dict[str, str] | None = None
    #: what the reader should know beyond the columns (a served version that is not this
    #: bundle)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.columns)

    def to_json(self) -> str:
        d = asdict(self)
        d["passed"] = self.passed
        return json.dumps(d, indent=2, default=lambda o: o.item() if hasattr(o, "item") else o)

    def to_text(self) -> str:
        via = self.transport
        if self.served is not None:
            asked = self.served.get("requested_version") or "default"
            via += (f", served as '{self.served['name']}' version "
                    f"{self.served.get('version') or '?'} (asked: {asked})")
        lines = [f"conformance of '{self.model}' ({via}, {self.rows} rows, tolerance "
                 f"abs {self.tolerance['abs']:g} rel {self.tolerance['rel']:g}): "
                 f"{'PASS' if self.passed else 'FAIL'}",
                 f"  {'column':32s} {'max |err|':>11s} {'max ulp':>10s} {'mismatch':>9s}  result"]
        for c in self.columns:
            err = "-" if c.max_abs_error is None else f"{c.max_abs_error:.3g}"
            ulp = "-" if c.max_ulp is None else f"{c.max_ulp:.0f}"
            lines.append(f"  {c.name:32s} {err:>11s} {ulp:>10s} {c.mismatches:9d}  "
                         f"{'ok' if c.passed else 'FAIL'}")
            for ex in c.examples[:3]:
                lines.append(f"      row {ex['row']}: tablescore {ex['got']!r}, "
                             f"original {ex['expected']!r}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def compare_columns(got: dict[str, np.ndarray], want: dict[str, np.ndarray],
                    kinds: dict[str, str], tol: Tolerance) -> list[ColumnResult]:
    """Per-column comparison of two score dicts (same keys)."""
    results = []
    for name, expected in want.items():
        g = np.asarray(got[name])
        e = np.asarray(expected)
        kind = kinds.get(name, "value")
        if kind == "label" or e.dtype.kind not in "fiub":
            bad = np.array([str(a) != str(b) for a, b in zip(g, e, strict=True)], dtype=bool)
            rows = np.flatnonzero(bad)
            results.append(ColumnResult(
                name=name, kind=kind, passed=not bad.any(), mismatches=int(bad.sum()),
                examples=[{"row": int(r), "got": _py(g[r]), "expected": _py(e[r])}
                          for r in rows[:5]]))
            continue
        g64, e64 = g.astype(np.float64), e.astype(np.float64)
        ok = close_mask(g64, e64, tol.abs, tol.rel)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            same = (g64 == e64) | (np.isnan(g64) & np.isnan(e64))
            err = np.where(same, 0.0, np.abs(g64 - e64))
            ratio = err / (tol.abs + tol.rel * np.abs(e64))
        ratio = np.where(same, 0.0, np.where(np.isnan(ratio), np.inf, ratio))
        rows = np.flatnonzero(~ok)
        results.append(ColumnResult(
            name=name, kind=kind, passed=bool(ok.all()),
            max_abs_error=float(np.nanmax(err)) if len(err) else 0.0,
            max_ulp=float(ulp_distance(g64, e64).max()) if len(err) else 0.0,
            max_tol_ratio=float(ratio.max()) if len(err) else 0.0,
            mismatches=int((~ok).sum()),
            examples=[{"row": int(r), "got": float(g64[r]), "expected": float(e64[r])}
                      for r in rows[:5]]))
    return results


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def check(original: Any, model: Model, X: Any, *, tolerance: Tolerance | None = None,
          transport: str = "in-process",
          score: Callable[[Any], dict[str, np.ndarray]] | None = None) -> Report:
    """Score ``X`` with ``original`` and with tablescore; compare every output column.

    Parameters
    ----------
    original : fitted estimator
        The model as trained (scikit-learn / XGBoost / LightGBM API).
    model : scorer.Model
        The loaded bundle.
    X : DataFrame or array of shape (n_rows, n_features)
        Rows to score.
    tolerance : Tolerance, optional
        Defaults to the tolerance the exporter recorded from the family table.
    score : callable, optional
        Alternative transport: ``score(X) -> {output name: array}`` (e.g. a gRPC client).
    """
    if tolerance is None:
        v = model.bundle.verification
        if v is None:
            from scorer.tolerances import TOLERANCES

            tolerance = TOLERANCES["linear"]
        else:
            tolerance = Tolerance(v.abs_tol, v.rel_tol, "recorded at export")
    want = expected_outputs(original, X, model.bundle.outputs)
    got = score(X) if score is not None else model.score_arrays(X)
    kinds = {o.name: o.kind for o in model.bundle.outputs}
    n = len(next(iter(want.values()))) if want else 0
    return Report(model=model.name, transport=transport, rows=n,
                  tolerance={"abs": tolerance.abs, "rel": tolerance.rel},
                  columns=compare_columns(got, want, kinds, tolerance))
