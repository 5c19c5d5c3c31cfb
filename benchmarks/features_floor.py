"""How low can an entity lookup through gRPC go here? A lower bound beside Feast (#22):
``python -m benchmarks.features_floor [--entities 200000] [--requests 3000]``.

Four ways of answering "the 50 features of customer N", one id per request, request by
request in turn (the same ids, the same moments of the machine):

- ``tablescore``: ``tablescore serve --features`` on a 200-tree forest (lookup + score), as
  in ``benchmarks.features``;
- ``ideal``: a bare grpcio server (own process, the thread-pool server tablescore uses) whose
  ``ModelInfer`` handler only takes the id out of the request, sends one ``HGETALL`` on a raw
  Redis connection, reads the answer and returns a response serialized in advance: no
  decoding of the values, no scoring, no metrics -- what any Python gRPC service that reads
  the store must at least do;
- ``bare``: the same server answering without touching Redis (the transport alone);
- ``feast``: Feast 0.67 ``get_online_features`` in its own process (lookup only, timed
  there), on the same Redis and data.

The three gRPC ones are called with tritonclient, as ``benchmarks.features`` does. When
``ideal``'s p99 is not below Feast's, no Python gRPC server on this machine can meet #22's
one-id goal. Results: ``benchmarks/results/features-floor-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .features import FEAST_PY, HERE, _Feast, _server, entity_data, forest_repository, pct

IDEAL_SERVER = r'''
import sys, time
from concurrent import futures
import grpc, numpy as np, redis
from protos import inference_pb2 as pb
port, url, prefix, mode = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4]
conn = redis.Redis.from_url(url).connection_pool.get_connection()
resp = pb.ModelInferResponse(model_name="forest", model_version="1")
for name, dt_, v in (("probability(0)", "FP64", np.array([0.25]).tobytes()),
                     ("probability(1)", "FP64", np.array([0.75]).tobytes()),
                     ("label", "INT64", np.array([1], dtype=np.int64).tobytes())):
    resp.outputs.add(name=name, datatype=dt_, shape=[1])
    resp.raw_output_contents.append(v)
answer = resp.SerializeToString()
def infer(data, context):
    req = pb.ModelInferRequest.FromString(data)
    if mode == "ideal":
        key = prefix + str(int(np.frombuffer(req.raw_input_contents[0], np.int64)[0])).encode()
        conn.send_packed_command([b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%s\r\n" % (len(key), key)],
                                 check_health=False)
        if not conn.read_response():
            raise RuntimeError("unknown id")
    return answer
def live(data, context):
    return pb.ServerLiveResponse(live=True).SerializeToString()
h = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
    "ModelInfer": grpc.unary_unary_rpc_method_handler(infer),
    "ServerLive": grpc.unary_unary_rpc_method_handler(live)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((h,))
server.add_insecure_port(f"127.0.0.1:{port}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
'''


@contextlib.contextmanager
def _ideal(url: str, prefix: str, mode: str) -> Iterator[str]:
    """The bare server of this module's docstring in a process of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", IDEAL_SERVER, str(port), url, prefix, mode],
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {mode} server did not start (exit {proc.poll()})")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    ap.add_argument("--feast-db", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not FEAST_PY.exists():
        print(f"Feast is not installed at {FEAST_PY} (see benchmarks/features.py)",
              file=sys.stderr)
        return 2

    import tritonclient.grpc as tc

    from scorer.features import open_store
    from scorer.features.loader import load

    rng = np.random.default_rng(0)
    n, nf = args.entities, args.features
    tmp = Path(tempfile.mkdtemp(prefix="ts-featfloor-"))
    df, data = entity_data(rng, n, nf, tmp)
    view = f"floor_{uuid.uuid4().hex[:8]}"
    store = open_store(args.redis, timeout=5.0)
    feast = None
    result: dict = {"date": dt.date.today().isoformat(), "entities": n, "features": nf,
                    "requests": args.requests,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)"}
    try:
        load(store, data, view=view, entity="customer_id", timestamp="event_timestamp")
        repo = forest_repository(df, view, tmp / "repo")
        draws = {"1": [rng.integers(0, n, 1).tolist() for _ in range(args.requests)]}
        feast = _Feast(args, data, tmp, nf, draws)
        with contextlib.ExitStack() as stack:
            addrs = {
                "tablescore": stack.enter_context(
                    _server(repo, "--features", args.redis, "--features-timeout", "1.0")),
                "ideal": stack.enter_context(_ideal(args.redis, f"ts:f:{view}:", "ideal")),
                "bare": stack.enter_context(_ideal(args.redis, "", "bare")),
            }
            clients = {k: tc.InferenceServerClient(a) for k, a in addrs.items()}
            lat: dict[str, list[float]] = {k: [] for k in [*clients, "feast"]}
            for j, ids in [(0, draws["1"][0])] * 20 + list(enumerate(draws["1"])):
                inp = tc.InferInput("customer_id", [1], "INT64")
                inp.set_data_from_numpy(np.asarray(ids, dtype=np.int64))
                for k, client in clients.items():
                    t = time.perf_counter()
                    client.infer("forest", [inp])
                    lat[k].append(time.perf_counter() - t)
                lat["feast"].append(feast.lookup("1", j))
            for client in clients.values():
                client.close()
        result.update({k: pct(v[20:]) for k, v in lat.items()})
    finally:
        if feast is not None:
            feast.close()
        store.delete_view(view)  # type: ignore[attr-defined]
        store.close()
    for k in ("tablescore", "ideal", "bare", "feast"):
        print(f"{k:>10}: p50 {result[k]['p50_ms']:.3f} ms, p99 {result[k]['p99_ms']:.3f} ms")
    out = args.out or HERE / "results" / f"features-floor-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
