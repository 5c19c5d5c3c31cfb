"""One parity assertion used by every family's tests: export -> disk -> load -> compare the
original model, the Numba kernels and the NumPy reference, with the tolerance table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import exporters
import scorer
from exporters.outputs import expected_outputs
from scorer.model import check_close
from scorer.tolerances import tolerance_for


def assert_parity(est: Any, X: Any, path: Path, *, sample: Any = None,
                  families: list[str] | None = None, check_single_rows: int = 5) -> scorer.Model:
    """Export ``est`` to ``path``, reload it, and check every output column on ``X``.

    Labels must be equal; numbers within the family tolerance. The NumPy reference must agree
    with the Numba kernels to the same tolerance, and single-row calls with batch calls.
    """
    bundle = exporters.export(est, path, sample=X if sample is None else sample)
    model = scorer.load(path)
    # The exporter records the tolerance of the families it used (tolerance table), e.g.
    # "xgboost" for float32 accumulation; tests may name families explicitly instead.
    tol = tolerance_for(families) if families else bundle_tolerance(bundle)
    want = expected_outputs(est, X, model.bundle.outputs)
    got = model.score_arrays(X)
    ref = model.score_arrays(X, reference=True)
    for name, expected in want.items():
        check_close(got[name], np.asarray(expected), abs_tol=tol.abs, rel_tol=tol.rel,
                    what="numba vs original", column=name)
        check_close(ref[name], np.asarray(expected), abs_tol=tol.abs, rel_tol=tol.rel,
                    what="reference vs original", column=name)
    # a few single rows, through the dict-of-scalars path, must equal the batch result
    rows = X.iloc if hasattr(X, "iloc") else None
    for i in range(min(check_single_rows, len(X))):
        row = rows[i].to_dict() if rows is not None else X[i]
        one = model.score_arrays(row)
        for name in want:
            check_close(one[name], got[name][i : i + 1], abs_tol=0.0, rel_tol=0.0,
                        what=f"single row {i} vs batch", column=name)
    return model


def bundle_tolerance(bundle) -> Any:
    from scorer.tolerances import Tolerance

    v = bundle.verification
    assert v is not None, "export with a sample must record verification rows"
    return Tolerance(v.abs_tol, v.rel_tol, "recorded at export")


def tree_step(bundle) -> Any:
    """The bundle's (first) ``tree_ensemble`` step."""
    return next(s for s in bundle.steps if s.op == "tree_ensemble")
