"""Per-step cost of a model's plan: nanoseconds per row of each bound kernel, in thread CPU time.

``python -m benchmarks.steps [FAMILY ...]`` fits the benchmark families (see
:mod:`benchmarks.models`), exports them, and times in one thread: the input encoding and every
step's kernel on its own, on one chunk of a large batch (as the scorer runs them), and the whole
``predict_proba`` (or ``predict``) on ``--rows`` rows. Thread CPU time (``time.thread_time``)
instead of wall time, minimum over repeats: other processes on a shared machine then barely
move the figures, which is what a kernel change needs to be judged by. Not part of
``make bench`` (no engine comparison here).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .models import FAMILIES, fit, make_data


def _cpu_ns_per_row(fn: Callable[[], object], rows: int, repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        fn()
        best = min(best, time.thread_time_ns() - t0)
    return best / rows


def profile(family: str, *, rows: int, repeats: int, workdir: Path) -> list[tuple[str, float]]:
    """``[(what, ns per row), ...]`` for one family: encode, each step, the whole call."""
    import numba

    import exporters
    import scorer
    from scorer import ops

    data = make_data(FAMILIES[family].task, n_train=20_000, n_score=rows, seed=0)
    est, _ = fit(FAMILIES[family], data)
    path = workdir / family
    exporters.export(est, path, sample=data.X_train[:200], overwrite=True)
    model = scorer.load(path)
    # the kernels a loaded model ends up with (its own dtypes' batch kernels included), not
    # the variants it scores with while those compile in the background
    ops.wait_background()
    Xb = data.X_score
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        # the parts on one chunk, as a large batch runs them (its workspace stays in cache)
        n = min(rows, model._chunk_rows)
        Xc = Xb[:n]
        ws, _ = model._encoder.encode(Xc)
        out = [(f"encode (input copy), {n}-row chunk",
                _cpu_ns_per_row(lambda: model._encoder.encode(Xc), n, repeats))]
        for b in model._plan:
            out.append((f"step {b.name}", _cpu_ns_per_row(lambda b=b: b.kernel(ws, *b.args),
                                                          n, repeats)))
        call = model.predict_proba if hasattr(model, "predict_proba") else model.predict
        out.append(("whole call", _cpu_ns_per_row(lambda: call(Xb), rows, repeats)))
    finally:
        numba.set_num_threads(threads)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__)
    p.add_argument("families", nargs="*", default=["logreg", "xgboost", "lightgbm"],
                   help=f"families (default: logreg xgboost lightgbm; any of "
                        f"{', '.join(FAMILIES)})")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tsbench-steps-") as tmp:
        for fam in args.families:
            rows = profile(fam, rows=args.rows, repeats=args.repeats, workdir=Path(tmp))
            total = rows[-1][1]
            print(f"{fam} ({args.rows:,} rows, 1 thread, thread CPU time; whole call "
                  f"{1e9 / total / 1e3:,.0f}k rows/s)")
            for what, ns in rows:
                print(f"  {what:40s} {ns:8.1f} ns/row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
