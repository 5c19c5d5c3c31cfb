"""Cold start of ``tablescore serve``: process start to ServerReady, empty and warm Numba cache.

``python -m benchmarks.coldstart [--old /work/main] [--rounds 3] [--repository DIR]``

Serves the 7 demo models (``tablescore demo``'s bundles: logistic regression, random forest,
gradient boosting, histogram gradient boosting, the Audit pipeline, XGBoost, LightGBM) from
one model repository with ``tablescore serve --port 0 --poll-interval 0`` in a subprocess,
and times from ``Popen`` to the first ``ServerReady`` that answers true (polled every 20 ms
once the log names the port). Per checkout and round:

``empty``
    ``NUMBA_CACHE_DIR`` a fresh empty directory: what a fresh container (or a read-only
    install pointed at an empty writable directory) pays on every start.
``warm``
    The same directory again, as the ``empty`` start left it: a restart on a machine that
    kept its cache.
``warmup`` (checkouts that have ``tablescore warmup``)
    A fresh directory filled by ``tablescore warmup --cache-dir D`` (an image build), then a
    start with ``NUMBA_CACHE_DIR=D``; the warmup's own duration is recorded too.

Checkouts are interleaved within each round (old, new; then new, old) because the machine is
shared: each figure is noisy, compare the medians and the per-round pairs. Results:
``benchmarks/results/coldstart-<date>.json`` and a printed table.

``--repository`` serves an existing repository (e.g. ``demo-out/repository`` after
``tablescore demo``); without it the 7 models are trained and exported into a temporary one
by the *old* checkout (its bundles are what both checkouts can read).
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_BUILD = """
import sys
from pathlib import Path
import exporters
from tablescore.demo import _audit, _datasets, demo_models
out = Path(sys.argv[1])
data = _datasets()
audit = _audit()
if audit is not None:
    X, y = audit
    data["audit"] = (X.astype({c: object for c in X.columns if X[c].dtype.kind not in "fi"}), y)
for name, dataset, factory in demo_models():
    if dataset in data:
        X, y = data[dataset]
        exporters.export(factory().fit(X, y), out / name / "1", sample=X, name=name)
        print(name)
"""


def build_repository(checkout: Path, out: Path) -> list[str]:
    """Train and export the demo models into ``out/<name>/1`` with ``checkout``'s code."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    res = subprocess.run([sys.executable, "-c", _BUILD, str(out)], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True)
    return res.stdout.split()


class Server:
    """``tablescore serve`` of ``checkout`` in a subprocess; the port read from its log."""

    def __init__(self, checkout: Path, repository: Path, cache_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(checkout), "NUMBA_CACHE_DIR": str(cache_dir)}
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tablescore", "serve", "--repository", str(repository),
             "--port", "0", "--poll-interval", "0"],
            cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.port: int | None = None
        self.log: list[str] = []
        self._port_known = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev.get("event") == "serving":
                self.port = ev["port"]
                self._port_known.set()
        self._port_known.set()  # the process ended: stop waiting

    def ready_after(self, timeout: float) -> float:
        """Seconds from process start to the first ServerReady that says ready."""
        import grpc

        from protos import inference_pb2 as pb
        from protos import inference_pb2_grpc as pbg

        if not self._port_known.wait(timeout) or self.port is None:
            raise RuntimeError("the server did not start:\n" + "".join(self.log[-20:]))
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            stub = pbg.GRPCInferenceServiceStub(ch)
            while True:
                try:
                    if stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready:
                        return time.perf_counter() - self.t0
                except grpc.RpcError:
                    pass
                if time.perf_counter() - self.t0 > timeout or self.proc.poll() is not None:
                    raise RuntimeError("the server did not get ready:\n"
                                       + "".join(self.log[-20:]))
                time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve_once(checkout: Path, repository: Path, cache_dir: Path, timeout: float) -> float:
    """One start of ``checkout``'s server with ``NUMBA_CACHE_DIR=cache_dir``: seconds to ready."""
    server = Server(checkout, repository, cache_dir)
    try:
        return server.ready_after(timeout)
    finally:
        server.stop()


def has_warmup(checkout: Path) -> bool:
    return (checkout / "scorer" / "warmup.py").is_file()


def warmup_once(checkout: Path, repository: Path, cache_dir: Path) -> float:
    """``tablescore warmup --cache-dir cache_dir --repository repository`` of ``checkout``:
    its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("NUMBA_CACHE_DIR", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tablescore", "warmup", "--cache-dir",
                    str(cache_dir), "--repository", str(repository)], cwd=checkout, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(checkout: Path, repository: Path, work: Path, timeout: float) -> dict[str, float]:
    """One round for one checkout: empty, warm and (if it has the command) warmup starts."""
    out: dict[str, float] = {}
    cache = Path(tempfile.mkdtemp(prefix="numba-empty-", dir=work))
    out["empty_s"] = serve_once(checkout, repository, cache, timeout)
    print(f"  {checkout}: empty {out['empty_s']:.2f}", flush=True)
    out["warm_s"] = serve_once(checkout, repository, cache, timeout)
    if has_warmup(checkout):
        built = Path(tempfile.mkdtemp(prefix="numba-warmup-", dir=work))
        out["warmup_command_s"] = warmup_once(checkout, repository, built)
        out["after_warmup_s"] = serve_once(checkout, repository, built, timeout)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, default=Path("/work/main"),
                   help="the checkout to compare with (default /work/main)")
    p.add_argument("--new", type=Path, default=ROOT, help="default: this checkout")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repository", type=Path, default=None,
                   help="serve this repository instead of exporting the demo models")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per start")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)

    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        work = Path(tmp)
        # (absolute: each server runs in its checkout's directory)
        repository = args.repository.resolve() if args.repository is not None else None
        if repository is None:
            repository = work / "repository"
            models = build_repository(checkouts["old"], repository)
        else:
            models = sorted(d.name for d in repository.iterdir() if d.is_dir())
        print(f"{len(models)} models: {', '.join(models)}", flush=True)
        rounds: list[dict[str, dict[str, float]]] = []
        for r in range(args.rounds):
            order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
            row: dict[str, dict[str, float]] = {}
            for name in order:
                row[name] = measure(checkouts[name], repository, work, args.timeout)
                print(f"round {r + 1} {name}: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in row[name].items()), flush=True)
            rounds.append(row)
            for d in work.glob("numba-*"):
                shutil.rmtree(d, ignore_errors=True)

    summary: dict[str, dict[str, float]] = {}
    for name in checkouts:
        keys = rounds[0][name].keys()
        summary[name] = {k: statistics.median(rd[name][k] for rd in rounds) for k in keys}
    result: dict[str, Any] = {
        "what": "tablescore serve of the demo repository: process start to ServerReady (s)",
        "date": dt.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "checkouts": {k: str(v) for k, v in checkouts.items()},
        "models": models,
        "rounds": rounds,
        "median": summary,
        "note": "shared machine: checkouts interleaved per round (order alternates)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"coldstart-{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nmedian over {args.rounds} rounds (s):")
    for name, vals in summary.items():
        print(f"  {name:4s} " + ", ".join(f"{k} {v:.2f}" for k, v in vals.items()))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
