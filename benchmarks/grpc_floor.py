"""The gRPC round trip with no work at all: ``python -m benchmarks.grpc_floor [--calls 5000]``.

Two bare servers of the OIP v2 service answering ``ServerLive`` only, each in a process of
its own: grpcio's thread-pool server (as ``tablescore serve`` is built) and its asyncio
server (``grpc.aio``); one client with the generated stubs calls them in turn, so both see
the same moments of a shared machine. What any request through gRPC pays before its own
work (p50 / p99 in ms). Results: ``benchmarks/results/grpc-floor-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _serve(kind: str, port: int) -> None:
    import grpc

    from protos import inference_pb2 as pb
    from protos import inference_pb2_grpc as pbg

    if kind == "sync":
        class Live(pbg.GRPCInferenceServiceServicer):
            def ServerLive(self, request, context):
                return pb.ServerLiveResponse(live=True)

        server = grpc.server(futures.ThreadPoolExecutor(4))
        pbg.add_GRPCInferenceServiceServicer_to_server(Live(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    class AioLive(pbg.GRPCInferenceServiceServicer):
        async def ServerLive(self, request, context):
            return pb.ServerLiveResponse(live=True)

    async def main() -> None:
        server = grpc.aio.server()
        pbg.add_GRPCInferenceServiceServicer_to_server(AioLive(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]))
        return

    import grpc

    from protos import inference_pb2 as pb
    from protos import inference_pb2_grpc as pbg

    ports = {"sync": _free_port(), "aio": _free_port()}
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.grpc_floor", "--serve", k,
                               str(port)], cwd=ROOT) for k, port in ports.items()]
    try:
        stubs = {}
        for k, port in ports.items():
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=60)
            stubs[k] = pbg.GRPCInferenceServiceStub(channel)
        lat: dict[str, list[float]] = {k: [] for k in stubs}
        for _ in range(args.calls + 50):
            for k, stub in stubs.items():
                t = time.perf_counter()
                stub.ServerLive(pb.ServerLiveRequest())
                lat[k].append(time.perf_counter() - t)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    out = {"date": dt.date.today().isoformat(), "calls": args.calls}
    for k, v in lat.items():
        a = np.asarray(v[50:]) * 1e3
        out[k] = {"p50_ms": round(float(np.percentile(a, 50)), 3),
                  "p99_ms": round(float(np.percentile(a, 99)), 3)}
        print(k, out[k])
    path = args.out or ROOT / "benchmarks" / "results" / f"grpc-floor-{out['date']}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
