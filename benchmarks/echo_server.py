"""A bare grpcio ``inference.GRPCInferenceService`` that answers every ``ModelInfer`` with one
fixed response: the floor any Python gRPC server (grpcio's sync server, protobuf parsing of the
request) can reach, for the gRPC transport phase of the benchmarks.

    python -m benchmarks.echo_server --port 8011 [--threads N]

It listens on 127.0.0.1 only, prints ``READY <port>`` once serving, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from protos import inference_pb2 as pb
from protos import inference_pb2_grpc as pb_grpc


class EchoServicer(pb_grpc.GRPCInferenceServiceServicer):
    """ModelInfer returns a prebuilt one-value FP64 response; health RPCs say yes."""

    def __init__(self) -> None:
        resp = pb.ModelInferResponse(model_name="echo", model_version="1")
        out = resp.outputs.add()
        out.name = "probability"
        out.datatype = "FP64"
        out.shape.extend([1, 1])
        resp.raw_output_contents.append(struct.pack("<d", 0.5))
        self._resp = resp

    def ModelInfer(self, request: Any, context: Any) -> Any:
        return self._resp

    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.echo_server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="request threads (default: one per core, as tablescore serve)")
    args = p.parse_args(argv)
    server = grpc.server(ThreadPoolExecutor(args.threads),
                         options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"READY {port}", flush=True)
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
