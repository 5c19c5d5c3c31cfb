"""Drift monitoring benchmark: ``python -m benchmarks.drift [--rows 1000000] [--features 100]``.

1. **Recorder overhead**: in-process pipeline throughput (``scorer.pipeline.Pipeline``, a
   logistic regression on 30 features whose bundle has a reference profile) with the
   :class:`~scorer.monitoring.DriftRecorder` and without, at 1 row per call and at 100k rows
   per call; on and off interleaved, median of the repeats (goal: on >= 95% of off).
2. **Batch report**: ``tablescore drift BUNDLE --data cur.parquet --json --out`` on
   ``--rows`` x ``--features`` (a linear regression, reference from a 100k-row sample; every
   tenth feature shifted by half a standard deviation), wall time of the subprocess (goal
   <= 30 s), beside Evidently's ``DataDriftPreset`` on the same reference and current frames in
   its own virtualenv (``benchmarks/.venvs/evidently``), when installed.

Results: ``benchmarks/results/drift-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY = ROOT / "benchmarks" / ".venvs" / "evidently" / "bin" / "python"

_EVIDENTLY_SCRIPT = """
import sys, time, json
import pandas as pd
t0 = time.perf_counter()
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
t_read = time.perf_counter() - t0
try:
    from evidently import Report
    from evidently.presets import DataDriftPreset
    new_api = True
except ImportError:
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    new_api = False
t1 = time.perf_counter()
report = Report([DataDriftPreset()]) if new_api else Report(metrics=[DataDriftPreset()])
result = report.run(cur, ref) if new_api else report.run(reference_data=ref, current_data=cur)
t_run = time.perf_counter() - t1
t2 = time.perf_counter()
(result if new_api else report).save_html(sys.argv[3])
t_html = time.perf_counter() - t2
import evidently
print(json.dumps({"version": evidently.__version__, "read_s": t_read, "run_s": t_run,
                  "html_s": t_html, "total_s": time.perf_counter() - t0}))
"""


def _export(n_features: int, sample_rows: int, path: Path, seed: int = 0,
            classifier: bool = False) -> np.ndarray:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import exporters

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(sample_rows, n_features))
    w = rng.normal(size=n_features)
    est = (LogisticRegression(max_iter=200).fit(X, X @ w > 0) if classifier
           else LinearRegression().fit(X, X @ w))
    exporters.export(est, path, sample=X, name=path.name)
    return X


def recorder_overhead(tmp: Path, repeats: int = 7) -> dict:
    """Pipeline throughput with / without the drift recorder at 1 and 100k rows."""
    import scorer
    from scorer.monitoring import DriftRecorder
    from scorer.pipeline import ModelResolver, Pipeline

    _export(30, 20_000, tmp / "logreg", classifier=True)
    model = scorer.load(tmp / "logreg")
    off = Pipeline(ModelResolver({"m": model}))
    on = Pipeline(ModelResolver({"m": model}), recorders=[DriftRecorder(300)])
    rng = np.random.default_rng(1)
    out = {}
    for rows, calls in ((1, 20_000), (100_000, 20)):
        X = rng.normal(size=(rows, 30))
        for p in (off, on):  # warm: compile, first window
            p("m", X)
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(repeats):
            for name, p in ((("off", off), ("on", on)) if r % 2 == 0
                            else (("on", on), ("off", off))):
                t0 = time.perf_counter()
                for _ in range(calls):
                    p("m", X)
                rates[name].append(rows * calls / (time.perf_counter() - t0))
        med = {k: statistics.median(v) for k, v in rates.items()}
        paired = [a / b for a, b in zip(rates["on"], rates["off"], strict=True)]
        out[str(rows)] = {"rows_per_s_off": med["off"], "rows_per_s_on": med["on"],
                          "ratio": med["on"] / med["off"],
                          "paired_ratios": paired, "calls_per_repeat": calls,
                          "repeats": repeats}
        print(f"rows={rows}: off {med['off']:.4g} rows/s, on {med['on']:.4g} rows/s, "
              f"ratio {med['on'] / med['off']:.3f}", flush=True)
    return out


def batch_report(tmp: Path, rows: int, features: int, evidently_timeout: float) -> dict:
    """``tablescore drift`` vs Evidently's DataDriftPreset on the same data."""
    import pandas as pd

    ref = _export(features, 100_000, tmp / "wide")
    cols = [f"x{j}" for j in range(features)]
    rng = np.random.default_rng(2)
    cur = rng.normal(size=(rows, features))
    cur[:, ::10] += 0.5  # every tenth feature drifts
    pd.DataFrame(ref, columns=cols).to_parquet(tmp / "ref.parquet")
    pd.DataFrame(cur, columns=cols).to_parquet(tmp / "cur.parquet")
    del cur
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tablescore", "drift", str(tmp / "wide"),
                           "--data", str(tmp / "cur.parquet"), "--json",
                           str(tmp / "r.json"), "--out", str(tmp / "r.html")],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    report = json.loads((tmp / "r.json").read_text())
    psi = report["psi"]
    shifted = [psi[f"x{j}"] for j in range(0, features, 10)]
    other = [psi[f"x{j}"] for j in range(features) if j % 10]
    res: dict = {"rows": rows, "features": features, "reference_rows": 100_000,
                 "tablescore": {"wall_s": wall, "in_process_s": report["seconds"],
                                "exit": proc.returncode,
                                "html_bytes": (tmp / "r.html").stat().st_size,
                                "min_psi_shifted": min(shifted), "max_psi_other": max(other)}}
    print(f"tablescore drift: {wall:.1f} s wall ({report['seconds']:.1f} s report), exit "
          f"{proc.returncode}; shifted PSI >= {min(shifted):.3f}, others <= {max(other):.3f}",
          flush=True)
    if EVIDENTLY.exists():
        t0 = time.perf_counter()
        try:
            ev = subprocess.run([str(EVIDENTLY), "-c", _EVIDENTLY_SCRIPT,
                                 str(tmp / "ref.parquet"), str(tmp / "cur.parquet"),
                                 str(tmp / "ev.html")], capture_output=True, text=True,
                                timeout=evidently_timeout)
            wall = time.perf_counter() - t0
            if ev.returncode == 0:
                res["evidently"] = {"wall_s": wall, **json.loads(ev.stdout.splitlines()[-1])}
            else:
                res["evidently"] = {"error": ev.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            res["evidently"] = {"error": f"timed out after {evidently_timeout} s"}
        print(f"evidently: {res['evidently']}", flush=True)
    else:
        res["evidently"] = {"error": f"not installed ({EVIDENTLY} missing)"}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.drift")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--evidently-timeout", type=float, default=900.0)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    results: dict = {"date": dt.date.today().isoformat(), "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="tablescore-drift-bench-") as d:
        tmp = Path(d)
        if not args.skip_overhead:
            results["recorder_overhead"] = recorder_overhead(tmp)
        results["batch"] = batch_report(tmp, args.rows, args.features, args.evidently_timeout)
    out = args.out or ROOT / "benchmarks" / "results" / f"drift-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
