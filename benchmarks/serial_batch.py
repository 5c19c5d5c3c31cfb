"""Serial batch scoring (``Model.score_arrays(X, serial=True)``: how the drift recorder scores
buffered one-row inputs again), this checkout vs another, interleaved:
``python -m benchmarks.serial_batch --baseline CHECKOUT [--rounds 3]``.

Each round runs each checkout in a fresh process (its own imports, kernels from the shared
Numba cache) on the same models and rows: a logistic regression and a 200-tree forest on 30
inputs (as ``benchmarks.drift``), 20,000 and 200,000 rows, best of five calls each. Results:
``benchmarks/results/serial-batch-<date>.json`` (nanoseconds per row, median over rounds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
from pathlib import Path

from .drift import ROOT

_CHILD = r'''
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from benchmarks.drift import _export
import scorer
out = {}
for kind in ("logreg", "forest"):
    with tempfile.TemporaryDirectory() as tmp:
        _export(30, 20_000, Path(tmp) / "m", classifier=True, forest=kind == "forest")
        model = scorer.load(Path(tmp) / "m")
    for rows in (20_000, 200_000):
        X = np.random.default_rng(2).normal(size=(rows, 30))
        model.score_arrays(X[:1000], serial=True)  # compiled
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            model.score_arrays(X, serial=True)
            best = min(best, time.perf_counter() - t)
        out[f"{kind}_{rows}"] = best / rows * 1e9
print("RESULT " + json.dumps(out))
'''


def _run(root: Path) -> dict[str, float]:
    """One child process of checkout ``root``: ns per row by case."""
    proc = subprocess.run([sys.executable, "-c", _CHILD], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[7:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    roots = {"this": ROOT, "baseline": args.baseline.resolve()}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in roots}
    for r in range(args.rounds):
        for name in (list(roots) if r % 2 == 0 else list(roots)[::-1]):
            runs[name].append(_run(roots[name]))
    med = {k: {case: round(statistics.median(x[case] for x in v), 1) for case in v[0]}
           for k, v in runs.items()}
    for case in med["this"]:
        print(f"{case:>15}: this {med['this'][case]:8.1f} ns/row, baseline "
              f"{med['baseline'][case]:8.1f} ns/row")
    out = {"date": dt.date.today().isoformat(), "baseline": str(args.baseline),
           "rounds": args.rounds, "ns_per_row": med}
    path = args.out or ROOT / "benchmarks" / "results" / f"serial-batch-{out['date']}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
