"""Feature store benchmark (#22): loading, entity lookup + score through gRPC, Feast beside
it, and the output cache.

    PYTHONPATH=. .venv/bin/python -m benchmarks.features --entities 1000000 \
        --redis redis://127.0.0.1:6379/7 --feast-db 8

1. ``--entities`` x ``--features`` doubles into Redis (``--redis``, a database of its own;
   the view is deleted afterwards) with ``tablescore features load``'s loader; then the
   same file again (written: 0).
2. ``tablescore serve --features`` in a process of its own (as deployed: the client's
   threads do not share the server's interpreter), a 200-tree random forest on the 50
   features; p50/p99 of ModelInfer with 1 and 100 entity ids per request (tritonclient).
3. Feast 0.67 ``get_online_features`` on the same Redis and data, in its own venv
   (benchmarks/.venvs/feast: ``python3 -m venv benchmarks/.venvs/feast &&
   benchmarks/.venvs/feast/bin/pip install 'feast[redis]==0.67.*'``), when it is
   installed: the same id draws, request by request in turn with ours (a shared machine's
   load then weighs on both alike). Its database (``--feast-db``) is emptied afterwards.
4. Output cache (``local:64``), same server process kind: one full row, a hit (the same row
   again) versus a miss.

``--baseline CHECKOUT`` also serves the same repository with another checkout's tablescore
(the previous main) and sends each draw to it too, in turn with this one's and Feast's.
``--raw-client`` also sends each draw through a bare grpcio stub (request bytes made in
advance, answer unparsed), in turn with the others: the server without tritonclient's work.
``--feast-server`` also sends each of Feast's lookups through Feast's own feature server
(``feast serve``, HTTP): Feast as a service, across a process boundary as ours is.

Results: benchmarks/results/features-<date>[-<entities>].json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FEAST_PY = HERE / ".venvs" / "feast" / "bin" / "python"

FEAST_SCRIPT = r'''
import json, sys, time, datetime as dt
from collections.abc import Iterator
from pathlib import Path
import numpy as np, pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64
data, repo, conn, n_feat, draws_path, port = sys.argv[1:7]
n_feat, port = int(n_feat), int(port)
repo = Path(repo); (repo / "data").mkdir(parents=True, exist_ok=True)
(repo / "feature_store.yaml").write_text(f"""project: tsbench
registry: {repo}/data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "{conn}"
entity_key_serialization_version: 3
""")
store = FeatureStore(repo_path=str(repo))
ent = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
fv = FeatureView(name="bench", entities=[ent], ttl=dt.timedelta(days=3650), online=True,
                 schema=[Field(name=f"f{i}", dtype=Float64) for i in range(n_feat)],
                 source=FileSource(path=data, timestamp_field="event_timestamp"))
store.apply([ent, fv])
df = pd.read_parquet(data)
t0 = time.perf_counter()
for s in range(0, len(df), 10000):
    store.write_to_online_store("bench", df.iloc[s:s + 10000])
load_s = time.perf_counter() - t0
refs = [f"bench:f{i}" for i in range(n_feat)]
draws = json.loads(Path(draws_path).read_text())
web = server = None
if port:  # Feast's own feature server (HTTP), called through a kept-alive connection
    import http.client, subprocess, urllib.request
    feast_cli = str(Path(sys.executable).parent / "feast")
    server = subprocess.Popen([feast_cli, "-c", str(repo), "serve", "-p", str(port),
                               "--no-access-log", "--max-requests", "1000000000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("feast serve did not start")
            time.sleep(0.5)
    web = http.client.HTTPConnection("127.0.0.1", port)
print("RESULT " + json.dumps({"load_s": load_s}), flush=True)
for line in sys.stdin:  # "SIZE INDEX": one lookup of that draw, its latency back
    size, j = line.split()
    ids = draws[size][int(j)]
    rows = [{"customer_id": int(i)} for i in ids]
    t = time.perf_counter()
    r = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    lat = time.perf_counter() - t
    assert len(r["f0"]) == len(rows)
    lat_http = -1.0
    if web is not None:
        body = json.dumps({"features": refs, "entities": {"customer_id": ids}})
        t = time.perf_counter()
        web.request("POST", "/get-online-features", body, {"Content-Type": "application/json"})
        answer = web.getresponse().read()
        lat_http = time.perf_counter() - t
        assert len(json.loads(answer)["results"][1]["values"]) == len(ids)
    print(f"RESULT {lat!r} {lat_http!r}", flush=True)
if server is not None:
    server.terminate()
    server.wait(30)
'''


def pct(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "n": len(lat)}


class _Feast:
    """Feast 0.67 in its own venv: loads the data into ``--feast-db`` (timed there), then
    answers one ``get_online_features`` of a given draw at a time (timed there), so the
    caller can interleave its own requests with Feast's."""

    def __init__(self, args: argparse.Namespace, data: Path, tmp: Path, nf: int,
                 draws: dict[str, list[list[int]]]) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(args.redis)
        self.host, self.port, self.db = u.hostname, u.port, args.feast_db
        (tmp / "draws.json").write_text(json.dumps(draws))
        port = 0
        if getattr(args, "feast_server", False):
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [str(FEAST_PY), "-c", FEAST_SCRIPT, str(data), str(tmp / "feast"),
             f"{u.hostname}:{u.port},db={self.db}", str(nf), str(tmp / "draws.json"),
             str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.load_s = float(json.loads(self._result())["load_s"])
        #: latencies of Feast's feature server (HTTP) per lookup, when it runs
        self.served: list[float] = []

    def _result(self) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return line[7:]
        raise RuntimeError(f"the Feast process ended (exit {self.proc.wait()})")

    def lookup(self, size: str, j: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{size} {j}\n")
        self.proc.stdin.flush()
        lat, served = map(float, self._result().split())
        if served >= 0:
            self.served.append(served)
        return lat

    def close(self) -> None:
        import redis

        from scorer.features.redis_store import _chunks

        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        r = redis.Redis(host=self.host, port=self.port, db=self.db)
        for batch in _chunks(r.scan_iter(match="*", count=5000), 5000):
            r.delete(*batch)  # Feast's keys only: its database holds nothing else


def _request_bytes(ids: list[int]) -> bytes:
    """The ModelInferRequest tritonclient sends for ``ids``, serialized."""
    from protos import inference_pb2 as pb

    req = pb.ModelInferRequest(model_name="forest")
    req.inputs.add(name="customer_id", datatype="INT64", shape=[len(ids)])
    req.raw_input_contents.append(np.asarray(ids, dtype=np.int64).tobytes())
    return req.SerializeToString()


def entity_data(rng: np.random.Generator, n: int, nf: int,
                tmp: Path) -> tuple[pd.DataFrame, Path]:
    """``n`` entities (``customer_id`` 0..n-1) x ``nf`` normal doubles ``f0...``, one event
    time: the frame and the Parquet file holding it (in ``tmp``)."""
    names = [f"f{i}" for i in range(nf)]
    df = pd.DataFrame(rng.normal(size=(n, nf)), columns=names)
    df.insert(0, "customer_id", np.arange(n, dtype=np.int64))
    df["event_timestamp"] = pd.Timestamp("2026-01-01", tz="UTC")
    data = tmp / "features.parquet"
    df.to_parquet(data)
    return df, data


def forest_repository(df: pd.DataFrame, view: str, repo: Path) -> Path:
    """A model repository holding ``forest``: a 200-tree random forest on the features of
    :func:`entity_data`'s first 5,000 rows, bound to ``view``."""
    from sklearn.ensemble import RandomForestClassifier

    import exporters

    names = list(df.columns[1:-1])
    X = df[names].iloc[:5000]
    v = X.to_numpy()
    y = (v[:, 0] + v[:, 1] * v[:, 2] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=200, max_depth=10, random_state=0,
                                    n_jobs=1).fit(X, y)
    exporters.export(forest, repo / "forest" / "1", sample=X, name="forest")
    (repo / "forest" / "config.json").write_text(json.dumps({"features": {"view": view}}))
    return repo


@contextlib.contextmanager
def _server(repo: Path, *options: str, root: Path = HERE.parent) -> Iterator[str]:
    """``tablescore serve --repository repo OPTIONS`` of the checkout ``root`` in a process
    of its own, ready; yields its gRPC address."""
    import socket

    import tritonclient.grpc as tc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "tablescore", "serve", "--repository",
                             str(repo), "--port", str(port), "--metrics-port", "0", *options],
                            env=env, stdout=subprocess.DEVNULL, cwd=root)
    addr = f"127.0.0.1:{port}"
    try:
        client = tc.InferenceServerClient(addr)
        deadline = time.monotonic() + 300
        while True:
            try:
                if client.is_model_ready("forest"):
                    break
            except Exception:  # not listening yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tablescore serve did not start (exit {proc.poll()})")
            time.sleep(0.2)
        client.close()
        yield addr
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--no-feast", action="store_true")
    ap.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                    help="also serve with another checkout's tablescore (the previous main), "
                         "its requests interleaved with this one's and Feast's")
    ap.add_argument("--sizes", default="1,100",
                    help="ids per request, comma-separated (default 1,100)")
    ap.add_argument("--block", type=int, default=1, metavar="N",
                    help="requests of each engine in a row before the next engine's (default "
                         "1: request by request; N > 1: as a server busy with a stream of "
                         "requests sees them, caches warm)")
    ap.add_argument("--raw-client", action="store_true",
                    help="also send each request through a bare grpcio stub (the request "
                         "serialized in advance, the answer left unparsed): the server's "
                         "latency without tritonclient's own work")
    ap.add_argument("--feast-server", action="store_true",
                    help="also time each lookup through Feast's own feature server "
                         "(`feast serve`, HTTP, one worker, a kept-alive connection)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--feast-db", type=int, default=15,
                    help="Feast's database on the same Redis (emptied afterwards: use one that "
                         "holds nothing else; tests use 10-15 minus this)")
    args = ap.parse_args()

    import tritonclient.grpc as tc

    from scorer.features import open_store
    from scorer.features.loader import load

    rng = np.random.default_rng(0)
    n, nf = args.entities, args.features
    tmp = Path(tempfile.mkdtemp(prefix="ts-featbench-"))
    df, data = entity_data(rng, n, nf, tmp)
    names = list(df.columns[1:-1])
    result: dict = {"date": dt.date.today().isoformat(), "entities": n, "features": nf,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                    "redis": args.redis}

    view = f"bench_{uuid.uuid4().hex[:8]}"
    store = open_store(args.redis, timeout=5.0)
    feast: _Feast | None = None
    try:
        t0 = time.perf_counter()
        rep = load(store, data, view=view, entity="customer_id", timestamp="event_timestamp")
        result["load"] = {"seconds": round(time.perf_counter() - t0, 1), "rows": rep.rows,
                          "rows_per_s": round(rep.rows / (time.perf_counter() - t0))}
        t0 = time.perf_counter()
        again = load(store, data, view=view, entity="customer_id",
                     timestamp="event_timestamp")
        result["reload"] = {"seconds": round(time.perf_counter() - t0, 1),
                            "written": again.written}
        print("load", result["load"], "reload", result["reload"], file=sys.stderr)

        repo = forest_repository(df, view, tmp / "repo")
        draws = {str(size): [rng.integers(0, n, size).tolist() for _ in range(args.requests)]
                 for size in map(int, args.sizes.split(","))}
        feast = _Feast(args, data, tmp, nf, draws) if FEAST_PY.exists() and \
            not args.no_feast else None
        if feast is not None:
            result["feast"] = {"version": "0.67", "redis_db": args.feast_db,
                               "write_to_online_store_s": round(feast.load_s, 1)}
            print("feast load", result["feast"], file=sys.stderr)
        else:
            result["feast"] = "skipped (benchmarks/.venvs/feast not installed)"
        serve = ("--features", args.redis, "--features-timeout", "1.0")
        with contextlib.ExitStack() as servers:
            addrs = {"": servers.enter_context(_server(repo, *serve))}
            if args.baseline is not None:
                result["baseline"] = {"checkout": str(args.baseline)}
                addrs["baseline"] = servers.enter_context(
                    _server(repo, *serve, root=args.baseline.resolve()))
            clients = {k: tc.InferenceServerClient(a) for k, a in addrs.items()}
            # name -> call(tritonclient input, the same request serialized)
            calls = {k: (lambda inp, data, c=c: c.infer("forest", [inp]))
                     for k, c in clients.items()}
            channels = []
            if args.raw_client:
                import grpc

                for k, a in addrs.items():
                    channels.append(grpc.insecure_channel(a))
                    stub = channels[-1].unary_unary(
                        "/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
                    calls[f"{k}_raw"] = lambda inp, data, s=stub: s(data)
            result["block"] = args.block
            for size, batches in draws.items():
                # in turn, a block of requests each (default: one): ours (and the
                # baseline's), then Feast's lookups of the same ids, so all see the same
                # moments of a shared machine
                lat: dict[str, list[float]] = {k: [] for k in calls}
                flat = []
                order = [(0, batches[0])] * 5 + list(enumerate(batches))  # 5 warm-up
                for b in range(0, len(order), args.block):
                    block = order[b:b + args.block]
                    inputs = []
                    for _, ids in block:
                        inp = tc.InferInput("customer_id", [len(ids)], "INT64")
                        inp.set_data_from_numpy(np.asarray(ids, dtype=np.int64))
                        inputs.append((inp, _request_bytes(ids)))
                    for k, call in calls.items():
                        for inp, data in inputs:
                            t = time.perf_counter()
                            call(inp, data)
                            lat[k].append(time.perf_counter() - t)
                    if feast is not None:
                        flat.extend(feast.lookup(size, j) for j, _ in block)
                result[f"grpc_entity_{size}"] = pct(lat[""][5:])
                print(size, result[f"grpc_entity_{size}"], file=sys.stderr)
                if "baseline" in lat:
                    result["baseline"][f"grpc_entity_{size}"] = pct(lat["baseline"][5:])
                    print("baseline", size, result["baseline"][f"grpc_entity_{size}"],
                          file=sys.stderr)
                for k in ("", "baseline"):
                    if f"{k}_raw" in lat:
                        where = result if not k else result["baseline"]
                        where[f"grpc_entity_{size}_raw_client"] = pct(lat[f"{k}_raw"][5:])
                        print(k or "tablescore", size, "raw client",
                              where[f"grpc_entity_{size}_raw_client"], file=sys.stderr)
                if feast is not None:
                    result["feast"][f"get_online_features_{size}"] = pct(flat[5:])
                    print("feast", size, result["feast"][f"get_online_features_{size}"],
                          file=sys.stderr)
                    if feast.served:
                        result["feast"][f"feature_server_http_{size}"] = pct(feast.served[5:])
                        print("feast feature server", size,
                              result["feast"][f"feature_server_http_{size}"], file=sys.stderr)
                        feast.served = []
            for client in clients.values():
                client.close()
            for ch in channels:
                ch.close()
        if feast is not None:
            feast.close()
            feast = None
        with _server(repo, "--cache", "local:64") as addr:
            client = tc.InferenceServerClient(addr)

            def one(row: np.ndarray) -> float:
                inp = tc.InferInput("input", [1, nf], "FP64")
                inp.set_data_from_numpy(np.ascontiguousarray(row[None, :]))
                t = time.perf_counter()
                client.infer("forest", [inp])
                return time.perf_counter() - t

            rows = df[names].to_numpy()
            for _ in range(20):
                one(rows[0])
            hit = [one(rows[0]) for _ in range(args.requests)]
            miss = [one(rows[1000 + i]) for i in range(args.requests)]
            result["cache_local_hit"] = pct(hit)
            result["cache_local_miss"] = pct(miss)
            print("cache", result["cache_local_hit"], result["cache_local_miss"],
                  file=sys.stderr)
            client.close()
    finally:
        if feast is not None:
            feast.close()
        store.delete_view(view)  # type: ignore[attr-defined]
        store.close()
    out = args.out or HERE / "results" / f"features-{result['date']}-{n}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
