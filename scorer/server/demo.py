"""The serving part of ``tablescore demo``: publish the demo bundles as a model repository,
serve it with the real gRPC server, score through ``tritonclient`` and print the answers next
to the original model's (the outputs recorded in each bundle's verification rows)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np


def _inputs(tc: Any, bundle: Any, rows: int) -> list[Any]:
    """The first ``rows`` verification rows as request tensors: one FP64 matrix for
    all-numeric models, else one tensor per column (BYTES for strings, "" for missing)."""
    v = bundle.verification
    cols = {k: np.asarray(c)[:rows] for k, c in v.inputs.items()}
    fields = bundle.inputs
    if all(f.type != "string" for f in fields):
        X = np.column_stack([cols[f.name].astype(np.float64) for f in fields])
        inp = tc.InferInput("input", list(X.shape), "FP64")
        inp.set_data_from_numpy(np.ascontiguousarray(X))
        return [inp]
    inputs = []
    for f in fields:
        col = cols[f.name]
        if f.type == "string":
            data = np.array(["" if x is None else str(x) for x in col], dtype=object)
            inp = tc.InferInput(f.name, [len(data)], "BYTES")
        else:
            data = col.astype(np.float64)
            inp = tc.InferInput(f.name, [len(data)], "FP64")
        inp.set_data_from_numpy(data)
        inputs.append(inp)
    return inputs


def _same(got: np.ndarray, expected: np.ndarray, abs_tol: float, rel_tol: float) -> bool:
    if expected.dtype.kind in "fiu" and got.dtype.kind in "fiub":
        g, e = got.astype(np.float64), expected.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ok = (np.abs(g - e) <= abs_tol + rel_tol * np.abs(e)) | (np.isnan(g) & np.isnan(e))
        return bool(ok.all())
    decode = [x.decode() if isinstance(x, bytes) else str(x) for x in got]
    return decode == [str(x) for x in expected]


def serve_and_score(out: str | Path, names: list[str], *, rows: int = 3) -> int:
    """Serve ``out/<name>`` bundles from ``out/repository/<name>/1/`` and score through gRPC.

    Returns the number of models whose served outputs differ from the original model's.
    """
    try:
        import tritonclient.grpc as tc
    except ImportError:
        print("\nserving skipped: tritonclient is not installed (pip install "
              "'tritonclient[grpc]')")
        return 0
    from . import serve

    out = Path(out)
    repo = out / "repository"
    shutil.rmtree(repo, ignore_errors=True)
    for name in names:
        shutil.copytree(out / name, repo / name / "1")
    failures = 0
    with serve(repo, host="127.0.0.1", port=0, poll_interval=0) as server:
        client = tc.InferenceServerClient(server.address)
        print(f"\nserving {repo}/ on {server.address} (gRPC, Open Inference Protocol v2); "
              "scoring through tritonclient")
        for name in names:
            if not client.is_model_ready(name):
                print(f"{name:18s} not ready on the server")
                failures += 1
                continue
            bundle = server.repository.resolve(name).model.bundle
            v = bundle.verification
            if v is None:
                continue
            n = min(rows, len(next(iter(v.inputs.values()))))
            result = client.infer(name, _inputs(tc, bundle, n))
            resp = result.get_response()
            shown = [o.name for o in bundle.outputs if o.kind in ("probability", "value")]
            labels = [o.name for o in bundle.outputs if o.kind == "label"]
            ok = all(_same(result.as_numpy(o), np.asarray(v.expected[o])[:n], v.abs_tol,
                           v.rel_tol) for o in shown + labels if o in v.expected)
            failures += 0 if ok else 1
            print(f"{name}  (served version {resp.model_version}, "
                  f"{'same as the original' if ok else 'DIFFERS from the original'})")
            served = np.column_stack([result.as_numpy(o) for o in shown])
            original = np.column_stack([np.asarray(v.expected[o])[:n] for o in shown])
            for i in range(n):
                label = ""
                if labels:
                    got = result.as_numpy(labels[0])[i]
                    got = got.decode() if isinstance(got, bytes) else got
                    label = f"  label {got!s:>6} / {np.asarray(v.expected[labels[0]])[i]!s:>6}"
                print(f"   row {i}: served {np.array2string(served[i], precision=6)}"
                      f"   original {np.array2string(original[i], precision=6)}{label}")
        client.close()
    return failures
