"""The drift counting kernel of this checkout vs another's, alternating in one process:
``python -m benchmarks.drift_kernel_ab --baseline CHECKOUT [--rounds 15]``.

``count_batch`` on 100k rows of 30 numeric inputs plus 3 numeric columns of outputs, 11
edges each (the layout a 10-bin profile gives); both kernels must count the same. The
baseline's ``scorer/monitoring/kernels.py`` is loaded as a module of its own (it needs only
NumPy and Numba). Results: ``benchmarks/results/drift-kernel-ab-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy as np

from .drift import ROOT


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    from scorer.monitoring import kernels as this

    spec = importlib.util.spec_from_file_location(
        "_baseline_kernels", args.baseline / "scorer" / "monitoring" / "kernels.py")
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    rng = np.random.default_rng(0)
    n, k, extra = args.rows, 30, 3
    X = rng.normal(size=(n, k))
    E = np.stack([np.quantile(rng.normal(size=2000), np.linspace(0, 1, 11))
                  for _ in range(k + extra)])
    ne = np.full(k + extra, 11, np.int64)
    cols = np.arange(k, dtype=np.int64)
    coff = np.arange(k, dtype=np.int64) * 13
    V = rng.normal(size=extra * n)
    vstart = np.arange(extra + 1, dtype=np.int64) * n
    vrow = np.arange(k, k + extra, dtype=np.int64)
    vkind = np.zeros(extra, np.int64)
    keys, kn, kc = np.zeros((1, 1)), np.zeros(1, np.int64), np.zeros((1, 1), np.int64)
    voff = k * 13 + np.arange(extra, dtype=np.int64) * 13
    call = (X, cols, E, ne, coff, V, vstart, vrow, vkind, keys, kn, kc,
            np.zeros(extra, np.int64), voff)
    total = (k + extra) * 13
    kernels = {"this": this, "baseline": base}
    counts = {}
    for name, mod in kernels.items():  # compile, and the same counts
        counts[name] = np.zeros(total, np.int64)
        mod.count_batch(*call, counts[name])
    assert np.array_equal(counts["this"], counts["baseline"])
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for r in range(args.rounds):
        for name in (list(kernels) if r % 2 else list(kernels)[::-1]):
            c = np.zeros(total, np.int64)
            t = time.perf_counter()
            kernels[name].count_batch(*call, c)
            times[name].append(time.perf_counter() - t)
    values = n * (k + extra)
    out = {"date": dt.date.today().isoformat(), "baseline": str(args.baseline),
           "rows": n, "values_per_call": values, "rounds": args.rounds,
           "ns_per_value": {name: statistics.median(v) / values * 1e9
                            for name, v in times.items()}}
    out["speedup"] = out["ns_per_value"]["baseline"] / out["ns_per_value"]["this"]
    print(f"count_batch: this {out['ns_per_value']['this']:.2f} ns per value, baseline "
          f"{out['ns_per_value']['baseline']:.2f} ({out['speedup']:.2f}x)")
    path = args.out or ROOT / "benchmarks" / "results" / f"drift-kernel-ab-{out['date']}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
