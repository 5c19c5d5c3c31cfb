"""Overhead of experiment routing on single-row gRPC latency.

``python -m benchmarks.experiments [--calls 2000] [--rounds 5]`` serves one bundle (a logistic
regression on 30 features) as three models from one server: ``plain`` (no experiment; the
request is one raw tensor, the common case), ``param`` (no experiment; the request also
carries a ``customer_id`` parameter, so it takes the same protobuf path as an experiment
request) and ``exp`` (an experiment with two arms over versions 1 and 2, the unit in the
``customer_id`` parameter). Each round calls every model ``--calls`` times from one
tritonclient client, interleaved in the same process; p50 / p99 per model and the ratio of
``exp`` to the others. Results: ``benchmarks/results/experiments-<date>.json``.

Goal (issue #23): p50 with an experiment configured within 5% of without.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import tritonclient.grpc as tc
    from sklearn.linear_model import LogisticRegression

    import exporters
    from scorer.server import serve

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 30))
    y = (X[:, 0] + rng.normal(size=2000) > 0).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        b1, b2 = Path(tmp) / "b1", Path(tmp) / "b2"
        exporters.export(LogisticRegression(C=1.0).fit(X, y), b1, sample=X[:64], name="m")
        exporters.export(LogisticRegression(C=0.1).fit(X, y), b2, sample=X[:64], name="m")
        for model in ("plain", "param", "exp"):
            shutil.copytree(b1, repo / model / "1")
            shutil.copytree(b2, repo / model / "2")
            cfg = {"version_policy": {"all": {}}}
            if model == "exp":
                cfg["experiment"] = {"name": "bench", "unit": "customer_id", "salt": "b",
                                     "shadow": None, "arms": [
                                         {"name": "control", "version": "1", "weight": 0.5},
                                         {"name": "candidate", "version": "2", "weight": 0.5}]}
            (repo / model / "config.json").write_text(json.dumps(cfg))
        row = np.ascontiguousarray(X[:1])
        lat: dict[str, list[float]] = {"plain": [], "param": [], "exp": []}
        with serve(repo, port=0, poll_interval=0, ready_timeout=120) as server:
            client = tc.InferenceServerClient(server.address)
            inp = tc.InferInput("input", [1, 30], "FP64")
            inp.set_data_from_numpy(row)

            def call(model: str, k: int) -> float:
                params = None if model == "plain" else {"customer_id": k}
                t0 = time.perf_counter()
                client.infer(model, [inp], parameters=params)
                return time.perf_counter() - t0

            for model in lat:  # warm-up
                for k in range(200):
                    call(model, k)
            rounds = []
            for r in range(args.rounds):
                per: dict[str, list[float]] = {m: [] for m in lat}
                for k in range(args.calls):
                    for model in lat:  # interleaved call by call
                        per[model].append(call(model, r * args.calls + k))
                rounds.append({m: statistics.median(v) * 1e6 for m, v in per.items()})
                for m, v in per.items():
                    lat[m].extend(v)
                print(f"round {r + 1}: " + ", ".join(f"{m} p50 {us:.0f} us"
                                                     for m, us in rounds[-1].items()),
                      flush=True)
            client.close()
    summary = {m: {"p50_us": statistics.median(v) * 1e6,
                   "p99_us": float(np.percentile(v, 99)) * 1e6, "calls": len(v)}
               for m, v in lat.items()}
    ratios = {"exp_vs_plain": summary["exp"]["p50_us"] / summary["plain"]["p50_us"],
              "exp_vs_param": summary["exp"]["p50_us"] / summary["param"]["p50_us"],
              "per_round_exp_vs_param": [r["exp"] / r["param"] for r in rounds]}
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "calls_per_round": args.calls, "rounds": rounds, "summary": summary,
           "ratios": ratios}
    path = args.out or ROOT / "benchmarks" / "results" / (
        f"experiments-{dt.date.today().isoformat()}.json")
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({"summary": summary, "ratios": ratios}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
