"""gRPC transport and cold-start phases of the benchmark run.

**gRPC transport** (``results["grpc"]``): single-row ``ModelInfer`` round trips through
``tritonclient.grpc`` against every server, same payload everywhere (one row, 30 FP64 features
as one ``[1, 30]`` tensor ``"input"``, raw contents), at concurrency 1 / 8 / 32 (client threads
spread over up to ``cores`` client processes, each thread with its own client / HTTP/2
connection). Servers, all on 127.0.0.1, each in a subprocess:

- ``echo`` — :mod:`benchmarks.echo_server`, a bare grpcio servicer returning a fixed response:
  the floor of a Python gRPC server;
- ``tablescore`` / ``tablescore-w2`` — ``tablescore serve --workers 1`` / ``--workers 2``;
- ``tablescore-batch`` — ``--workers 1`` with adaptive batching (``--batch-delay-us 200``):
  concurrent single-row requests share kernel calls;
- ``mlserver`` — Seldon MLServer + mlserver-sklearn in its own virtualenv
  (``benchmarks/.venvs/mlserver``, see :data:`MLSERVER_SETUP`) on a joblib dump of the same
  model, answering ``predict_proba``.

All servers run at once; each measurement window is interleaved over them (the order rotates
between repeats). Every figure is the median over repeats. Per server: ``startup_s`` = from
process start to the first successful ``ModelInfer`` (cold start of a serving process).

**Cold start** (``results["cold_start"]``): publishing version 2 into the repository of a
running tablescore server until ``ModelReady(version 2)``, an explicit ``RepositoryModelLoad``
of version 3, and the RSS per loaded model (N copies of the forest bundle in one process, RSS
delta / N; the same for the unpickled scikit-learn model for comparison).

Every server process is stopped at the end, also on errors (SIGTERM, then SIGKILL of its
process group after a grace period).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .engines import short_reason

REPO = Path(__file__).resolve().parents[1]
MLSERVER_VENV = Path(__file__).resolve().parent / ".venvs" / "mlserver"
MLSERVER_SETUP = (f"python3 -m venv {MLSERVER_VENV.relative_to(REPO)} && "
                  f"{MLSERVER_VENV.relative_to(REPO)}/bin/pip install mlserver mlserver-sklearn "
                  "'uvloop==0.21.*' scikit-learn==<the bench venv's version>")
SERVERS = ("echo", "tablescore", "tablescore-w2", "tablescore-batch", "mlserver")
#: adaptive batching delay of the ``tablescore-batch`` server (microseconds)
BATCH_DELAY_US = 200
FAMILIES = ("logreg", "forest")

Log = Callable[[str], None]


@dataclass(frozen=True)
class ServingConfig:
    """Sizes of the gRPC / cold-start phases."""

    families: tuple[str, ...] = FAMILIES
    servers: tuple[str, ...] = SERVERS
    concurrency: tuple[int, ...] = (1, 8, 32)
    #: Timed window per (server, family, concurrency, repeat), seconds.
    window_s: float = 1.0
    #: Each client task calls the server for this long before the window opens.
    warmup_s: float = 0.3
    repeats: int = 2
    #: Upper bound of calls per client thread and window (bounded loops).
    max_calls_per_thread: int = 50_000
    #: Seconds a server gets to answer its first ModelInfer.
    start_timeout_s: float = 120.0
    #: Copies of the forest bundle loaded for the RSS-per-model figure.
    rss_copies: int = 10
    cold_start: bool = True


QUICK_SERVING = ServingConfig(concurrency=(1, 8), window_s=0.5, warmup_s=0.2, repeats=1,
                              rss_copies=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- client side (runs in spawned worker processes) ------------------------------------------
def _client_task(url: str, model: str, threads: int, start_at: float, end_at: float,
                 max_calls: int, outputs: Sequence[str], seed: int) -> dict[str, Any]:
    """``threads`` client threads, each with its own connection, calling ``ModelInfer`` in a
    loop: warm-up until ``start_at`` (wall clock), timed until ``end_at``."""
    import threading

    import tritonclient.grpc as tg

    rows = np.random.default_rng(seed).normal(size=(64, 30))
    lat: list[list[int]] = [[] for _ in range(threads)]
    last: list[float] = [start_at] * threads
    errors: list[str] = []

    def work(i: int) -> None:
        client = tg.InferenceServerClient(url)
        try:
            inputs = []
            for k in range(len(rows)):
                inp = tg.InferInput("input", [1, 30], "FP64")
                inp.set_data_from_numpy(rows[k:k + 1])  # raw_input_contents
                inputs.append(inp)
            outs = [tg.InferRequestedOutput(o) for o in outputs] or None
            k = i
            while time.time() < start_at:
                client.infer(model, [inputs[k % 64]], outputs=outs)
                k += 1
            mine = lat[i]
            clock = time.perf_counter_ns
            for _ in range(max_calls):
                if time.time() >= end_at:
                    break
                t0 = clock()
                client.infer(model, [inputs[k % 64]], outputs=outs)
                mine.append(clock() - t0)
                k += 1
            last[i] = time.time()
        except Exception as exc:  # recorded; the parent marks the cell as an error
            errors.append(short_reason(exc))
        finally:
            with contextlib.suppress(Exception):
                client.close()

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=max(0.0, end_at - time.time()) + 60)
    return {"lat_ns": [x for xs in lat for x in xs], "errors": errors,
            "window_s": max(last) - start_at}


def _warm_worker() -> int:
    import tritonclient.grpc  # noqa: F401  (import cost paid before any timed window)

    return os.getpid()


# --- servers ---------------------------------------------------------------------------------
class _Server:
    """A server subprocess in its own session; :meth:`stop` ends it (and its children)."""

    def __init__(self, name: str, cmd: list[str], port: int, logdir: Path, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 model_names: dict[str, str] | None = None,
                 outputs: Sequence[str] = ()) -> None:
        self.name = name
        self.cmd = cmd
        self.port = port
        self.url = f"127.0.0.1:{port}"
        self.model_names = model_names or {}
        self.outputs = tuple(outputs)
        self.logfile = logdir / f"{name}.log"
        self._log = open(self.logfile, "wb")
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd or REPO,
                                     start_new_session=True)
        self.startup_s: float | None = None

    def model(self, family: str) -> str:
        return self.model_names.get(family, family)

    def log_tail(self, n: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.logfile.read_bytes()[-n:].decode("utf-8", "replace")
        return ""

    def wait_first_prediction(self, family: str, timeout_s: float) -> float:
        """Seconds from process start to the first successful ModelInfer of ``family``."""
        import tritonclient.grpc as tg

        inp = tg.InferInput("input", [1, 30], "FP64")
        inp.set_data_from_numpy(np.zeros((1, 30)))
        outs = [tg.InferRequestedOutput(o) for o in self.outputs] or None
        deadline = self.t_start + timeout_s
        last = ""
        client = tg.InferenceServerClient(self.url)
        try:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                       f"{self.log_tail()}")
                try:
                    client.infer(self.model(family), [inp], outputs=outs, client_timeout=5)
                    self.startup_s = time.perf_counter() - self.t_start
                    return self.startup_s
                except Exception as exc:
                    last = short_reason(exc)
                    time.sleep(0.02)
        finally:
            with contextlib.suppress(Exception):
                client.close()
        raise TimeoutError(f"{self.name}: no prediction within {timeout_s:.0f}s ({last}); "
                           f"log: {self.log_tail(600)}")

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the session we created (worker processes): SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


def _tablescore_cmd(repo: Path, port: int, workers: int, poll: float = 1.0,
                    batch_delay_us: float = 0.0) -> list[str]:
    exe = Path(sys.executable).parent / "tablescore"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "tablescore"]
    return [*base, "serve", "--repository", str(repo), "--host", "127.0.0.1", "--port",
            str(port), "--workers", str(workers), "--poll-interval", str(poll),
            "--batch-delay-us", str(batch_delay_us), "--log-format", "text"]


def _write_mlserver_repo(root: Path, models: dict[str, Any]) -> None:
    import joblib

    root.mkdir(parents=True, exist_ok=True)
    for fam, model in models.items():
        d = root / fam
        d.mkdir()
        joblib.dump(model, d / "model.joblib")
        (d / "model-settings.json").write_text(json.dumps({
            "name": fam, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "1"}}))


def _start_server(name: str, tmp: Path, repo: Path, models: dict[str, Any],
                  logdir: Path) -> _Server:
    port = _free_port()
    if name == "echo":
        return _Server(name, [sys.executable, "-m", "benchmarks.echo_server", "--port",
                              str(port)], port, logdir)
    if name in ("tablescore", "tablescore-w2", "tablescore-batch"):
        workers = 2 if name.endswith("w2") else 1
        delay = BATCH_DELAY_US if name.endswith("batch") else 0.0
        return _Server(name, _tablescore_cmd(repo, port, workers, batch_delay_us=delay), port,
                       logdir)
    if name == "mlserver":
        exe = MLSERVER_VENV / "bin" / "mlserver"
        if not exe.exists():
            raise _Skip(f"MLServer virtualenv missing ({exe}); create it with: {MLSERVER_SETUP}")
        root = tmp / "mlserver"
        _write_mlserver_repo(root, models)
        (root / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "grpc_port": port, "http_port": _free_port(),
            "metrics_port": _free_port(), "debug": False}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL"))}
        env["PATH"] = f"{exe.parent}:{env.get('PATH', '')}"
        return _Server(name, [str(exe), "start", str(root)], port, logdir, env=env, cwd=root,
                       outputs=("predict_proba",))
    raise ValueError(name)


class _Skip(Exception):
    pass


# --- measurement -----------------------------------------------------------------------------
def _plan(concurrency: int, cores: int) -> list[int]:
    """Client threads per process: ``concurrency`` spread over up to ``cores`` processes."""
    procs = max(1, min(concurrency, cores))
    base, extra = divmod(concurrency, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


def _measure(pool: ProcessPoolExecutor, server: _Server, family: str, concurrency: int,
             scfg: ServingConfig, cores: int, seed: int) -> dict[str, Any]:
    plan = _plan(concurrency, cores)
    start_at = time.time() + 0.15 + scfg.warmup_s
    end_at = start_at + scfg.window_s
    futs = [pool.submit(_client_task, server.url, server.model(family), t, start_at, end_at,
                        scfg.max_calls_per_thread, server.outputs, seed + i)
            for i, t in enumerate(plan)]
    parts = [f.result(timeout=scfg.window_s + scfg.warmup_s + 120) for f in futs]
    errors = [e for p in parts for e in p["errors"]]
    lat = np.concatenate([np.asarray(p["lat_ns"], dtype=np.int64) for p in parts])
    window = max(p["window_s"] for p in parts)
    out: dict[str, Any] = {"calls": len(lat), "errors": len(errors),
                           "window_s": window, "client_processes": len(plan),
                           "threads_per_process": plan}
    if errors:
        out["error"] = errors[0]
    if len(lat):
        out.update(p50_us=float(np.percentile(lat, 50)) / 1e3,
                   p99_us=float(np.percentile(lat, 99)) / 1e3,
                   mean_us=float(lat.mean()) / 1e3,
                   calls_per_s=len(lat) / window if window > 0 else None)
    return out


def _summarise(runs: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    good = [bool(r.get("calls")) and not r.get("errors") for r in runs]
    ok = [r for r, g in zip(runs, good, strict=True) if g]
    row: dict[str, Any] = {"concurrency": concurrency, "repeats": len(ok),
                           "client_processes": runs[0]["client_processes"] if runs else None}
    if ok:
        for k in ("p50_us", "p99_us", "mean_us", "calls_per_s"):
            row[k] = float(statistics.median(r[k] for r in ok))
            # one entry per window, None for a failed one: window i of every server ran side
            # by side, and benchmarks.targets pairs them by position
            row[f"{k}_runs"] = [r[k] if g else None for r, g in zip(runs, good, strict=True)]
        row["calls"] = sum(r["calls"] for r in ok)
    errs = [r for r in runs if r.get("errors")]
    if errs:
        row["errors"] = sum(r["errors"] for r in errs)
        row["error"] = errs[0].get("error")
    return row


def _fit_models(cfg: Any, families: Sequence[str], log: Log) -> dict[str, tuple[Any, Any]]:
    from .models import FAMILIES as ZOO
    from .models import fit, make_data

    models = {}
    for fam in families:
        data = make_data(ZOO[fam].task, n_train=cfg.n_train, n_score=cfg.n_score,
                         n_features=cfg.n_features, seed=cfg.seed)
        model, fit_s = fit(ZOO[fam], data, n_estimators=cfg.n_estimators, seed=cfg.seed)
        if hasattr(model, "n_jobs"):
            model.set_params(n_jobs=1)  # one request, one thread (MLServer's predict too)
        models[fam] = (model, data.X_train[:cfg.sample_rows])
        log(f"  grpc: fitted {fam} in {fit_s:.1f}s")
    return models


@contextlib.contextmanager
def _servers_stopped(servers: dict[str, _Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers.values():
            with contextlib.suppress(Exception):
                s.stop()


def run_grpc(cfg: Any, scfg: ServingConfig, log: Log, *,
             deadline: float | None = None) -> dict[str, Any]:
    """The gRPC transport phase (+ cold start); returns ``results["grpc"]`` and
    ``results["cold_start"]`` as one dict ``{"grpc": ..., "cold_start": ...}``."""
    import exporters

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    res: dict[str, Any] = {"status": "ok", "reason": None, "config": asdict(scfg),
                           "payload": "one row, 30 FP64 features, one [1, 30] tensor 'input', "
                                      "raw_input_contents (tritonclient.grpc)",
                           "client": "tritonclient.grpc, one client (connection) per thread, "
                                     f"threads spread over up to {cores} client processes",
                           "servers": {}, "ratios": {}}
    cold: dict[str, Any] = {"status": "ok", "reason": None}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tsbench-grpc-") as tmpdir:
        tmp = Path(tmpdir)
        models = _fit_models(cfg, scfg.families, log)
        repo = tmp / "repo"
        for fam, (model, sample) in models.items():
            exporters.export(model, repo / fam / "1", sample=sample, overwrite=True)
        logdir = tmp / "logs"
        logdir.mkdir()
        servers: dict[str, _Server] = {}
        ctx = mp.get_context("spawn")  # no fork of a process holding gRPC / JVM / OpenMP state
        cold = {"status": "skipped", "reason": "not run (disabled or out of time)"}
        with _servers_stopped(servers), ProcessPoolExecutor(max_workers=cores,
                                                            mp_context=ctx) as pool:
            warm = [pool.submit(_warm_worker) for _ in range(cores)]
            for f in warm:
                f.result(timeout=120)
            # one at a time, so that each start-up figure is not the others' contention
            for name in scfg.servers:
                st: dict[str, Any] = {"status": "ok", "reason": None, "families": {}}
                res["servers"][name] = st
                try:
                    srv = _start_server(name, tmp, repo, {f: m for f, (m, _) in
                                                          models.items()}, logdir)
                except _Skip as exc:
                    st.update(status="skipped", reason=str(exc))
                    log(f"  grpc {name}: skipped ({exc})")
                    continue
                servers[name] = srv
                st["command"] = " ".join(srv.cmd)
                try:
                    st["startup_s"] = srv.wait_first_prediction(scfg.families[0],
                                                                scfg.start_timeout_s)
                    log(f"  grpc {name}: first prediction {st['startup_s']:.2f}s after start")
                except Exception as exc:
                    st.update(status="error", reason=f"start: {short_reason(exc, 600)}")
                    log(f"  grpc {name}: ERROR {st['reason'][:300]}")
                    srv.stop()
                    servers.pop(name)
            for fam in scfg.families:
                runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
                for c in scfg.concurrency:
                    for rep in range(scfg.repeats):
                        names = list(servers)
                        k = rep % max(1, len(names))
                        for name in names[k:] + names[:k]:
                            if deadline is not None and time.perf_counter() > deadline:
                                res["truncated"] = "the run's time budget ran out: later " \
                                                   "cells were not measured"
                                continue
                            try:
                                r = _measure(pool, servers[name], fam, c, scfg, cores,
                                             seed=rep * 100)
                            except Exception as exc:
                                r = {"calls": 0, "errors": 1, "error": short_reason(exc),
                                     "client_processes": None}
                            runs.setdefault((name, c), []).append(r)
                for name in servers:
                    rows = [_summarise(runs.get((name, c), []), c) for c in scfg.concurrency]
                    res["servers"][name]["families"][fam] = {"levels": rows}
                    log(f"  grpc {fam} {name}: " + ", ".join(
                        f"c={r['concurrency']}: p50 {r.get('p50_us', float('nan')):.0f}us "
                        f"{r.get('calls_per_s', float('nan')):.0f}/s" for r in rows))
                res["ratios"][fam] = grpc_ratios(res["servers"], fam)
            if scfg.cold_start and (deadline is None or time.perf_counter() < deadline):
                for s in list(servers.values()):  # free the cores before timing loads
                    s.stop()
                servers.clear()
                try:
                    cold = cold_start(models, repo, tmp, logdir, scfg, log)
                except Exception as exc:
                    cold = {"status": "error", "reason": short_reason(exc),
                            "traceback": traceback.format_exc(limit=8)}
                    log(f"  cold start: ERROR {cold['reason']}")
    res["duration_s"] = time.perf_counter() - t0
    return {"grpc": res, "cold_start": cold}


def _level(srv: dict[str, Any], fam: str, c: int) -> dict[str, Any] | None:
    if srv.get("status") != "ok":
        return None
    for r in srv.get("families", {}).get(fam, {}).get("levels", []):
        if r["concurrency"] == c and r.get("p50_us"):
            return r
    return None


def grpc_ratios(servers: dict[str, Any], fam: str) -> dict[str, Any]:
    """Per tablescore server: p50 / echo p50 (the floor; target <= 1.5), and vs MLServer
    (latency: mlserver p50 / ours, target >= 10; throughput: ours / mlserver, target >= 5)
    per concurrency."""
    out: dict[str, Any] = {}
    concs = sorted({r["concurrency"] for s in servers.values()
                    for r in s.get("families", {}).get(fam, {}).get("levels", [])})
    for ours in ("tablescore", "tablescore-w2", "tablescore-batch"):
        if ours not in servers:
            continue
        rows = []
        for c in concs:
            a = _level(servers[ours], fam, c)
            if a is None:
                continue
            row: dict[str, Any] = {"concurrency": c}
            e = _level(servers.get("echo", {}), fam, c)
            if e:
                row["p50_vs_echo"] = a["p50_us"] / e["p50_us"]
                row["throughput_vs_echo"] = a["calls_per_s"] / e["calls_per_s"]
            m = _level(servers.get("mlserver", {}), fam, c)
            if m:
                row["mlserver_latency_p50"] = m["p50_us"] / a["p50_us"]
                row["mlserver_throughput"] = a["calls_per_s"] / m["calls_per_s"]
            rows.append(row)
        out[ours] = rows
    return out


# --- cold start ------------------------------------------------------------------------------
_RSS_SCRIPT = r"""
import gc, json, sys
def rss():
    d = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            d[k] = int(v.split()[0]) * 1024
    return d
import numpy as np
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
row = np.zeros((1, 30))
if kind in ("bundle", "bundle-full"):
    import scorer
    # as the server loads it (tables dropped once bound); bundle-full keeps them
    load = lambda: scorer.load(path, keep_tables=kind == "bundle-full")
    first = load(); first.predict(row)
else:
    import joblib
    load = lambda: joblib.load(path)
    first = load(); first.predict_proba(row)
gc.collect()
before = rss()
keep = []
for _ in range(n):
    m = load()
    (m.predict_proba(row) if kind == "joblib" else m.predict(row))
    keep.append(m)
gc.collect()
after = rss()
print(json.dumps({"copies": n, "rss_before": before["VmRSS"], "rss_after": after["VmRSS"],
                  "hwm_after": after["VmHWM"],
                  "rss_per_model": (after["VmRSS"] - before["VmRSS"]) / n,
                  "peak_per_model": (after["VmHWM"] - before["VmRSS"]) / n}))
"""


def _rss_per_model(kind: str, path: Path, n: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, kind, str(path), str(n)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-600:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _publish(src: Path, model_dir: Path, version: str) -> None:
    """Copy a bundle in as ``model_dir/<version>`` atomically (hidden temp dir + rename)."""
    tmp = model_dir / f".tmp-{version}"
    shutil.copytree(src, tmp)
    os.rename(tmp, model_dir / version)


def cold_start(models: dict[str, tuple[Any, Any]], repo: Path, tmp: Path, logdir: Path,
               scfg: ServingConfig, log: Log) -> dict[str, Any]:
    """Version load times in a running tablescore server, and RSS per loaded model."""
    import joblib
    import tritonclient.grpc as tg

    out: dict[str, Any] = {"status": "ok", "reason": None}
    fam = "forest" if "forest" in models else next(iter(models))
    src = repo / fam / "1"
    crepo = tmp / "cold-repo"
    shutil.copytree(src, crepo / fam / "1")
    poll = 0.05
    port = _free_port()
    srv = _Server("tablescore-cold", _tablescore_cmd(crepo, port, 1, poll=poll), port, logdir)
    try:
        out["startup_s"] = srv.wait_first_prediction(fam, scfg.start_timeout_s)
        client = tg.InferenceServerClient(srv.url)
        try:
            # (1) the watcher: publish version 2, poll ModelReady(version 2)
            t0 = time.perf_counter()
            _publish(src, crepo / fam, "2")
            t_pub = time.perf_counter()
            deadline = t_pub + 120
            while not client.is_model_ready(fam, "2"):
                if time.perf_counter() > deadline:
                    raise TimeoutError("version 2 not ready within 120 s")
                time.sleep(0.002)
            t_ready = time.perf_counter()
            out["watch_publish_to_ready_s"] = t_ready - t_pub
            out["watch_copy_s"] = t_pub - t0
            out["watch_poll_interval_s"] = poll
            # (2) explicit: publish version 3, RepositoryModelLoad (returns once loaded)
            _publish(src, crepo / fam, "3")
            t0 = time.perf_counter()
            client.load_model(fam)
            t1 = time.perf_counter()
            out["explicit_load_s"] = t1 - t0
            out["explicit_ready_v3"] = bool(client.is_model_ready(fam, "3"))
        finally:
            client.close()
    finally:
        srv.stop()
    log(f"  cold start: server first prediction {out['startup_s']:.2f}s; version 2 ready "
        f"{out['watch_publish_to_ready_s'] * 1e3:.0f} ms after publish (poll {poll}s); "
        f"explicit load {out['explicit_load_s'] * 1e3:.0f} ms")
    n = scfg.rss_copies
    out["rss_bundle"] = _rss_per_model("bundle", src, n)
    out["rss_bundle_full"] = _rss_per_model("bundle-full", src, n)
    pkl = tmp / f"{fam}.joblib"
    joblib.dump(models[fam][0], pkl)
    out["rss_sklearn"] = _rss_per_model("joblib", pkl, n)
    out["rss_bundle"]["bundle_bytes"] = sum(p.stat().st_size for p in src.rglob("*")
                                            if p.is_file())
    out["rss_sklearn"]["joblib_bytes"] = pkl.stat().st_size
    out["rss_family"] = fam
    log(f"  cold start: RSS per {fam} model: bundle "
        f"{out['rss_bundle']['rss_per_model'] / 2**20:.1f} MiB, sklearn "
        f"{out['rss_sklearn']['rss_per_model'] / 2**20:.1f} MiB ({n} copies)")
    return out


def fmt_s(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f} s"
