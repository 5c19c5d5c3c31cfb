"""Golden test vectors: language-neutral inputs and expected outputs for a bundle, so that a
scorer written in another language can prove it implements docs/bundle-format.md.

The inputs are the bundle's verification rows (real data, with the original model's outputs)
plus edge rows derived from them: every field missing where the schema allows it, and an unseen
category for string fields that accept one. The expected outputs are tablescore's, after the
Numba kernels and the NumPy reference implementation agree on them, and the verification rows
agree with the original model.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from scorer.bundle import read_bundle
from scorer.errors import BundleError
from scorer.files import atomic_output, writing
from scorer.ir import Bundle
from scorer.model import Model, check_close

#: ops whose outputs vectors.json also records per row (``columns``), to be matched exactly
_EXACT_OPS = ("tree_ensemble",)


def _edge_rows(bundle: Bundle, base: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """One row per field with that field missing (when allowed) or unseen (strings)."""
    first = {k: (v[0] if len(v) else None) for k, v in base.items()}
    rows: list[dict[str, Any]] = []
    for f in bundle.inputs:
        if f.missing == "allow":
            r = dict(first)
            r[f.name] = None
            rows.append(r)
        if f.type == "string" and f.unknown == "code":
            r = dict(first)
            r[f.name] = "__unseen_category__"
            rows.append(r)
    return {f.name: [r[f.name] for r in rows] for f in bundle.inputs}


def _column(values: Any, ftype: str) -> np.ndarray:
    if ftype == "string":
        return np.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                         for v in values], dtype=object)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def write_vectors(bundle_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``inputs.csv``, ``expected.csv`` and ``vectors.json`` into ``out_dir``.

    Returns the directory. Raises :class:`VerificationError` if the kernels and the reference
    disagree (then no vectors are written: they would not be golden).
    """
    bundle = read_bundle(bundle_path)
    model = Model(bundle, verify=True)
    v = bundle.verification
    if v is None:
        raise BundleError(f"bundle '{bundle_path}' has no verification rows to make vectors "
                          "of: export it with a sample (exporters.export(..., sample=X) or "
                          "tablescore export --sample)")
    edge = _edge_rows(bundle, v.inputs)
    inputs = {f.name: np.concatenate([_column(v.inputs[f.name], f.type),
                                      _column(edge[f.name], f.type)])
              for f in bundle.inputs}
    got = model.score_arrays(inputs)
    ref = model.score_arrays(inputs, reference=True)
    for name in got:
        check_close(got[name], ref[name], abs_tol=v.abs_tol, rel_tol=v.rel_tol,
                    what="kernel vs reference", column=name)
    out = Path(out_dir)
    import pandas as pd

    n = len(next(iter(inputs.values())))
    # the raw outputs of tree steps (margins before any link): tree ensembles are specified
    # bit for bit (op tree_ensemble), a following link only up to libm's exp
    raw = [c for s in bundle.steps if s.op in _EXACT_OPS for c in s.outputs]
    ws = model.columns(inputs, raw) if raw else np.zeros((n, 0))
    doc = {
        "bundle": str(bundle_path),
        "fingerprint": bundle.fingerprint,
        "schema_version": bundle.schema_version,
        "tolerance": {"abs": v.abs_tol, "rel": v.rel_tol},
        "rows": [
            {"inputs": {k: _json_value(inputs[k][i]) for k in inputs},
             "expected": {k: _json_value(got[k][i]) for k in got},
             **({"columns": {c: _json_value(ws[i, j]) for j, c in enumerate(raw)}}
                if raw else {})}
            for i in range(n)
        ],
    }
    text = json.dumps(doc, indent=1)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    # each file under a temporary name, renamed into place only once all three are written
    # (an error or a full disk leaves the previous vectors, never a mix)
    with atomic_output(out / "inputs.csv") as t_in, \
            atomic_output(out / "expected.csv") as t_exp, \
            atomic_output(out / "vectors.json") as t_json, writing(out):
        pd.DataFrame(inputs).to_csv(t_in, index=False, na_rep="")
        pd.DataFrame(got).to_csv(t_exp, index=False, na_rep="", float_format="%.17g")
        t_json.write_text(text)
    return out
