"""PMML load time against the number of MiningModel segments (issue: it grew quadratically).

``python -m benchmarks.pmml_load [--sizes 1000 2000 4000 8000] [--baseline /work/base]``
generates MiningModels of n RegressionModel segments (one step each) and times
``read_pmml_bytes`` on each, in thread CPU time, best of ``--repeats``, each code root in its own
child process (so the checkout and a baseline checkout run in the same session, alternately
per size). Writes ``benchmarks/results/pmml_load.json``: seconds per size and code root, and the
ratio of the largest to the smallest size against the ratio of their sizes (linear: equal;
quadratic: its square).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
OUT = ROOT / "benchmarks" / "results" / "pmml_load.json"


def mining_model(n: int) -> bytes:
    """A MiningModel summing ``n`` RegressionModel segments over two inputs."""
    segs = "".join(
        f'<Segment id="{i}"><True/><RegressionModel functionName="regression"><MiningSchema>'
        '<MiningField name="x"/><MiningField name="z"/></MiningSchema>'
        f'<RegressionTable intercept="{i}"><NumericPredictor name="x" coefficient="{i % 7}"/>'
        '<NumericPredictor name="z" exponent="2" coefficient="1"/></RegressionTable>'
        "</RegressionModel></Segment>" for i in range(n))
    return ('<PMML version="4.4"><Header/><DataDictionary>'
            '<DataField name="x" optype="continuous" dataType="double"/>'
            '<DataField name="z" optype="continuous" dataType="double"/>'
            '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>'
            '<MiningModel functionName="regression"><MiningSchema>'
            '<MiningField name="y" usageType="target"/><MiningField name="x"/>'
            '<MiningField name="z"/></MiningSchema>'
            f'<Segmentation multipleModelMethod="sum">{segs}</Segmentation></MiningModel>'
            "</PMML>").encode()


def _child(n: int, repeats: int) -> float:
    """Best thread CPU seconds to read a model of ``n`` segments, with the code on
    ``sys.path`` (the reader lived in ``exporters.pmml`` before it moved to ``scorer.pmml``)."""
    try:
        from scorer.pmml import read_pmml_bytes
    except ImportError:
        from exporters.pmml import read_pmml_bytes  # type: ignore[no-redef]
    data = mining_model(n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        read_pmml_bytes(data)
        best = min(best, time.thread_time() - t0)
    return best


def measure(root: Path, n: int, repeats: int) -> float:
    """``_child`` run in a fresh interpreter on the code under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = (f"import sys; sys.path.insert(0, {str(root)!r}); import importlib.util as u; "
            f"s = u.spec_from_file_location('pmml_load', {str(HERE)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); "
            f"print(m._child({n}, {repeats}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout to time alongside")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    roots = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    seconds: dict[str, dict[str, float]] = {k: {} for k in roots}
    for n in args.sizes:
        for label, root in roots.items():  # interleaved: both see the same machine load
            s = measure(root, n, args.repeats)
            seconds[label][str(n)] = s
            print(f"{label:9s} {n:6d} segments  {s:8.3f} s", flush=True)
    lo, hi = str(min(args.sizes)), str(max(args.sizes))
    growth = {k: v[hi] / v[lo] for k, v in seconds.items()}
    for k, g in growth.items():
        print(f"{k}: {hi} / {lo} segments = {g:.1f}x the time (size ratio "
              f"{int(hi) / int(lo):.0f}x)")
    result = {
        "command": "python -m benchmarks.pmml_load " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "python": platform.python_version()},
        "roots": {k: str(v) for k, v in roots.items()},
        "metric": "thread CPU seconds of read_pmml_bytes, best of repeats",
        "repeats": args.repeats,
        "seconds": seconds,
        "growth": growth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
