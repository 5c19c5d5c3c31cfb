"""CPU cost of one single-row ``ModelInfer`` inside the server, without the network.

``python -m benchmarks.handler [FAMILY ...]`` fits the benchmark families, serves them from a
temporary repository (``scorer.server.serve`` on a free port), and calls the servicer's
ModelInfer handler directly with the serialized request ``tritonclient`` sends for one row
(one FP64 ``[1, n_features]`` tensor, raw contents): request bytes in, response bytes out,
metrics and statistics included. It prints thread CPU time per call (median over repeats) of

- the whole handler;
- ``Model.score_arrays`` of the decoded row (the scoring and output assembly);
- ``Model.predict_proba`` of one row (the in-process API).

This is the server-side work a request adds to what grpcio itself costs (compare the bare echo
server in ``make bench``). A hot loop keeps caches warm, so a server under real traffic spends
more per call (2-4x here); the figure is for judging a change to the request path, in one
process or in interleaved processes, not for capacity planning. Not part of ``make bench``.

``--cold`` instead evicts the caches before every call (two passes over a 32 MiB array) and
prints the median wall time of the call alone: the other end of the range, a request on a
core that has run something else since the last one. On this machine a thread that slept 2 ms
between calls paid about what ``--cold`` shows (logistic regression predict_proba: 2.9 µs hot,
41 µs after a 2 ms sleep, 47 µs after an eviction), so the request path's footprint (code and
data touched) matters as much as its hot CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .models import FAMILIES, fit, make_data

_EVICT: list[np.ndarray] = []


def _cold_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Median wall microseconds of ``fn()`` called right after evicting the caches."""
    if not _EVICT:
        _EVICT.append(np.ones(4 << 20))  # 32 MiB: more than this machine's last-level cache
    junk = _EVICT[0]
    for _ in range(20):
        fn()
    times = []
    clock = time.perf_counter_ns
    for _ in range(max(1, calls // 10) * repeats):  # (each eviction costs ~10 ms)
        junk.sum()
        junk.sum()
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times) / 1e3


def _cpu_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    for _ in range(min(calls, 200)):  # warm-up: entry points, skeletons, caches
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        for _ in range(calls):
            fn()
        runs.append((time.thread_time_ns() - t0) / calls / 1e3)
    return statistics.median(runs)


class _Context:
    """Stands in for a grpc.ServicerContext: the handler only calls abort() on errors."""

    def abort(self, code: object, details: str) -> None:
        raise RuntimeError(f"{code}: {details}")


def measure(families: list[str], *, calls: int, repeats: int, workdir: Path,
            n_train: int = 20_000, cold: bool = False) -> dict[str, dict[str, float]]:
    """``{family: {what: thread CPU microseconds per call}}``; ``cold``: median wall
    microseconds of a call after evicting the caches."""
    import exporters
    from protos import inference_pb2 as pb
    from scorer.server import serve
    from scorer.server.servicer import InferenceServicer

    repo = workdir / "repo"
    rows: dict[str, np.ndarray] = {}
    for fam in families:
        data = make_data(FAMILIES[fam].task, n_train=n_train, n_score=64, seed=0)
        est, _ = fit(FAMILIES[fam], data)
        exporters.export(est, repo / fam / "1", sample=data.X_train[:200], overwrite=True)
        rows[fam] = data.X_score
    out: dict[str, dict[str, float]] = {}
    with serve(repo, port=0, poll_interval=0) as server:
        servicer = InferenceServicer(server.repository, server.config, server.metrics,
                                     server._state)
        handler = servicer.handlers()["ModelInfer"]
        ctx = _Context()
        for fam in families:
            X = rows[fam]
            payloads = []
            for k in range(len(X)):
                req = pb.ModelInferRequest(model_name=fam)
                t = req.inputs.add()
                t.name, t.datatype = "input", "FP64"
                t.shape.extend([1, X.shape[1]])
                req.raw_input_contents.append(X[k:k + 1].tobytes())
                payloads.append(req.SerializeToString())
            model = server.repository.resolve(fam, "").model
            out[fam] = _measure_one(lambda data: handler(data, ctx), model, payloads, X,
                                    calls, repeats, _cold_us if cold else _cpu_us)
    return out


def _measure_one(handle: Callable[[bytes], bytes], model: object, payloads: list[bytes],
                 X: np.ndarray, calls: int, repeats: int,
                 timer: Callable[[Callable[[], object], int, int], float]) -> dict[str, float]:
    i = iter(range(1 << 62))
    n = len(payloads)
    # the decoded form of a raw request: a read-only view of the request's bytes
    view = np.frombuffer(X[:1].tobytes(), dtype=np.float64).reshape(1, -1)
    res = {
        "ModelInfer handler (bytes in, bytes out)": timer(
            lambda: handle(payloads[next(i) % n]), calls, repeats),
        "score_arrays, one row": timer(lambda: model.score_arrays(view), calls, repeats),
    }
    if hasattr(model, "predict_proba"):
        row = np.ascontiguousarray(X[:1])
        res["predict_proba, one row"] = timer(lambda: model.predict_proba(row), calls,
                                              repeats)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.handler", description=__doc__)
    p.add_argument("families", nargs="*", default=["logreg", "forest"],
                   help=f"families (default: logreg forest; any of {', '.join(FAMILIES)})")
    p.add_argument("--calls", type=int, default=5_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cold", action="store_true",
                   help="evict the caches before each call; wall time per call")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tsbench-handler-") as tmp:
        res = measure(args.families, calls=args.calls, repeats=args.repeats,
                      workdir=Path(tmp), cold=args.cold)
    for fam, parts in res.items():
        what = (f"wall time after evicting the caches, median of "
                f"{max(1, args.calls // 10) * args.repeats:,} calls" if args.cold else
                f"thread CPU per call, median of {args.repeats} x {args.calls:,}")
        print(f"{fam} ({what})")
        for what, us in parts.items():
            print(f"  {what:44s} {us:7.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
