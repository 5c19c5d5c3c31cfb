"""One-row recorder cost, this checkout's recorder vs another's, interleaved in one process:
``python -m benchmarks.drift_recorder_ab --baseline CHECKOUT [--rounds 9] [--calls 20000]``.

The baseline's ``scorer/monitoring/recorder.py`` is loaded as a module of this checkout's
``scorer.monitoring`` package (its relative imports resolve here: the kernels, profile and
drift modules must be compatible). In-process ``Pipeline`` calls of one row on a logistic
regression with 30 inputs (as ``benchmarks.drift``): off, this recorder, the baseline's, in
rotating order; medians of wall time, process CPU and the scoring thread's CPU. Results:
``benchmarks/results/drift-recorder-ab-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .drift import ROOT, _export


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--model", choices=("logreg", "forest"), default="logreg",
                   help="a logistic regression (default) or a 200-tree forest, 30 inputs")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import scorer
    from scorer.monitoring import DriftRecorder
    from scorer.pipeline import ModelResolver, Pipeline

    spec = importlib.util.spec_from_file_location(
        "scorer.monitoring._baseline_recorder",
        args.baseline / "scorer" / "monitoring" / "recorder.py")
    base = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = base  # (its dataclasses look their module up there)
    spec.loader.exec_module(base)
    with tempfile.TemporaryDirectory() as tmp:
        _export(30, 20_000, Path(tmp) / "m", classifier=True, forest=args.model == "forest")
        model = scorer.load(Path(tmp) / "m")
    big = {"queue_rows": 1 << 26, "queue_requests": 1 << 26}
    recs = {"this": DriftRecorder(300, **big), "baseline": base.DriftRecorder(300, **big)}
    pipes = {"off": Pipeline(ModelResolver({"m": model})),
             **{k: Pipeline(ModelResolver({"m": model}), recorders=[r])
                for k, r in recs.items()}}
    X = np.random.default_rng(1).normal(size=(1, 30))
    for pipe in pipes.values():  # warm: compile, first window
        for _ in range(2000):
            pipe("m", X)
    names = list(pipes)
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in names}
    for r in range(args.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            pipe = pipes[name]
            t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
            for _ in range(args.calls):
                pipe("m", X)
            h1 = time.thread_time()
            if name in recs:
                recs[name].drain()  # the round's rows counted inside its own time
            runs[name].append((time.perf_counter() - t0, time.process_time() - c0, h1 - h0))
    med = {k: [statistics.median(x[i] for x in v) / args.calls * 1e6 for i in range(3)]
           for k, v in runs.items()}
    out = {"date": dt.date.today().isoformat(), "baseline": str(args.baseline),
           "model": args.model,
           "rounds": args.rounds, "calls": args.calls,
           "us_per_call": {k: dict(zip(("wall", "process_cpu", "thread_cpu"), v, strict=True))
                           for k, v in med.items()}}
    for k in ("this", "baseline"):
        ratios = [med["off"][i] / med[k][i] for i in range(3)]
        out[k] = dict(zip(("wall_ratio", "cpu_ratio", "thread_cpu_ratio"), ratios, strict=True))
        print(f"{k}: on/off throughput wall {ratios[0]:.3f}, process CPU {ratios[1]:.3f}, "
              f"scoring thread CPU {ratios[2]:.3f} (CPU per call {med[k][1]:.2f} us, off "
              f"{med['off'][1]:.2f} us)", flush=True)
    path = args.out or ROOT / "benchmarks" / "results" / f"drift-recorder-ab-{out['date']}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
