"""Single-row round trip: tablescore's ModelInfer vs a bare grpcio echo server.

Not a test (pytest does not collect it). Run::

    .venv/bin/python -m tests.server.bench_roundtrip [--n 3000]

Both servers are sync ``grpc.server`` with a thread pool on 127.0.0.1, in this process; the
client runs in another process (so it does not compete for the servers' GIL) and sends the
same serialized single-row ModelInferRequest (iris, one FP64 [1, 4] tensor, raw contents) as
bytes over one channel, one request at a time. The difference is what tablescore adds:
parsing, resolving the version, decoding, scoring, encoding, statistics and metrics.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _percentiles(call, payload: bytes, n: int) -> tuple[float, float]:
    for _ in range(300):
        call(payload)
    lat = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        call(payload)
        lat[i] = time.perf_counter() - t0
    return float(np.median(lat) * 1e6), float(np.percentile(lat, 99) * 1e6)


def _client_raw(port: int, payload: bytes, n: int) -> tuple[float, float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return _percentiles(ch.unary_unary(METHOD), payload, n)


def _client_triton(address: str, row: np.ndarray, n: int) -> tuple[float, float]:
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(address)
    inp = tc.InferInput("input", list(row.shape), "FP64")
    inp.set_data_from_numpy(row)
    try:
        return _percentiles(lambda _: client.infer("iris", [inp]), b"", n)
    finally:
        client.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3000)
    args = p.parse_args()

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import exporters
    from protos import inference_pb2 as pb
    from scorer.server import serve

    X, y = load_iris(return_X_y=True)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    repo = tempfile.mkdtemp()
    exporters.export(est, f"{repo}/iris/1", sample=X, name="iris")
    req = pb.ModelInferRequest(model_name="iris")
    req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    req.raw_input_contents.append(np.ascontiguousarray(X[:1]).tobytes())
    payload = req.SerializeToString()

    echo = grpc.server(ThreadPoolExecutor(4), handlers=[grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {"ModelInfer": grpc.unary_unary_rpc_method_handler(lambda data, ctx: data)})])
    echo_port = echo.add_insecure_port("127.0.0.1:0")
    echo.start()
    ctx = multiprocessing.get_context("spawn")
    with serve(repo, port=0, threads=4, poll_interval=0) as server, \
            ctx.Pool(1) as pool:
        rows = [
            ("bare grpcio echo", *pool.apply(_client_raw, (echo_port, payload, args.n))),
            ("tablescore ModelInfer", *pool.apply(_client_raw, (server.port, payload, args.n))),
            ("tablescore via tritonclient",
             *pool.apply(_client_triton, (server.address, np.ascontiguousarray(X[:1]), args.n))),
        ]
        stats = server.repository.resolve("iris").stats.as_dict()
    echo.stop(0)
    print(f"{'single-row round trip (127.0.0.1)':36s} {'p50 us':>8s} {'p99 us':>8s}")
    for label, p50, p99 in rows:
        print(f"{label:36s} {p50:8.1f} {p99:8.1f}")
    n = stats["success_count"]
    print(f"server-side mean per request: decode {stats['input_ns'] / n / 1e3:.1f} us, "
          f"score {stats['infer_ns'] / n / 1e3:.1f} us, "
          f"encode {stats['output_ns'] / n / 1e3:.1f} us")


if __name__ == "__main__":
    main()
