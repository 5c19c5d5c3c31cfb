"""Overhead of experiment routing on single-row requests: gRPC p50 and handler CPU.

``python -m benchmarks.experiments [--calls 2000] [--rounds 5] [--baseline REF] [--exposures]``
serves one bundle (a logistic regression on 30 features, versions 1 and 2) as three models:
``plain`` (no experiment; the request is one raw tensor, the common case), ``param`` (no
experiment; the request also carries a ``customer_id`` parameter, so it takes the same
protobuf path as an experiment request: the fair baseline) and ``exp`` (an experiment with two
arms over versions 1 and 2, the unit in the ``customer_id`` parameter) and ``exp_one`` (the
same experiment with both arms on version 2, the default: routing without a second version
to keep warm, to tell the two costs apart).

Two measurements, both interleaved so that the machine's load falls on every variant alike:

- **gRPC p50**: each server runs in a process of its own (``python -m scorer.server``); one
  tritonclient client calls every (server, model) pair once per step, in a new random order
  each step (a fixed order biased the old version of this benchmark: the third call of a
  step always followed the same two). p50 / p99 per pair per round.
- **handler CPU**: a worker process per source tree calls the servicer's ModelInfer handler
  directly (request bytes in, response bytes out, no network), interleaving the models call by
  call in random order, and reports the median thread CPU time per call of each; the workers
  take turns round by round.

``--baseline REF`` adds the same measurements for the code at git ``REF`` (extracted with
``git archive``), so old and new run in the same run; ``--exposures`` turns the exposure log
on (Parquet into a temporary directory) in every server and worker. Results:
``benchmarks/results/experiments-<date>.json``.

Goal (issue #23): p50 with an experiment configured within 5% of without (``exp`` vs
``param``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("plain", "param", "exp", "exp_one")

#: the handler-CPU worker, run with the source tree under test first on sys.path
_WORKER = r"""
import json, random, statistics, sys, tempfile, time
src, repo, exposures = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sys.path.insert(0, src)
import numpy as np
from protos import inference_pb2 as pb
from scorer.experiments.router import ExperimentRouter
from scorer.pipeline import Pipeline
from scorer.server import serve
from scorer.server.servicer import InferenceServicer

class Ctx:
    def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")

row = np.random.default_rng(0).normal(size=(1, 30)).tobytes()
def payload(model, k):
    req = pb.ModelInferRequest(model_name=model)
    t = req.inputs.add()
    t.name, t.datatype = "input", "FP64"
    t.shape.extend([1, 30])
    req.raw_input_contents.append(row)
    if model != "plain":
        req.parameters["customer_id"].int64_param = k
    return req.SerializeToString()

models = ["plain", "param", "exp", "exp_one"]
with serve(repo, port=0, poll_interval=0, ready_timeout=300) as server:
    router = ExperimentRouter(server.repository)
    recorders = []
    if exposures:
        from scorer.experiments.exposures import ExposureLog
        recorders = [ExposureLog(tempfile.mkdtemp(), router)]
    pipeline = Pipeline(server.repository, router=router, recorders=recorders)
    h = InferenceServicer(server.repository, server.config, server.metrics, server._state,
                          pipeline=pipeline).handlers()["ModelInfer"]
    ctx = Ctx()
    pl = {m: [payload(m, k) for k in range(1024)] for m in models}
    for m in models:
        for p in pl[m]:
            h(p, ctx)
    rng = random.Random(1)
    clock = time.thread_time_ns
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        per = {m: [] for m in models}
        order = list(models)
        for k in range(n):
            rng.shuffle(order)
            for m in order:
                data = pl[m][k % 1024]
                t0 = clock()
                h(data, ctx)
                per[m].append(clock() - t0)
        print(json.dumps({m: statistics.median(v) / 1e3 for m, v in per.items()}), flush=True)
    for r in recorders:
        r.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _repository(root: Path) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    import exporters

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 30))
    y = (X[:, 0] + rng.normal(size=2000) > 0).astype(int)
    repo = root / "repo"
    b1, b2 = root / "b1", root / "b2"
    exporters.export(LogisticRegression(C=1.0).fit(X, y), b1, sample=X[:64], name="m")
    exporters.export(LogisticRegression(C=0.1).fit(X, y), b2, sample=X[:64], name="m")
    for model in MODELS:
        shutil.copytree(b1, repo / model / "1")
        shutil.copytree(b2, repo / model / "2")
        cfg: dict = {"version_policy": {"all": {}}}
        if model.startswith("exp"):
            other = "1" if model == "exp" else "2"
            cfg["experiment"] = {"name": f"bench-{model}", "unit": "customer_id", "salt": "b",
                                 "shadow": None, "arms": [
                                     {"name": "control", "version": other, "weight": 0.5},
                                     {"name": "candidate", "version": "2", "weight": 0.5}]}
        (repo / model / "config.json").write_text(json.dumps(cfg))
    return np.ascontiguousarray(X[:1])


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def _server(src: Path, repo: Path, exposures: Path | None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    cmd = [sys.executable, "-m", "scorer.server", "--repository", str(repo), "--port",
           str(port), "--poll-interval", "0", "--log-format", "text"]
    if exposures is not None:
        cmd += ["--exposures", str(exposures)]
    proc = subprocess.Popen(cmd, cwd=src, env=_env(src), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, port


def _wait_ready(client, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("a benchmark server exited")
        try:
            if all(client.is_model_ready(m) for m in MODELS):
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError("a benchmark server did not get ready")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=2000, help="gRPC steps per round")
    p.add_argument("--handler-calls", type=int, default=5000,
                   help="handler calls per model per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--baseline", default=None, metavar="REF",
                   help="also measure the code at this git ref, interleaved")
    p.add_argument("--exposures", action="store_true", help="exposure log on (Parquet)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import tritonclient.grpc as tc

    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        row = _repository(tmp)
        sides = {"new": ROOT}
        if args.baseline:
            base = tmp / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            sides = {"old": base, "new": ROOT}
        procs, workers, clients = [], {}, {}
        try:
            for side, src in sides.items():
                proc, port = _server(src, tmp / "repo",
                                     tmp / f"exposures-{side}" if args.exposures else None)
                procs.append(proc)
                clients[side] = (tc.InferenceServerClient(f"127.0.0.1:{port}"), proc)
                w = subprocess.Popen(
                    [sys.executable, "-c", _WORKER, str(src), str(tmp / "repo"),
                     "1" if args.exposures else "0"], cwd=src, env=_env(src),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True)
                procs.append(w)
                workers[side] = w
            for client, proc in clients.values():
                _wait_ready(client, proc)
            for side, w in workers.items():
                if w.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"the {side} handler worker failed")
            out = _run(args, sides, clients, workers, row, tc)
        finally:
            for client, _ in clients.values():
                client.close()
            for proc in procs:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    path = args.out or ROOT / "benchmarks" / "results" / (
        f"experiments-{dt.date.today().isoformat()}.json")
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({"summary": out["summary"], "ratios": out["ratios"]}, indent=2))
    print(f"wrote {path}")
    return 0


def _run(args, sides, clients, workers, row, tc) -> dict:
    inp = tc.InferInput("input", [1, 30], "FP64")
    inp.set_data_from_numpy(row)
    pairs = [(s, m) for s in sides for m in MODELS]

    def call(side: str, model: str, k: int) -> float:
        params = None if model == "plain" else {"customer_id": k}
        client = clients[side][0]
        t0 = time.perf_counter()
        client.infer(model, [inp], parameters=params)
        return time.perf_counter() - t0

    for s, m in pairs:  # warm-up
        for k in range(200):
            call(s, m, k)
    rng = random.Random(0)
    lat = {f"{s}/{m}": [] for s, m in pairs}
    rounds = []
    for r in range(args.rounds):
        # handler CPU: the workers take turns (which goes first alternates)
        cpu = {}
        order = list(workers) if r % 2 == 0 else list(reversed(workers))
        for side in order:
            w = workers[side]
            w.stdin.write(f"{args.handler_calls}\n")
            w.stdin.flush()
            for m, us in json.loads(w.stdout.readline()).items():
                cpu[f"{side}/{m}"] = us
        # gRPC: every pair once per step, in a random order
        per = {f"{s}/{m}": [] for s, m in pairs}
        for k in range(args.calls):
            rng.shuffle(pairs)
            for s, m in pairs:
                per[f"{s}/{m}"].append(call(s, m, r * args.calls + k))
        p50 = {key: statistics.median(v) * 1e6 for key, v in per.items()}
        for key, v in per.items():
            lat[key].extend(v)
        rnd = {"grpc_p50_us": p50, "handler_cpu_us": cpu,
               "ratios": _ratios(p50, cpu, sides)}
        rounds.append(rnd)
        print(f"round {r + 1}: " + json.dumps(rnd["ratios"]), flush=True)
    summary = {key: {"p50_us": statistics.median(v) * 1e6,
                     "p99_us": float(np.percentile(v, 99)) * 1e6, "calls": len(v)}
               for key, v in lat.items()}
    cpu_med = {key: statistics.median(r["handler_cpu_us"][key] for r in rounds)
               for key in rounds[0]["handler_cpu_us"]}
    ratios = _ratios({k: v["p50_us"] for k, v in summary.items()}, cpu_med, sides)
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_average": os.getloadavg(), "baseline": args.baseline,
            "exposures": args.exposures, "calls_per_round": args.calls,
            "handler_calls_per_round": args.handler_calls, "rounds": rounds,
            "summary": summary, "handler_cpu_us_median_of_rounds": cpu_med,
            "ratios": ratios}


def _ratios(p50: dict, cpu: dict, sides: dict) -> dict:
    out = {}
    for s in sides:
        out[f"{s} grpc exp/param"] = round(p50[f"{s}/exp"] / p50[f"{s}/param"], 4)
        out[f"{s} grpc exp/plain"] = round(p50[f"{s}/exp"] / p50[f"{s}/plain"], 4)
        out[f"{s} cpu exp/param"] = round(cpu[f"{s}/exp"] / cpu[f"{s}/param"], 4)
        out[f"{s} cpu exp-param us"] = round(cpu[f"{s}/exp"] - cpu[f"{s}/param"], 2)
        out[f"{s} grpc exp_one/param"] = round(p50[f"{s}/exp_one"] / p50[f"{s}/param"], 4)
        out[f"{s} cpu exp_one/param"] = round(cpu[f"{s}/exp_one"] / cpu[f"{s}/param"], 4)
    if "old" in sides:
        for m in MODELS:
            out[f"grpc {m} new/old"] = round(p50[f"new/{m}"] / p50[f"old/{m}"], 4)
            out[f"cpu {m} new/old"] = round(cpu[f"new/{m}"] / cpu[f"old/{m}"], 4)
    return out


if __name__ == "__main__":
    sys.exit(main())
