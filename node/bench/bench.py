"""Node scorer beside the Python scorer on the same bundles (informative).

Usage: python node/bench/bench.py [--rows 100000] [--out benchmarks/results/node-DATE.json]

Exports a few models fitted on synthetic data (20 features), times the Python scorer
(single-row predict_proba / predict, and one batch of --rows rows) and the Node scorer
(node/bench/bench.mjs: one row as an object, one row as a matrix, the same batch), and writes
both to a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def models():
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest_100": RandomForestClassifier(n_estimators=100, max_depth=8,
                                                    random_state=0),
        "hist_gb_100": HistGradientBoostingClassifier(max_iter=100, random_state=0),
    }
    try:
        import xgboost

        out["xgboost_100"] = xgboost.XGBClassifier(n_estimators=100, max_depth=6,
                                                   random_state=0)
    except ImportError:
        pass
    try:
        import lightgbm

        out["lightgbm_100"] = lightgbm.LGBMClassifier(n_estimators=100, num_leaves=31,
                                                      random_state=0, verbose=-1)
    except ImportError:
        pass
    return out


def python_times(path: Path, X: np.ndarray) -> dict[str, float]:
    import scorer

    t0 = time.perf_counter()
    m = scorer.load(path)
    load_ms = (time.perf_counter() - t0) * 1e3
    for i in range(500):
        m.predict_proba(X[i : i + 1])
    times = []
    for i in range(5000):
        s = time.perf_counter_ns()
        m.predict_proba(X[i % len(X) : i % len(X) + 1])
        times.append((time.perf_counter_ns() - s) / 1e3)
    m.predict_proba(X[:1000])
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        m.predict_proba(X)
        runs.append(time.perf_counter() - t0)
    return {"load_ms": load_ms, "single_row_us": statistics.median(times),
            "batch_rows": len(X), "batch_rows_per_s": len(X) / statistics.median(runs)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         f"node-{datetime.date.today().isoformat()}.json"))
    args = ap.parse_args()
    import exporters

    rng = np.random.default_rng(0)
    Xtr = rng.normal(size=(5000, 20))
    y = (Xtr[:, 0] + Xtr[:, 1] * Xtr[:, 2] + rng.normal(size=5000) > 0).astype(int)
    X = rng.normal(size=(args.rows, 20))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        xfile = Path(tmp) / "X.f64"
        X.astype("<f8").tofile(xfile)
        for name, est in models().items():
            est.fit(Xtr, y)
            path = Path(tmp) / name
            exporters.export(est, path, sample=Xtr[:500])
            py = python_times(path, X)
            out = subprocess.run(["node", str(ROOT / "node" / "bench" / "bench.mjs"), str(path),
                                  str(xfile), "20"], check=True, capture_output=True,
                                 text=True).stdout
            results[name] = {"python": py, "node": json.loads(out)}
            print(name, json.dumps(results[name]), flush=True)
    doc = {
        "what": "Node scorer (node/) beside the Python scorer, same bundles, synthetic data "
                "with 20 features; single row: median of 5000 calls; batch: median of 3",
        "command": "python node/bench/bench.py --rows " + str(args.rows),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "node": subprocess.run(["node", "--version"], capture_output=True,
                                           text=True).stdout.strip(),
                    "load_average": os.getloadavg()},
        "results": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
