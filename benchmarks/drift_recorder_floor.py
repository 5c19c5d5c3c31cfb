"""What any recorder stage costs a one-row in-process call, beside the drift recorder's:
``python -m benchmarks.drift_recorder_floor [--rounds 15] [--calls 20000]``.

``Pipeline`` calls of one row on the logistic regression of ``benchmarks.drift`` (30 inputs),
in rotating order: no recorder; a recorder whose ``record`` does nothing; one that appends
``(target, row)`` to a queue (a reference: the row is read-only, as the gRPC server's are);
the same with the checks a real one needs (one row, read-only, a bounded queue: "lean"); a
minimal one (a dictionary lookup by the model's id and the row's bytes appended to a buffer:
the least a recorder that keeps rows by copy can do in Python); the
:class:`~scorer.monitoring.DriftRecorder` (its rows counted inside the round); and, with no
recorder, a score stage that is a compiled tap: the model's one-row path, whose workspace row
(inputs and outputs) a kernel holding the GIL appends to one buffer ("tap": no lookup of the
version, no window, nothing counted: what recording inside the engine's one-row copy could
least cost; "tap_clock": the same plus the clock read a window needs; "direct": the same
one-row path with no tap, a shortcut past the general path that "off" could take as well, so
the baseline of the taps' own cost). Medians of wall time per call; the ratio to no recorder
is the throughput the #24 goal (>= 0.95) is about. Also
what counting those rows would add, measured apart: the binning of one row's inputs and
outputs (``Binner.count_many`` on 20,000 rows, us per row). Results:
``benchmarks/results/drift-recorder-floor-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from .drift import ROOT, _export


class _Noop:
    def record(self, target: Any, request: Any, arrays: Any) -> None:
        pass


class _Append:
    """A reference to the row appended to a queue: what record can least do to keep it."""

    def __init__(self) -> None:
        self.q: deque = deque()

    def record(self, target: Any, request: Any, arrays: Any) -> None:
        self.q.append((target, request.inputs))


class _Lean:
    """:class:`_Append` with the checks a real one needs: one row, a read-only array (the
    gRPC server's: its bytes cannot change, so no copy), a bounded queue."""

    def __init__(self) -> None:
        self.q: deque = deque()
        self.limit = 1 << 16

    def record(self, target: Any, request: Any, arrays: Any) -> None:
        if request.rows == 1:
            x = request.inputs
            if type(x) is np.ndarray and not x.flags.writeable:
                q = self.q
                if len(q) < self.limit:
                    q.append((target, x))
                    return
        raise RuntimeError("not a one-row read-only request")


class _Minimal:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.monitors: dict[int, Any] = {}

    def record(self, target: Any, request: Any, arrays: Any) -> None:
        self.monitors.get(id(target.model))
        self.buf += request.inputs.tobytes()


def _tap_stages(model: Any, *, kind: str) -> Any:
    """A score stage scoring one-row requests by the model's one-row path and appending its
    workspace row to a buffer in compiled code (see the module docstring); the buffer is
    emptied when full. Private attributes of the model: a floor, not a recorder."""
    from numba import njit

    from scorer.ops import entry_point

    @njit(nogil=False)
    def put(buf, ws):  # pragma: no cover - numba
        cap = buf.shape[0] - 1
        k = np.int64(buf[cap, 0])
        if k >= cap:
            return -1
        for j in range(buf.shape[1]):
            buf[k, j] = ws[0, j]
        buf[cap, 0] = k + 1
        return k

    cap = 4096
    buf = np.zeros((cap + 1, model.width))
    ws = np.zeros((1, model.width))
    put(buf, ws)
    fn = entry_point(put, (buf, ws))
    keep, column, outputs = model._keep_sel, model._column, model._outputs
    run_single, now, until = model._run_single, time.time, time.time() + 1e9

    def direct(target: Any, request: Any) -> dict:
        ws = run_single(request.inputs)
        res = ws[:, keep]
        return {o.name: np.ascontiguousarray(column(res, o)) for o in outputs}

    def tap(target: Any, request: Any) -> dict:
        ws = run_single(request.inputs)
        if fn(buf, ws) < 0:
            buf[cap, 0] = 0.0
        res = ws[:, keep]
        return {o.name: np.ascontiguousarray(column(res, o)) for o in outputs}

    def tap_clock(target: Any, request: Any) -> dict:
        # (tap's body written out, not called: a call's frame would be measured as well)
        if now() >= until:
            raise RuntimeError("window over")
        ws = run_single(request.inputs)
        if fn(buf, ws) < 0:
            buf[cap, 0] = 0.0
        res = ws[:, keep]
        return {o.name: np.ascontiguousarray(column(res, o)) for o in outputs}

    return {"direct": direct, "tap": tap, "tap_clock": tap_clock}[kind]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    import scorer
    from scorer import ops
    from scorer.monitoring import DriftRecorder
    from scorer.pipeline import ModelResolver, Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        _export(30, 20_000, Path(tmp) / "m", classifier=True)
        model = scorer.load(Path(tmp) / "m")
    drift = DriftRecorder(300, queue_rows=1 << 26, queue_requests=1 << 26)
    minimal, append, lean = _Minimal(), _Append(), _Lean()
    recorders: dict[str, Any] = {"off": None, "noop": _Noop(), "append": append,
                                 "lean": lean, "minimal": minimal, "drift": drift}
    pipes = {k: Pipeline(ModelResolver({"m": model}), recorders=[r] if r else [])
             for k, r in recorders.items()}
    X = np.random.default_rng(1).normal(size=(1, 30))
    X.flags.writeable = False  # (as the gRPC server's rows: views of the request's bytes)
    for pipe in pipes.values():
        for _ in range(3000):
            pipe("m", X)
    ops.wait_background()  # (the one-row kernels, compiled in the background: in use now)
    for name in ("direct", "tap", "tap_clock"):
        pipes[name] = Pipeline(ModelResolver({"m": model}), _tap_stages(model, kind=name))
    for pipe in pipes.values():
        for _ in range(3000):
            pipe("m", X)
    names = list(pipes)
    runs: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            pipe = pipes[name]
            t0 = time.perf_counter()
            for _ in range(args.calls):
                pipe("m", X)
            if name == "drift":
                drift.drain()
            minimal.buf.clear()
            append.q.clear()
            lean.q.clear()
            runs[name].append(time.perf_counter() - t0)
    off = statistics.median(runs["off"])
    out: dict[str, Any] = {"date": dt.date.today().isoformat(), "rounds": args.rounds,
                           "calls": args.calls, "us_per_call": {}, "ratio": {}}
    for k in names:
        w = statistics.median(runs[k])
        out["us_per_call"][k] = round(w / args.calls * 1e6, 3)
        out["ratio"][k] = round(off / w, 3)
        print(f"{k:>9}: {w / args.calls * 1e6:.3f} us per call, throughput ratio {off / w:.3f}")
    # the taps against the same one-row shortcut without a tap (which "off" could take too)
    direct = statistics.median(runs["direct"])
    out["ratio_to_direct"] = {k: round(direct / statistics.median(runs[k]), 3)
                              for k in ("tap", "tap_clock")}
    print(f"taps against the direct one-row stage: {out['ratio_to_direct']}")
    # what counting the tapped rows would add: the binning of inputs and outputs alone
    monitor = next(m for m in drift._monitors.values() if m is not None)
    Xn = np.random.default_rng(2).normal(size=(20_000, 30))
    outs = model.score_arrays(Xn)
    counts = np.zeros_like(monitor.counts)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        monitor.binner.count_many([Xn], [outs], counts)
        times.append(time.perf_counter() - t0)
    out["binning_us_per_row"] = round(min(times) / len(Xn) * 1e6, 4)
    print(f"binning one row's inputs and outputs: {out['binning_us_per_row']:.4f} us")
    drift.close()
    path = args.out or ROOT / "benchmarks" / "results" / \
        f"drift-recorder-floor-{out['date']}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
