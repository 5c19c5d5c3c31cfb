"""Speed of two #20 meta-estimator bundles beside ONNX Runtime, in the same run.

Models (fitted on breast_cancer rows, scored on 100k rows resampled from it):

- ``pca_logreg``: ``StandardScaler -> PCA(10) -> LogisticRegression``;
- ``soft_voting``: ``VotingClassifier(soft)`` over a scaled logistic regression, a depth-4
  decision tree and ``GaussianNB``.

Per model and engine: the median of ``--repeats`` timings of one single-row call (µs,
``predict_proba`` / the bundle's outputs for one row, as a request handler would call it), and
of one 100k-row batch (rows/s). Engines: tablescore (Numba kernels), scikit-learn (native), and
ONNX Runtime (skl2onnx conversion, one intra-op thread) when installed. Results go to
``benchmarks/results/sklearn_meta-<date>.json``::

    .venv/bin/python -m benchmarks.sklearn_meta [--rows 100000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _models() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_breast_cancer(return_X_y=True)
    pca = make_pipeline(StandardScaler(), PCA(10), LogisticRegression(max_iter=2000))
    vote = VotingClassifier([
        ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        ("dt", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ("nb", GaussianNB())], voting="soft", flatten_transform=False)  # skl2onnx needs it
    return {"X": X, "pca_logreg": pca.fit(X, y), "soft_voting": vote.fit(X, y)}


def _time(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median seconds per call over ``repeats`` runs of ``inner`` calls each."""
    fn()  # warm (compilation, caches)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        runs.append((time.perf_counter() - t0) / inner)
    return statistics.median(runs)


def _onnx(est: Any, n_features: int) -> tuple[Callable[[np.ndarray], Any], str] | None:
    """An ONNX Runtime session's ``run`` for ``est`` and the dtype it computes in: float64
    where skl2onnx's graph for it type-checks, else float32 (its soft-voting graph with a tree
    member mixes float and double in float64)."""
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    for dtype in (np.float64, np.float32):
        onx = to_onnx(est, np.zeros((1, n_features), dtype=dtype),
                      options={id(est): {"zipmap": False}}, target_opset=17)
        try:
            sess = ort.InferenceSession(onx.SerializeToString(), opts,
                                        providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own Fail type
            continue
        name = sess.get_inputs()[0].name
        return (lambda x, s=sess, d=dtype, n=name: s.run(None, {n: x.astype(d, copy=False)}),
                np.dtype(dtype).name)
    return None


def run(rows: int, repeats: int) -> dict[str, Any]:
    import exporters
    import scorer

    m = _models()
    X = m.pop("X")
    rng = np.random.default_rng(0)
    big = np.ascontiguousarray(X[rng.integers(0, len(X), rows)])
    one = np.ascontiguousarray(big[:1])
    out: dict[str, Any] = {"date": dt.date.today().isoformat(), "rows": rows,
                           "repeats": repeats, "cpu": platform.processor() or platform.machine(),
                           "cpu_count": os.cpu_count(), "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in m.items():
            exporters.export(est, Path(tmp) / name, sample=X[:50])
            model = scorer.load(Path(tmp) / name)
            engines: dict[str, Callable[[np.ndarray], Any]] = {
                "tablescore": model.score_arrays, "sklearn": est.predict_proba}
            onnx = _onnx(est, X.shape[1])
            res: dict[str, Any] = {}
            if onnx is not None:
                engines["onnxruntime"], res["onnx_dtype"] = onnx
            want = est.predict_proba(big[:1000])
            for engine, fn in engines.items():
                got = fn(big[:1000])
                if engine == "tablescore":
                    got = np.column_stack([got[f"probability({c})"] for c in est.classes_])
                elif engine == "onnxruntime":
                    got = got[1]
                single = _time(lambda fn=fn: fn(one), repeats, 200)
                batch = _time(lambda fn=fn: fn(big), repeats, 1)
                res[engine] = {"single_row_us": single * 1e6, "batch_rows_per_s": rows / batch,
                               "max_abs_diff_vs_sklearn": float(np.abs(np.asarray(got) -
                                                                       want).max())}
            out["results"][name] = res
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    res = run(args.rows, args.repeats)
    path = args.out or Path(__file__).parent / "results" / f"sklearn_meta-{res['date']}.json"
    path.write_text(json.dumps(res, indent=2) + "\n")
    for name, engines in res["results"].items():
        for engine, r in engines.items():
            if not isinstance(r, dict):
                continue
            print(f"{name:12s} {engine:12s} single {r['single_row_us']:9.1f} us   "
                  f"batch {r['batch_rows_per_s']:12,.0f} rows/s   "
                  f"diff {r['max_abs_diff_vs_sklearn']:.1e}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
