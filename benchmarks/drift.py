"""Drift monitoring benchmark: ``python -m benchmarks.drift [--rows 1000000] [--features 100]``.

1. **Recorder overhead**: in-process pipeline throughput (``scorer.pipeline.Pipeline``, a
   logistic regression on 30 features whose bundle has a reference profile; ``--models
   logreg,forest`` also a 200-tree forest on the same inputs) with the
   :class:`~scorer.monitoring.DriftRecorder` and without, at 1 row per call and at 100k rows
   per call (and at 100k rows with ``--drift-sample 0.01``); on and off interleaved, median
   of the repeats (goal: on >= 95% of off). Beside the wall-clock rate, the process CPU time
   per row (``time.process_time``: the counting thread included), since on a shared machine
   wall time mostly measures the neighbours, and the scoring thread's own CPU time
   (``time.thread_time``: what monitoring costs the thread that scores, the counting being on
   the counting thread).
2. **gRPC overhead** (``--grpc``): two ``tablescore serve`` processes on the same model, one
   with ``--drift-window 300`` and one without; single-row ``ModelInfer`` round trips from
   one client, blocks of calls alternating between the two; p50 latency per block (median
   over blocks) and the server process's CPU time per request (``/proc/PID/stat``).
3. **Batch report**: ``tablescore drift BUNDLE --data cur.parquet --json --out`` on
   ``--rows`` x ``--features`` (a linear regression, reference from a 100k-row sample; every
   tenth feature shifted by half a standard deviation), wall and CPU time of the subprocess
   (goal <= 30 s), run before and after Evidently's ``DataDriftPreset`` on the same reference
   and current frames in its own virtualenv (``benchmarks/.venvs/evidently``, made by
   ``--install-evidently``), killed after ``--evidently-timeout`` seconds. ``--baseline
   CHECKOUT`` times another checkout's ``tablescore drift`` (the previous main) in the same
   run, interleaved. ``--skip-overhead`` runs only this part.

Results: ``benchmarks/results/drift-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY = ROOT / "benchmarks" / ".venvs" / "evidently" / "bin" / "python"
#: what --install-evidently puts there (Evidently 0.7 imports a helper pandas 3 removed)
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3", "pyarrow"]

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
            classifier: bool = False, forest: bool = False) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import exporters

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(sample_rows, n_features))
    w = rng.normal(size=n_features)
    if forest:
        est = RandomForestClassifier(n_estimators=200, max_depth=10, random_state=0,
                                     n_jobs=1).fit(X[:5000], X[:5000] @ w > 0)
    else:
        est = (LogisticRegression(max_iter=200).fit(X, X @ w > 0) if classifier
               else LinearRegression().fit(X, X @ w))
    exporters.export(est, path, sample=X, name=path.name)
    return X


def recorder_overhead(tmp: Path, repeats: int = 7, sample: float = 0.01,
                      model_kind: str = "logreg") -> dict:
    """Pipeline throughput with / without the drift recorder at 1 and 100k rows; at 100k
    rows also with ``--drift-sample`` ``sample`` (rows 0, k, 2k, ... of each request).
    ``model_kind``: ``logreg`` (a logistic regression on 30 inputs: the cheapest model to
    score, so the recorder's largest share) or ``forest`` (200 trees of depth 10 on the
    same 30 inputs)."""
    import scorer
    from scorer.monitoring import DriftRecorder
    from scorer.pipeline import ModelResolver, Pipeline

    _export(30, 20_000, tmp / model_kind, classifier=True, forest=model_kind == "forest")
    model = scorer.load(tmp / model_kind)
    # a queue that never drops in the benchmark: what is left at the end of a repeat is
    # counted inside it (drain), so "on" always does all the counting
    big = {"queue_rows": 1 << 26, "queue_requests": 1 << 26}
    recs = {"on": DriftRecorder(300, **big), "sampled": DriftRecorder(300, sample=sample, **big)}
    pipes = {"off": Pipeline(ModelResolver({"m": model})),
             **{k: Pipeline(ModelResolver({"m": model}), recorders=[r])
                for k, r in recs.items()}}
    rng = np.random.default_rng(1)
    out = {}
    sizes = ((1, 20_000), (100_000, 20)) if model_kind == "logreg" else ((1, 5000), (100_000, 4))
    for rows, calls in sizes:
        names = ["off", "on"] + (["sampled"] if rows >= 256 else [])
        X = rng.normal(size=(rows, 30))
        for name in names:  # warm: compile, first window
            for _ in range(min(calls, 2000)):
                pipes[name]("m", X)
        rates: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        tcpu: dict[str, list[float]] = {k: [] for k in names}
        for r in range(repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                p = pipes[name]
                t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
                for _ in range(calls):
                    p("m", X)
                h1 = time.thread_time()  # the scoring thread alone (no counting in it)
                if name in recs:
                    recs[name].drain()  # the repeat's rows counted inside its own time
                rates[name].append(rows * calls / (time.perf_counter() - t0))
                cpu[name].append((time.process_time() - c0) / (rows * calls) * 1e6)
                tcpu[name].append((h1 - h0) / (rows * calls) * 1e6)
        med = {k: statistics.median(v) for k, v in rates.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        mt = {k: statistics.median(v) for k, v in tcpu.items()}
        paired = [a / b for a, b in zip(rates["on"], rates["off"], strict=True)]
        res = {"rows_per_s_off": med["off"], "rows_per_s_on": med["on"],
               "ratio": med["on"] / med["off"],
               "cpu_us_per_row_off": mcpu["off"], "cpu_us_per_row_on": mcpu["on"],
               "cpu_ratio": mcpu["off"] / mcpu["on"],
               "thread_cpu_us_per_row_off": mt["off"], "thread_cpu_us_per_row_on": mt["on"],
               "thread_cpu_ratio": mt["off"] / mt["on"],
               "paired_ratios": paired, "calls_per_repeat": calls,
               "repeats": repeats, "dropped_rows": recs["on"].dropped("m", "1")}
        print(f"rows={rows}: off {med['off']:.4g} rows/s, on {med['on']:.4g} rows/s, "
              f"ratio {med['on'] / med['off']:.3f}; process CPU per row off "
              f"{mcpu['off']:.3g} us, on {mcpu['on']:.3g} us, ratio "
              f"{mcpu['off'] / mcpu['on']:.3f}; scoring thread CPU ratio "
              f"{mt['off'] / mt['on']:.3f}", flush=True)
        if "sampled" in names:
            res["sampled"] = {
                "sample": sample, "rows_per_s": med["sampled"],
                "ratio": med["sampled"] / med["off"], "cpu_us_per_row": mcpu["sampled"],
                "cpu_ratio": mcpu["off"] / mcpu["sampled"],
                "thread_cpu_ratio": mt["off"] / mt["sampled"],
                "dropped_rows": recs["sampled"].dropped("m", "1")}
            print(f"rows={rows}, --drift-sample {sample}: {med['sampled']:.4g} rows/s, "
                  f"ratio {med['sampled'] / med['off']:.3f}; process CPU ratio "
                  f"{mcpu['off'] / mcpu['sampled']:.3f}; scoring thread CPU ratio "
                  f"{mt['off'] / mt['sampled']:.3f}", flush=True)
        out[str(rows)] = res
    return out


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_overhead(tmp: Path, blocks: int = 16, calls: int = 1000) -> dict:
    """Single-row gRPC p50 and server CPU per request, ``--drift-window 300`` vs off."""
    import shutil
    import socket

    import tritonclient.grpc as tg

    if not (tmp / "logreg").exists():
        _export(30, 20_000, tmp / "logreg", classifier=True)
    repo = tmp / "grpc-repo"
    shutil.copytree(tmp / "logreg", repo / "logreg" / "1")
    servers = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for name, extra in (("off", []), ("on", ["--drift-window", "300"])):
            with socket.socket() as sk:
                sk.bind(("127.0.0.1", 0))
                port = sk.getsockname()[1]
            proc = subprocess.Popen(
                [sys.executable, "-m", "tablescore", "serve", "--repository", str(repo),
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                 "--log-format", "text", *extra], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
            servers[name] = (proc, tg.InferenceServerClient(f"127.0.0.1:{port}"))
        rows = np.random.default_rng(3).normal(size=(64, 30))
        inputs = []
        for k in range(64):
            inp = tg.InferInput("input", [1, 30], "FP64")
            inp.set_data_from_numpy(rows[k:k + 1])
            inputs.append(inp)
        deadline = time.time() + 180
        for proc, client in servers.values():
            while True:
                try:
                    if client.is_model_ready("logreg"):
                        break
                except Exception:
                    if proc.poll() is not None or time.time() > deadline:
                        raise
                time.sleep(0.2)
            for k in range(2000):  # warm: compiled paths, the first window
                client.infer("logreg", [inputs[k % 64]])
        p50: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        for b in range(blocks):
            for name in (("off", "on") if b % 2 == 0 else ("on", "off")):
                proc, client = servers[name]
                lat = []
                c0 = _proc_cpu_s(proc.pid)
                for k in range(calls):
                    t0 = time.perf_counter_ns()
                    client.infer("logreg", [inputs[k % 64]])
                    lat.append(time.perf_counter_ns() - t0)
                cpu[name].append((_proc_cpu_s(proc.pid) - c0) / calls * 1e6)
                p50[name].append(float(np.median(lat)) / 1e3)
        # 100k-row requests: wall time per call and server CPU per row (the server counts
        # them on its counting thread, beside the next request)
        big = tg.InferInput("input", [100_000, 30], "FP64")
        big.set_data_from_numpy(np.random.default_rng(4).normal(size=(100_000, 30)))
        for _, client in servers.values():
            client.infer("logreg", [big])
        bwall: dict[str, list[float]] = {"off": [], "on": []}
        bcpu: dict[str, list[float]] = {"off": [], "on": []}
        for b in range(8):
            for name in (("off", "on") if b % 2 == 0 else ("on", "off")):
                proc, client = servers[name]
                c0, t0 = _proc_cpu_s(proc.pid), time.perf_counter()
                for _ in range(4):
                    client.infer("logreg", [big])
                bwall[name].append((time.perf_counter() - t0) / 4 * 1e3)
                time.sleep(0.3)  # let the counting thread finish this block's rows
                bcpu[name].append((_proc_cpu_s(proc.pid) - c0) / 400_000 * 1e6)
        bw = {k: statistics.median(v) for k, v in bwall.items()}
        bc = {k: statistics.median(v) for k, v in bcpu.items()}
        med = {k: statistics.median(v) for k, v in p50.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        res = {"rows_100k": {"ms_per_call_off": bw["off"], "ms_per_call_on": bw["on"],
                             "ratio": bw["off"] / bw["on"],
                             "server_cpu_us_per_row_off": bc["off"],
                             "server_cpu_us_per_row_on": bc["on"],
                             "cpu_ratio": bc["off"] / bc["on"]},
               "p50_us_off": med["off"], "p50_us_on": med["on"],
               "ratio": med["off"] / med["on"], "server_cpu_us_per_request_off": mcpu["off"],
               "server_cpu_us_per_request_on": mcpu["on"], "cpu_ratio": mcpu["off"] / mcpu["on"],
               "blocks": blocks, "calls_per_block": calls,
               "paired_ratios": [a / b for a, b in zip(p50["off"], p50["on"], strict=True)]}
        print(f"gRPC single row: p50 off {med['off']:.1f} us, on {med['on']:.1f} us, ratio "
              f"{res['ratio']:.3f}; server CPU per request off {mcpu['off']:.1f} us, on "
              f"{mcpu['on']:.1f} us, ratio {res['cpu_ratio']:.3f}", flush=True)
        print(f"gRPC 100k rows: {bw['off']:.1f} ms per call off, {bw['on']:.1f} ms on, ratio "
              f"{bw['off'] / bw['on']:.3f}; server CPU per row off {bc['off']:.3g} us, on "
              f"{bc['on']:.3g} us, ratio {bc['off'] / bc['on']:.3f}", flush=True)
        return res
    finally:
        for proc, client in servers.values():
            client.close()
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _run_child(cmd: list[str], *, timeout: float | None = None, **kw) -> dict:
    """Run ``cmd``: its wall time, its CPU time (user + sys of the child and its threads: on
    a shared machine the wall time mostly measures the other processes) and the load average
    when it started; ``timed_out`` when it ran past ``timeout`` (it is killed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:  # killed and waited for: its CPU time counts too
        proc = None
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc is None:
        return {"timed_out": True, "wall_s": wall, "load_1min": load, "cpu_s": cpu}
    return {"timed_out": False, "wall_s": wall, "load_1min": load, "proc": proc, "cpu_s": cpu}


def _tablescore_drift(root: Path, tmp: Path, tag: str, features: int) -> dict:
    """One ``tablescore drift`` run with the CLI of the checkout ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = tmp / f"r-{tag}"
    r = _run_child([sys.executable, "-m", "tablescore", "drift", str(tmp / "wide"),
                    "--data", str(tmp / "cur.parquet"), "--json", f"{out}.json",
                    "--out", f"{out}.html"], env=env, cwd=root)
    proc = r.pop("proc")
    report = json.loads(Path(f"{out}.json").read_text())
    psi = report["psi"]
    shifted = [psi[f"x{j}"] for j in range(0, features, 10)]
    other = [psi[f"x{j}"] for j in range(features) if j % 10]
    res = {**r, "in_process_s": report["seconds"], "exit": proc.returncode,
           "html_bytes": Path(f"{out}.html").stat().st_size,
           "html_images": Path(f"{out}.html").read_text().count("data:image/png;base64,"),
           "min_psi_shifted": min(shifted), "max_psi_other": max(other)}
    print(f"tablescore drift [{tag}]: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU "
          f"({report['seconds']:.1f} s report, load {r['load_1min']:.1f}), exit "
          f"{proc.returncode}, {res['html_images']} plots; shifted PSI >= {min(shifted):.3f}, "
          f"others <= {max(other):.3f}", flush=True)
    return res


def _evidently(tmp: Path, timeout: float) -> dict:
    """Evidently's DataDriftPreset on the same reference and current frames."""
    if not EVIDENTLY.exists():
        return {"error": f"not installed ({EVIDENTLY} missing; python -m benchmarks.drift "
                         "--install-evidently)"}
    r = _run_child([str(EVIDENTLY), "-c", _EVIDENTLY_SCRIPT, str(tmp / "ref.parquet"),
                    str(tmp / "cur.parquet"), str(tmp / "ev.html")], timeout=timeout)
    if r["timed_out"]:
        res = {"error": f"timed out after {timeout:.0f} s (killed)", **r}
    else:
        proc = r.pop("proc")
        res = ({**r, **json.loads(proc.stdout.splitlines()[-1])} if proc.returncode == 0
               else {**r, "error": proc.stderr[-2000:]})
    print(f"evidently: {res}", flush=True)
    return res


def batch_report(tmp: Path, rows: int, features: int, evidently_timeout: float,
                 baseline: Path | None = None, evidently: bool = True) -> dict:
    """``tablescore drift`` vs Evidently's DataDriftPreset on the same data: tablescore
    before and after Evidently (so both see the machine's load), and the ``baseline``
    checkout's CLI (an earlier tablescore) beside this one when given."""
    import pandas as pd

    ref = _export(features, 100_000, tmp / "wide")
    cols = [f"x{j}" for j in range(features)]
    rng = np.random.default_rng(2)
    cur = rng.normal(size=(rows, features))
    cur[:, ::10] += 0.5  # every tenth feature drifts
    pd.DataFrame(ref, columns=cols).to_parquet(tmp / "ref.parquet")
    pd.DataFrame(cur, columns=cols).to_parquet(tmp / "cur.parquet")
    del cur
    res: dict = {"rows": rows, "features": features, "reference_rows": 100_000}
    runs = [("this", ROOT)] + ([("baseline", baseline)] if baseline else [])
    res["tablescore"] = _tablescore_drift(ROOT, tmp, "this-1", features)
    res["tablescore"]["commit"] = _commit(ROOT)
    if baseline:
        res["baseline"] = {"root": str(baseline), "commit": _commit(baseline),
                           **_tablescore_drift(baseline, tmp, "baseline-1", features)}
    res["evidently"] = (_evidently(tmp, evidently_timeout) if evidently
                        else {"error": "skipped (--skip-evidently)"})
    for tag, root in reversed(runs):  # second round in the other order
        key = "tablescore_2" if tag == "this" else "baseline_2"
        res[key] = _tablescore_drift(root, tmp, f"{tag}-2", features)
    return res


def _commit(root: Path) -> str | None:
    """The git commit checked out at ``root`` (None outside git)."""
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                       text=True)
    return r.stdout.strip() or None


def install_evidently() -> None:
    """Create ``benchmarks/.venvs/evidently`` with Evidently (its pins clash with ours)."""
    venv = EVIDENTLY.parent.parent
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *EVIDENTLY_PINS], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.drift")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--evidently-timeout", type=float, default=900.0)
    p.add_argument("--skip-overhead", action="store_true",
                   help="no recorder overhead (in-process scoring with monitoring on / off)")
    p.add_argument("--models", default="logreg",
                   help="comma-separated models of the in-process overhead: logreg, forest")
    p.add_argument("--grpc", action="store_true", help="also the gRPC single-row overhead")
    p.add_argument("--skip-batch", action="store_true", help="no batch report")
    p.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                   help="also time the tablescore drift of this checkout (e.g. the previous "
                   "main), interleaved with this one")
    p.add_argument("--skip-evidently", action="store_true")
    p.add_argument("--install-evidently", action="store_true",
                   help=f"create {EVIDENTLY.parent.parent} ({' '.join(EVIDENTLY_PINS)}) first")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.install_evidently:
        install_evidently()
    results: dict = {"date": dt.date.today().isoformat(), "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version()}}
    with tempfile.TemporaryDirectory(prefix="tablescore-drift-bench-") as d:
        tmp = Path(d)
        if not args.skip_overhead:
            for kind in args.models.split(","):
                print(f"-- {kind}", flush=True)
                key = "recorder_overhead" + ("" if kind == "logreg" else f"_{kind}")
                results[key] = recorder_overhead(tmp, model_kind=kind)
        if args.grpc:
            results["grpc_overhead"] = grpc_overhead(tmp)
        if not args.skip_batch:
            results["batch"] = batch_report(tmp, args.rows, args.features,
                                            args.evidently_timeout, baseline=args.baseline,
                                            evidently=not args.skip_evidently)
    stem = "drift-serving" if args.skip_batch else "drift"  # the batch figures stay put
    out = args.out or ROOT / "benchmarks" / "results" / f"{stem}-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
