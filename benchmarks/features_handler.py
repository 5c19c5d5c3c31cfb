"""CPU cost of a one-id entity request inside the server, without the network (#22).

``python -m benchmarks.features_handler [--baseline CHECKOUT] [--rounds 2] [--redis sqlite]``

Loads 5,000 entities x 50 doubles into Redis (``--redis``, a database of its own; the view
is deleted after; ``--redis sqlite``: the embedded store, in a temporary file), serves the
200-tree forest of ``benchmarks.features`` bound to the view (``scorer.server.serve`` with
``features=``), and calls the servicer's ModelInfer handler
with the serialized request tritonclient sends for one id (an INT64 ``[1]`` tensor):
request bytes in, response bytes out, lookup, score, metrics and statistics included. Per
checkout, in a process of its own, alternating with ``--baseline`` for ``--rounds``:

- ``hot``: the thread's CPU time per call (median of 6,000 calls, caches warm);
- ``cold``: the wall time of a call right after two passes over 32 MiB (the caches
  evicted: a request on a core that ran something else meanwhile; the Redis round trip's
  wait included).

Results: benchmarks/results/features-handler-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r'''
import json, os, sys, tempfile, time, uuid
from pathlib import Path
import numpy as np
sys.path.insert(0, os.environ["TS_ROOT"])
from benchmarks.features import entity_data, forest_repository
from protos import inference_pb2 as pb
from scorer.features import open_store
from scorer.features.loader import load
from scorer.server import serve, wire
from scorer.server.servicer import InferenceServicer
wire.warm()
try:
    from scorer.features import resp
    resp.warm()
except ImportError:  # (a checkout without the compiled reader)
    pass
url = sys.argv[1]
rng = np.random.default_rng(0)
tmp = Path(tempfile.mkdtemp(prefix="ts-fhandler-"))
if url == "sqlite":  # the embedded store, in a file of this run's own
    url = f"sqlite:///{tmp}/features.db"
df, data = entity_data(rng, 5000, 50, tmp)
view = f"bench_{uuid.uuid4().hex[:8]}"
store = open_store(url, timeout=5.0)
load(store, data, view=view, entity="customer_id", timestamp="event_timestamp")
repo = forest_repository(df, view, tmp / "repo")


class Context:
    def abort(self, code, details):
        raise RuntimeError(code, details)

    def peer(self):
        return "bench"

    def invocation_metadata(self):
        return ()


try:
    with serve(str(repo), port=0, features=url) as server:
        import gc
        servicer = next(o for o in gc.get_objects() if isinstance(o, InferenceServicer))
        handler = servicer.handlers()["ModelInfer"]
        reqs = []
        for i in range(2000):
            r = pb.ModelInferRequest(model_name="forest")
            r.inputs.add(name="customer_id", datatype="INT64", shape=[1])
            r.raw_input_contents.append(np.array([i], dtype=np.int64).tobytes())
            reqs.append(r.SerializeToString())
        ctx = Context()
        out = pb.ModelInferResponse.FromString(handler(reqs[0], ctx))
        assert len(out.outputs) == 3
        for d in reqs:
            handler(d, ctx)
        hot = []
        for _ in range(3):
            for d in reqs:
                t = time.thread_time_ns()
                handler(d, ctx)
                hot.append(time.thread_time_ns() - t)
        junk = np.ones(4 << 20)
        cold = []
        for d in reqs[:600]:
            junk += 1.0
            junk += 1.0
            t = time.perf_counter_ns()
            handler(d, ctx)
            cold.append(time.perf_counter_ns() - t)
        print("RESULT " + json.dumps({"hot_us": float(np.median(hot)) / 1e3,
                                      "cold_us": float(np.median(cold)) / 1e3}))
finally:
    store.delete_view(view)
    store.close()
'''


def _measure(root: Path, url: str) -> dict[str, float]:
    env = {**os.environ, "TS_ROOT": str(root), "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", CHILD, url], env=env, cwd=root,
                         capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"the measurement in {root} failed:\n{out.stderr[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/7",
                    help="the store: a Redis URL (a database of its own), or 'sqlite' for "
                         "the embedded store in a temporary file")
    ap.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    roots = {"tablescore": HERE.parent}
    if args.baseline is not None:
        roots["baseline"] = args.baseline.resolve()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():  # alternating: the same moments of the machine
            runs[name].append(_measure(root, args.redis))
            print(name, runs[name][-1], file=sys.stderr)
    result = {"date": dt.date.today().isoformat(), "rounds": runs,
              "baseline": str(args.baseline) if args.baseline else None}
    out = args.out or HERE / "results" / f"features-handler-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
