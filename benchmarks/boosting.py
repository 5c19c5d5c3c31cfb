"""Speed of the AdaBoost and IsolationForest bundles (#20) beside scikit-learn and ONNX Runtime,
in the same run.

Models (fitted on breast_cancer, scored on 100k rows resampled from it):

- ``adaboost``: ``AdaBoostClassifier(n_estimators=50)`` (stumps), ``predict_proba``;
- ``adaboost_regressor``: ``AdaBoostRegressor(n_estimators=50)`` (depth-3 trees) on the
  mean radius column, ``predict`` (the weighted median);
- ``isolation_forest``: ``IsolationForest(n_estimators=100)``, ``decision_function``.

Per model and engine: the median of ``--repeats`` timings of one single-row call (µs) and of
one 100k-row batch (rows/s), as :mod:`benchmarks.sklearn_meta` measures them (ONNX Runtime:
skl2onnx, one intra-op thread, when installed and it converts the model). Results go to
``benchmarks/results/boosting-<date>.json``::

    .venv/bin/python -m benchmarks.boosting [--rows 100000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .sklearn_meta import _time

#: model -> (scikit-learn method, tablescore output columns, ONNX Runtime output index)
_OUTPUTS = {"adaboost": ("predict_proba", ["probability(0)", "probability(1)"], 1),
            "adaboost_regressor": ("predict", ["value"], 0),
            "isolation_forest": ("decision_function", ["decision"], 1)}


def _models() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor, IsolationForest

    X, y = load_breast_cancer(return_X_y=True)
    return {"X": X,
            "adaboost": AdaBoostClassifier(n_estimators=50, random_state=0).fit(X, y),
            "adaboost_regressor": AdaBoostRegressor(n_estimators=50, random_state=0).fit(
                X[:, 1:], X[:, 0]),
            "isolation_forest": IsolationForest(n_estimators=100, random_state=0).fit(X)}


def _onnx(est: Any, n_features: int) -> Callable[[np.ndarray], Any] | None:
    """An ONNX Runtime session's ``run`` for ``est`` (float32 input: what skl2onnx's tree
    converters take), or None."""
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    options = {id(est): {"zipmap": False}} if hasattr(est, "classes_") else None
    try:
        onx = to_onnx(est, np.zeros((1, n_features), dtype=np.float32), options=options,
                      target_opset={"": 17, "ai.onnx.ml": 3})
        sess = ort.InferenceSession(onx.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # no converter, or a graph ONNX Runtime refuses: not measured
        return None
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x.astype(np.float32)})


def run(rows: int, repeats: int) -> dict[str, Any]:
    import exporters
    import scorer

    m = _models()
    X = m.pop("X")
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"date": dt.date.today().isoformat(), "rows": rows,
                           "repeats": repeats, "cpu": platform.processor() or platform.machine(),
                           "cpu_count": os.cpu_count(), "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in m.items():
            Xm = X[:, 1:] if name == "adaboost_regressor" else X
            big = np.ascontiguousarray(Xm[rng.integers(0, len(Xm), rows)])
            one = np.ascontiguousarray(big[:1])
            exporters.export(est, Path(tmp) / name, sample=Xm)
            model = scorer.load(Path(tmp) / name)
            method, cols, onnx_index = _OUTPUTS[name]
            engines: dict[str, Callable[[np.ndarray], Any]] = {
                "tablescore": model.score_arrays, "sklearn": getattr(est, method)}
            onnx = _onnx(est, Xm.shape[1])
            if onnx is not None:
                engines["onnxruntime"] = onnx
            want = np.asarray(getattr(est, method)(big[:1000])).reshape(1000, -1)
            res: dict[str, Any] = {}
            for engine, fn in engines.items():
                got = fn(big[:1000])
                if engine == "tablescore":
                    got = np.column_stack([got[c] for c in cols])
                elif engine == "onnxruntime":
                    got = got[onnx_index]
                got = np.asarray(got, dtype=np.float64).reshape(1000, -1)
                single = _time(lambda fn=fn, one=one: fn(one), repeats, 200)
                batch = _time(lambda fn=fn, big=big: fn(big), repeats, 1)
                res[engine] = {"single_row_us": single * 1e6, "batch_rows_per_s": rows / batch,
                               "max_abs_diff_vs_sklearn": float(np.abs(got - want).max())}
            out["results"][name] = res
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    res = run(args.rows, args.repeats)
    path = args.out or Path(__file__).parent / "results" / f"boosting-{res['date']}.json"
    path.write_text(json.dumps(res, indent=2) + "\n")
    for name, engines in res["results"].items():
        for engine, r in engines.items():
            print(f"{name:18s} {engine:12s} single {r['single_row_us']:9.1f} us   "
                  f"batch {r['batch_rows_per_s']:12,.0f} rows/s   "
                  f"diff {r['max_abs_diff_vs_sklearn']:.1e}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
