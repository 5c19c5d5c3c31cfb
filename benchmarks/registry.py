"""Publish-to-serving latency of the model registry against directory polling.

``python -m benchmarks.registry [--publishes 20] [--sizes 1 50] [--baseline-interval 15]``
starts 3 replica processes (``tablescore serve --store postgresql://...``, a fresh database
on the local PostgreSQL) and publishes ``--publishes`` distinct bundles of each size (a
k-nearest-neighbours model, whose bundle holds its training rows, sized to ~1 MB / ~50 MB). For
each publish it measures the time from the commit (``publish`` returned) to the moment the
*last* of the 3 replicas answers a ModelInfer with the new version (each replica polled every
2 ms). The baseline is what a Triton-style deployment does: 3 replicas watching one shared
model directory at Triton's default ``--repository-poll-secs`` (15 s), a version published by
an atomic rename. Results: ``benchmarks/results/registry-<date>.json`` and a printed table.

Goal (issue #21): p99 <= 1 s for 1 MB bundles on this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("TABLESCORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
N_FEATURES = 32


def _bundle(path: Path, mb: float, seed: int) -> None:
    """A k-NN bundle of about ``mb`` MB (its training rows are its parameters)."""
    from sklearn.neighbors import KNeighborsRegressor

    import exporters

    rows = max(64, int(mb * 1e6 / (N_FEATURES * 8)))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, N_FEATURES))
    y = rng.normal(size=rows)
    est = KNeighborsRegressor(n_neighbors=3, algorithm="brute").fit(X, y)
    exporters.export(est, path, sample=X[:16], name="knn", overwrite=True)


class Replica:
    """``python -m tablescore serve`` in a subprocess; the port read from its JSON log."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tablescore", "serve", "--port",
                                      "0", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.port: int | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("event") == "serving":
                self.port = ev["port"]
            if ev.get("event") == "ready":
                self.ready.set()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _serving(clients: list[Any], model: str, version: str, timeout: float) -> float:
    """Seconds until every client's default version of ``model`` is ``version``."""
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    t0 = time.perf_counter()
    pending = list(clients)
    X = np.zeros((1, N_FEATURES))
    while pending:
        still = []
        for c in pending:
            inp = tc.InferInput("input", [1, N_FEATURES], "FP64")
            inp.set_data_from_numpy(X)
            try:
                got = c.infer(model, [inp]).get_response().model_version
            except InferenceServerException:
                got = ""
            if got != version:
                still.append(c)
        pending = still
        if pending:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{len(pending)} replicas not serving {version}")
            time.sleep(0.002)
    return time.perf_counter() - t0


def _summary(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    p99 = s[min(len(s) - 1, int(np.ceil(0.99 * len(s))) - 1)]
    return {"n": len(s), "p50_s": statistics.median(s), "p99_s": p99, "max_s": s[-1],
            "mean_s": statistics.fmean(s)}


def run_registry(bundles: list[Path], work: Path, *, timeout: float) -> list[float]:
    import psycopg
    import tritonclient.grpc as tc

    from scorer.registry import open_store
    from scorer.registry.store import bundle_files

    db = f"ts_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = f"{PG}/{db}"
    store = open_store(url)
    replicas: list[Replica] = []
    try:
        fp, files = bundle_files(bundles[0])
        store.publish_files(fp, files, "knn")
        replicas = [Replica(["--store", url, "--repository", str(work / f"r{k}")])
                    for k in range(3)]
        for r in replicas:
            if not r.ready.wait(120):
                raise RuntimeError("a replica did not start")
        clients = [tc.InferenceServerClient(f"127.0.0.1:{r.port}") for r in replicas]
        out = []
        for b in bundles[1:]:
            fp, files = bundle_files(b)  # verified before the clock starts: not the replica's
            version = store.publish_files(fp, files, "knn")
            out.append(_serving(clients, "knn", str(version), timeout))
        for c in clients:
            c.close()
        return out
    finally:
        for r in replicas:
            r.stop()
        store.close()
        with psycopg.connect(f"{PG}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def run_polling(bundles: list[Path], work: Path, *, interval: float,
                timeout: float) -> list[float]:
    import tritonclient.grpc as tc

    repo = work / "shared-repo"
    (repo / "knn").mkdir(parents=True)
    shutil.copytree(bundles[0], repo / "knn" / "1")
    replicas = [Replica(["--repository", str(repo), "--poll-interval", str(interval)])
                for _ in range(3)]
    try:
        for r in replicas:
            if not r.ready.wait(120):
                raise RuntimeError("a replica did not start")
        clients = [tc.InferenceServerClient(f"127.0.0.1:{r.port}") for r in replicas]
        out = []
        for k, b in enumerate(bundles[1:], start=2):
            tmp = repo / "knn" / f".{k}.tmp"
            shutil.copytree(b, tmp)
            os.rename(tmp, repo / "knn" / str(k))  # the publish: an atomic rename
            out.append(_serving(clients, "knn", str(k), timeout))
        for c in clients:
            c.close()
        return out
    finally:
        for r in replicas:
            r.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.registry", description=__doc__)
    p.add_argument("--publishes", type=int, default=20)
    p.add_argument("--baseline-publishes", type=int, default=None,
                   help="publishes for the polling baseline (default: --publishes)")
    p.add_argument("--sizes", type=float, nargs="+", default=[1.0, 50.0], help="MB")
    p.add_argument("--baseline-interval", type=float, default=15.0,
                   help="directory poll interval of the baseline (Triton's default: 15 s)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    base_n = args.baseline_publishes or args.publishes
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "publishes": args.publishes, "baseline_publishes": base_n,
        "baseline_interval_s": args.baseline_interval, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="tablescore-bench-registry-") as tmp:
        work = Path(tmp)
        for mb in args.sizes:
            n = max(args.publishes, base_n) + 1
            bundles = []
            for k in range(n):
                b = work / f"b{mb:g}-{k}"
                _bundle(b, mb, seed=k)
                bundles.append(b)
            size = sum(f.stat().st_size for f in bundles[0].rglob("*") if f.is_file())
            timeout = 120 + 2 * args.baseline_interval
            reg = run_registry(bundles[: args.publishes + 1], work / f"reg{mb:g}",
                               timeout=timeout)
            poll = run_polling(bundles[: base_n + 1], work / f"poll{mb:g}",
                               interval=args.baseline_interval, timeout=timeout)
            entry = {"bundle_bytes": size, "registry": _summary(reg),
                     "polling": _summary(poll), "registry_s": reg, "polling_s": poll}
            results["sizes"][f"{mb:g}MB"] = entry
            print(f"{mb:g} MB bundle ({size / 1e6:.1f} MB): registry p50 "
                  f"{entry['registry']['p50_s']:.3f} s p99 {entry['registry']['p99_s']:.3f} s"
                  f" | polling every {args.baseline_interval:g} s: p50 "
                  f"{entry['polling']['p50_s']:.3f} s p99 {entry['polling']['p99_s']:.3f} s",
                  flush=True)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"registry-{dt.date.today().isoformat()}.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
