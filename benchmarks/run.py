"""The shared benchmark runner.

    python -m benchmarks.run [--quick] [--families logreg forest ...] [--engines ...]
                             [--out benchmarks/results]

For each family: fit the model on synthetic data, prepare every engine (a refusal is recorded
as skipped with its reason, never fatal), then measure

- faithfulness: max |engine - native| on the largest batch;
- single-row latency p50/p99 (``perf_counter_ns`` around each call, after warm-up);
- batch throughput (rows/s) for each batch size x thread setting;
- engine extras (tablescore bundle size and warm-process load time, ONNX size...).

Engines are interleaved within every repeat (rotating the order) so that noise from the shared
machine lands on all of them alike; every figure is the median of its repeats, and the
tablescore-vs-other ratios come from the same run.

Output: ``<out>/<YYYY-MM-DD>[-quick].json`` (machine info + every raw figure), a Markdown
table and PNG charts beside it, all written atomically. :func:`smoke` runs one tiny
configuration of every adapter and returns the results dict (for the test suite).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import SCHEMA
from .engines import ENGINES, PLANNED, Engine, EngineSkip, short_reason
from .models import DEFAULT_FAMILIES, FAMILIES, Family, fit, make_data
from .report import atomic_write_text, write_report
from .serving import QUICK_SERVING, ServingConfig, run_grpc

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]

Log = Callable[[str], None]


def all_cores() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Config:
    """Sizes and repeat counts of one run. :data:`FULL`, :data:`QUICK` and :data:`SMOKE`."""

    n_train: int = 20_000
    n_score: int = 100_000
    n_features: int = 30
    #: Tree count override for ensembles (None: each family's own size).
    n_estimators: int | None = None
    latency_calls: int = 2_000
    latency_repeats: int = 5
    #: A latency repeat of a slow engine stops short of ``latency_calls`` so that it lasts
    #: about this long (the call count comes from the warm-up; at least 100 calls, recorded
    #: as ``calls``). None: always ``latency_calls``.
    latency_max_seconds: float | None = None
    #: Threads for the single-row phase (one request per worker, the serving norm).
    latency_threads: int = 1
    warmup_calls: int = 200
    batch_sizes: tuple[int, ...] = (1_000, 100_000)
    batch_repeats: int = 5
    #: Empty: (1, all cores).
    thread_settings: tuple[int, ...] = ()
    #: A timed batch repeat calls the engine enough times to last at least this long, so
    #: that small batches are not timed at the clock's resolution.
    min_batch_seconds: float = 0.05
    #: Pause before each timed multi-thread batch repeat: the worker threads of the engine
    #: timed just before (OpenBLAS, OpenMP, ONNX Runtime) spin for up to ~0.1 s after their last
    #: call, and on 2 cores they would take the next engine's second core.
    settle_seconds: float = 0.3
    load_repeats: int = 5
    #: Fresh interpreters in which to time tablescore's start-up (0: skip; ~1-3 s each).
    fresh_process_repeats: int = 3
    #: Families not started once the run has taken this long are skipped (None: no limit).
    max_minutes: float | None = None
    #: Rows of training data handed to exporters / converters as the sample.
    sample_rows: int = 512
    seed: int = 0

    def threads(self) -> tuple[int, ...]:
        """The thread settings to run, defaulting to one thread and all cores."""
        return self.thread_settings or tuple(sorted({1, all_cores()}))


# The full run must end within 15 minutes on 2 cores: no family starts after 10.5 min (a family
# takes up to ~2.5 min), then the gRPC and cold-start phase (~2-3 min). A slow engine's latency
# repeat lasts ~1.5 s (at 10-15 ms a call: 100-150 calls, enough for its p50).
FULL = Config(max_minutes=10.5, latency_max_seconds=1.5)
QUICK = Config(n_train=2_000, n_score=1_000, n_estimators=20, latency_calls=200,
               latency_repeats=3, warmup_calls=20, batch_sizes=(1_000,), batch_repeats=5,
               min_batch_seconds=0.02, load_repeats=3, fresh_process_repeats=1)
SMOKE = Config(n_train=300, n_score=200, n_estimators=5, latency_calls=20, latency_repeats=1,
               warmup_calls=3, batch_sizes=(200,), batch_repeats=1, thread_settings=(1,),
               min_batch_seconds=0.0, settle_seconds=0.0, load_repeats=1,
               fresh_process_repeats=0, sample_rows=64)


# --- machine info ----------------------------------------------------------------------------
_DISTS = ("numpy", "numba", "llvmlite", "scikit-learn", "xgboost", "lightgbm", "onnxruntime",
          "onnx", "skl2onnx", "onnxmltools", "tablescore", "threadpoolctl", "pandas", "pyarrow",
          "matplotlib")
_ENV = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR", "NUMBA_OPT")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True, timeout=5, check=True).stdout.strip() != ""
        return {"commit": head, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, Python, library versions and the thread-relevant environment."""
    versions = {}
    for dist in _DISTS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_usable": all_cores(),
        "memory_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "versions": versions,
        # Recorded, never changed: it selects OpenBLAS kernels on some hosts.
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "env": {k: os.environ[k] for k in _ENV if k in os.environ},
        "git": _git(),
        "loadavg_start": _loadavg(),
    }
    with contextlib.suppress(Exception):
        import numba

        info["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                   "num_threads", "architecture")}
            for p in threadpool_info()]
    return info


# --- timing primitives -----------------------------------------------------------------------
@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Collect once, then keep the collector out of the timed region."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _time_calls(fn: Callable[[np.ndarray], Any], rows: Sequence[np.ndarray],
                n: int) -> np.ndarray:
    """Nanoseconds of each of ``n`` calls ``fn(row)``, cycling through ``rows``."""
    out = np.empty(n, dtype=np.int64)
    k = len(rows)
    clock = time.perf_counter_ns
    with _no_gc():
        for i in range(n):
            row = rows[i % k]
            t0 = clock()
            fn(row)
            out[i] = clock() - t0
    return out


def _time_batch(fn: Callable[[np.ndarray], Any], X: np.ndarray, calls: int) -> float:
    """Seconds for ``calls`` back-to-back ``fn(X)``."""
    with _no_gc():
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn(X)
        return (time.perf_counter_ns() - t0) / 1e9


def _warm_batch(fn: Callable[[np.ndarray], Any], X: np.ndarray, min_seconds: float) -> float:
    """Warm ``fn`` up under the current thread setting (a new ORT session, Numba's pool) and
    return the seconds of one call, used to size the timed repeats.

    A call already longer than ``min_seconds`` is its own warm-up (first-call effects are
    small next to it); shorter ones are timed again after the warm-up.
    """
    t = _time_batch(fn, X, 1)
    return t if t >= max(min_seconds, 0.5) else _time_batch(fn, X, 1)


def _rotated(names: list[str], rep: int) -> list[str]:
    """Engine order for repeat ``rep``: rotate so no engine always runs first (or last)."""
    if not names:
        return []
    k = rep % len(names)
    return names[k:] + names[:k]


class _Threads:
    """Process-wide thread setting: OpenMP/BLAS via threadpoolctl, plus each adapter's knob.

    Restores the original OpenMP/BLAS limits on :meth:`restore` (the smoke run shares the test
    process).
    """

    def __init__(self) -> None:
        try:
            from threadpoolctl import threadpool_limits

            self._limits: Callable[..., Any] | None = threadpool_limits
            self._original = threadpool_limits(limits=None)  # snapshot, changes nothing
        except ImportError:
            self._limits = None
            self._original = None

    def apply(self, n: int, engines: dict[str, Engine]) -> None:
        if self._limits is not None:
            self._limits(limits=n)  # re-scans, so libraries loaded since are covered too
        for eng in engines.values():
            eng.set_threads(n)

    def restore(self) -> None:
        if self._original is not None:
            self._original.restore_original_limits()


# --- one family ------------------------------------------------------------------------------
def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


class _FamilyRun:
    """State of one family: live engines, per-engine result dicts, failure bookkeeping."""

    def __init__(self, family: Family, cfg: Config, threads: _Threads, log: Log) -> None:
        self.family = family
        self.cfg = cfg
        self.threads = threads
        self.log = log
        self.live: dict[str, Engine] = {}
        self.res: dict[str, dict[str, Any]] = {}

    def attempt(self, name: str, phase: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; an exception retires the engine for this family as ``error``."""
        try:
            return fn()
        except Exception as exc:
            self.res[name].update(status="error", reason=f"{phase}: {short_reason(exc)}",
                                  traceback=traceback.format_exc(limit=8))
            eng = self.live.pop(name, None)
            if eng is not None:
                with contextlib.suppress(Exception):
                    eng.close()
            self.log(f"  {name}: ERROR in {phase}: {short_reason(exc)}")
            return None

    def prepare(self, names: Sequence[str], model: Any, X_sample: np.ndarray,
                workdir: Path) -> None:
        for name in names:
            cls = ENGINES[name]
            st: dict[str, Any] = {"status": "ok", "reason": None}
            self.res[name] = st
            why = cls.unavailable()
            if why:
                st.update(status="skipped", reason=why)
                self.log(f"  {name}: skipped ({why})")
                continue
            d = workdir / name
            d.mkdir(parents=True, exist_ok=True)
            eng = cls(d)
            t0 = time.perf_counter()
            try:
                eng.prepare(model, X_sample)
            except EngineSkip as exc:
                st.update(status="skipped", reason=str(exc))
                self.log(f"  {name}: skipped ({exc})")
                with contextlib.suppress(Exception):
                    eng.close()
                continue
            except Exception as exc:
                st.update(status="error", reason=f"prepare: {short_reason(exc)}",
                          traceback=traceback.format_exc(limit=8))
                self.log(f"  {name}: ERROR in prepare: {short_reason(exc)}")
                with contextlib.suppress(Exception):
                    eng.close()
                continue
            st["prepare_s"] = time.perf_counter() - t0
            self.live[name] = eng
            self.log(f"  {name}: prepared in {st['prepare_s']:.2f}s")

    def faithfulness(self, X: np.ndarray) -> None:
        """Max |engine - native| on ``X`` (also the engines' first full-size warm-up)."""
        self.threads.apply(self.cfg.latency_threads, self.live)
        outs: dict[str, np.ndarray] = {}
        dtypes: dict[str, str] = {}
        for name, eng in list(self.live.items()):
            Xe = X[:eng.max_batch_rows] if eng.max_batch_rows else X  # slow engines: capped
            out = self.attempt(name, "faithfulness", lambda eng=eng, Xe=Xe: eng.predict_batch(Xe))
            if out is not None:
                dtypes[name] = np.asarray(out).dtype.name  # float32 originals: not 1e-12 exact
                outs[name] = np.asarray(out, dtype=np.float64).reshape(-1)
        ref_full = outs.get("native")
        for name, out in outs.items():
            if ref_full is None:
                self.res[name]["faithfulness"] = {
                    "rows": len(out), "max_abs_diff": None,
                    "note": "native engine unavailable: nothing to compare with"}
                continue
            ref = ref_full[:len(out)]
            if out.shape != ref.shape:
                self.res[name]["faithfulness"] = {
                    "rows": len(X), "max_abs_diff": None,
                    "note": f"output shape {out.shape} != native {ref_full.shape}"}
                continue
            diff = np.abs(out - ref)
            f: dict[str, Any] = {"rows": len(out), "max_abs_diff": float(np.nanmax(diff)),
                                 "mean_abs_diff": float(np.nanmean(diff)),
                                 "nan_mismatch": int(np.sum(np.isnan(out) != np.isnan(ref)))}
            if self.family.task == "classification":
                f["label_mismatches"] = int(np.sum((out > 0.5) != (ref > 0.5)))
            f["output_dtype"] = dtypes[name]
            self.res[name]["faithfulness"] = f

    def latency(self, X: np.ndarray) -> None:
        cfg = self.cfg
        rows = [X[i:i + 1] for i in range(min(256, len(X)))]  # (1, n_features) views
        self.threads.apply(cfg.latency_threads, self.live)
        def n_calls(eng: Engine, n: int) -> int:
            return min(n, eng.max_latency_calls) if eng.max_latency_calls else n

        timed: dict[str, int] = {}
        for name, eng in list(self.live.items()):
            warm = self.attempt(name, "latency warm-up", lambda eng=eng: _time_calls(
                eng.predict_one, rows, n_calls(eng, cfg.warmup_calls)))
            if warm is None:
                continue
            timed[name] = n_calls(eng, cfg.latency_calls)
            if cfg.latency_max_seconds and len(warm):
                per_call = float(np.median(warm)) / 1e9
                fit = math.ceil(cfg.latency_max_seconds / max(per_call, 1e-9))
                timed[name] = min(timed[name], max(100, fit))
        runs: dict[str, list[np.ndarray]] = {n: [] for n in self.live}
        for rep in range(cfg.latency_repeats):
            for name in _rotated(list(self.live), rep):
                eng = self.live[name]
                ns = self.attempt(name, "latency", lambda eng=eng, k=timed[name]: _time_calls(
                    eng.predict_one, rows, k))
                if ns is not None:
                    runs[name].append(ns)
        for name in self.live:
            p50 = [float(np.percentile(r, 50)) / 1e3 for r in runs[name]]
            p99 = [float(np.percentile(r, 99)) / 1e3 for r in runs[name]]
            mean = [float(r.mean()) / 1e3 for r in runs[name]]
            self.res[name]["latency"] = {
                "threads": cfg.latency_threads, "calls": timed.get(name, 0),
                "repeats": len(p50), "p50_us": _median(p50), "p99_us": _median(p99),
                "mean_us": _median(mean), "p50_us_runs": p50, "p99_us_runs": p99}

    def throughput(self, X: np.ndarray) -> None:
        cfg = self.cfg
        for threads in cfg.threads():
            self.threads.apply(threads, self.live)
            for size in cfg.batch_sizes:
                # engines without a thread knob run at 1 thread only; slow ones on capped rows
                here = {n: e for n, e in self.live.items() if e.threaded or threads == 1}
                Xbs = {n: np.ascontiguousarray(X[:min(size, e.max_batch_rows or size)])
                       for n, e in here.items()}
                calls: dict[str, int] = {}
                for name, eng in list(here.items()):
                    t = self.attempt(name, f"throughput warm-up ({size} rows, {threads}t)",
                                     lambda eng=eng, Xb=Xbs[name]: _warm_batch(
                                         eng.predict_batch, Xb, cfg.min_batch_seconds))
                    if t is not None:
                        calls[name] = max(1, min(10_000, math.ceil(
                            cfg.min_batch_seconds / max(t, 1e-9))))
                here = {n: e for n, e in here.items() if n in self.live}
                runs: dict[str, list[float]] = {n: [] for n in here}
                for rep in range(cfg.batch_repeats):
                    for name in _rotated(list(here), rep):
                        eng = here[name]
                        if name not in self.live:
                            continue
                        Xb = Xbs[name]
                        if threads > 1 and cfg.settle_seconds:
                            time.sleep(cfg.settle_seconds)
                        secs = self.attempt(name, f"throughput ({size} rows, {threads}t)",
                                            lambda eng=eng, k=calls[name], Xb=Xb: _time_batch(
                                                eng.predict_batch, Xb, k))
                        if secs is not None:
                            runs[name].append(calls[name] * len(Xb) / secs)
                for name in here:
                    if name not in self.live:
                        continue
                    row = {"rows": size, "threads": threads, "calls_per_repeat": calls[name],
                           "repeats": len(runs[name]), "rows_per_s": _median(runs[name]),
                           "rows_per_s_runs": runs[name]}
                    if len(Xbs[name]) != size:
                        row["rows_scored"] = len(Xbs[name])
                    self.res[name].setdefault("throughput", []).append(row)

    def extras(self) -> None:
        for name, eng in list(self.live.items()):
            extra = self.attempt(name, "extra measures",
                                 lambda eng=eng: eng.extra_measures(
                                     self.cfg.load_repeats,
                                     fresh_process=self.cfg.fresh_process_repeats))
            if extra:
                self.res[name]["extra"] = extra

    def close(self) -> None:
        for eng in self.live.values():
            with contextlib.suppress(Exception):
                eng.close()
        self.live.clear()


def _find(rows: list[dict[str, Any]], size: int, threads: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["rows"] == size and r["threads"] == threads), None)


def compute_ratios(engines: dict[str, dict[str, Any]], base: str = "tablescore",
                   only: Sequence[str] | None = None) -> dict[str, Any]:
    """``base``'s speedup over every other measured engine (> 1: ``base`` is faster), or over
    the engines in ``only``.

    Latency: other / base. Throughput: base / other, per batch size x threads (where both
    were measured).
    """
    ts = engines.get(base)
    if not ts or ts.get("status") != "ok":
        return {}
    out: dict[str, Any] = {}
    for name, other in engines.items():
        if name == base or other.get("status") != "ok" or (only is not None
                                                           and name not in only):
            continue
        r: dict[str, Any] = {}
        la, lb = ts.get("latency"), other.get("latency")
        if la and lb and la["p50_us"] > 0 and la["p99_us"] > 0:
            r["latency_p50"] = lb["p50_us"] / la["p50_us"]
            r["latency_p99"] = lb["p99_us"] / la["p99_us"]
        tp = []
        for row in ts.get("throughput", []):
            o = _find(other.get("throughput", []), row["rows"], row["threads"])
            if o and o["rows_per_s"] > 0:
                tp.append({"rows": row["rows"], "threads": row["threads"],
                           "speedup": row["rows_per_s"] / o["rows_per_s"]})
        r["throughput"] = tp
        out[name] = r
    return out


def run_family(family: Family, cfg: Config, engine_names: Sequence[str], threads: _Threads,
               log: Log) -> dict[str, Any]:
    """Fit one family and measure every engine on it. Never raises for an engine's failure."""
    res: dict[str, Any] = {"task": family.task, "description": family.description,
                           "status": "ok", "reason": None, "loadavg_start": _loadavg()}
    t_family = time.perf_counter()
    try:
        data = make_data(family.task, n_train=cfg.n_train, n_score=cfg.n_score,
                         n_features=cfg.n_features, seed=cfg.seed)
        model, fit_s = fit(family, data, n_estimators=cfg.n_estimators, seed=cfg.seed)
    except ModuleNotFoundError as exc:
        res.update(status="skipped", reason=f"training library missing: {short_reason(exc)}")
        log(f"  skipped: {res['reason']}")
        return res
    except Exception as exc:
        res.update(status="error", reason=f"fit: {short_reason(exc)}",
                   traceback=traceback.format_exc(limit=8))
        log(f"  ERROR: {res['reason']}")
        return res
    res["model"] = {"estimator": " ".join(repr(model).split()), "fit_s": fit_s,
                    "n_train": cfg.n_train, "n_score": cfg.n_score,
                    "n_features": cfg.n_features,
                    "n_estimators_override": cfg.n_estimators if family.ensemble else None}
    log(f"  fitted in {fit_s:.1f}s")
    fr = _FamilyRun(family, cfg, threads, log)
    X = data.X_score
    with tempfile.TemporaryDirectory(prefix=f"tsbench-{family.name}-") as tmp:
        try:
            fr.prepare(engine_names, model, data.X_train[:cfg.sample_rows], Path(tmp))
            largest = np.ascontiguousarray(X[:max(cfg.batch_sizes)])
            log("  faithfulness")
            fr.faithfulness(largest)
            log("  single-row latency")
            fr.latency(X)
            log("  batch throughput")
            fr.throughput(X)
            fr.extras()
        finally:
            fr.close()
    res["engines"] = fr.res
    res["ratios"] = compute_ratios(fr.res)
    # the PMML reader's targets: vs pypmml (>= 100x) and vs the direct bundle (~1x)
    res["ratios_pmml"] = compute_ratios(fr.res, base="tablescore-pmml",
                                        only=("pypmml", "tablescore"))
    res["loadavg_end"] = _loadavg()
    res["duration_s"] = time.perf_counter() - t_family
    return res


# --- whole run -------------------------------------------------------------------------------
def _preimport(engine_names: Sequence[str], families: Sequence[str]) -> None:
    """Import the engines' and families' libraries before threadpoolctl snapshots the pools."""
    mods = {"sklearn"}
    if "xgboost" in families:
        mods.add("xgboost")
    if "lightgbm" in families:
        mods.add("lightgbm")
    mods.update(m for n in engine_names for m in ENGINES[n].requires)
    for m in sorted(mods):
        with contextlib.suppress(ImportError):
            importlib.import_module(m)


def run(cfg: Config, *, families: Sequence[str] = DEFAULT_FAMILIES,
        engines: Sequence[str] | None = None, out: Path | None = None, mode: str | None = None,
        charts: bool = True, log: Log | None = None,
        serving: ServingConfig | None = None) -> dict[str, Any]:
    """Run the benchmark and return the results dict; write files under ``out`` if given.

    ``mode`` names the run in the results and in the file names: ``<date>[-<mode>].json``,
    only ``full`` without a suffix; a non-default family or engine list is appended as well.
    Default: ``full`` / ``quick`` for :data:`FULL` / :data:`QUICK`, else ``custom``, so an
    ad-hoc or partial run never overwrites the day's full results.

    The JSON is rewritten (atomically) after every family, so a run cut short keeps what it
    measured. ``serving``: run the gRPC transport + cold-start phase after the families
    (:mod:`benchmarks.serving`; None: not run).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    engine_names = list(engines or ENGINES)
    unknown = [f for f in families if f not in FAMILIES] + [
        e for e in engine_names if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown families/engines: {unknown}")
    if mode is None:
        sizes = replace(cfg, max_minutes=None)  # the budget does not change the figures
        mode = ("full" if sizes == replace(FULL, max_minutes=None) else
                "quick" if sizes == replace(QUICK, max_minutes=None) else "custom")
    started = dt.datetime.now().astimezone()
    # A subset run gets its own file name, so it never overwrites the day's complete run.
    parts = [started.date().isoformat()] + ([] if mode == "full" else [mode])
    if tuple(families) != DEFAULT_FAMILIES:
        parts += families
    if engines is not None and list(engines) != list(ENGINES):
        parts += ["with", *engine_names]
    stem = "-".join(parts)
    _preimport(engine_names, families)
    results: dict[str, Any] = {
        "schema": SCHEMA, "mode": mode, "started": started.isoformat(timespec="seconds"),
        "config": {**asdict(cfg), "thread_settings": list(cfg.threads())},
        "engines": engine_names, "planned_engines": PLANNED,
        "machine": machine_info(), "families": {}}
    json_path = out / f"{stem}.json" if out is not None else None
    threads = _Threads()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # sklearn/xgboost/lightgbm repeat "X does not have valid feature names" etc.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for name in families:
                elapsed = time.perf_counter() - t0
                if cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes:
                    results["families"][name] = {
                        "task": FAMILIES[name].task, "status": "skipped",
                        "description": FAMILIES[name].description,
                        "reason": f"time budget of {cfg.max_minutes:g} min used up"}
                    log(f"[{elapsed:6.1f}s] family {name}: skipped (time budget)")
                    continue
                log(f"[{elapsed:6.1f}s] family {name}")
                results["families"][name] = run_family(FAMILIES[name], cfg, engine_names,
                                                       threads, log)
                if json_path is not None:
                    _write_json(json_path, results)
            if serving is not None:
                log(f"[{time.perf_counter() - t0:6.1f}s] gRPC transport + cold start")
                try:
                    results.update(run_grpc(cfg, serving, log,
                                            deadline=t0 + 60 * 14.5 if mode == "full" else None))
                except Exception as exc:
                    results["grpc"] = {"status": "error", "reason": short_reason(exc),
                                       "traceback": traceback.format_exc(limit=8)}
                    log(f"  gRPC phase: ERROR {short_reason(exc)}")
    finally:
        threads.restore()
    results["duration_s"] = time.perf_counter() - t0
    results["machine"]["loadavg_end"] = _loadavg()
    log(f"[{results['duration_s']:6.1f}s] done")
    if out is not None and json_path is not None:
        _write_json(json_path, results)
        paths = write_report(results, out, stem, charts=charts)
        log("wrote " + ", ".join(str(p) for p in [json_path, *paths]))
    return results


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _write_json(path: Path, results: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(results, indent=2, default=_json_default,
                                       allow_nan=True) + "\n")


def smoke(*, families: Sequence[str] = ("logreg",), out: Path | None = None) -> dict[str, Any]:
    """One tiny configuration of every adapter (a few seconds); returns the results dict.

    Writes nothing unless ``out`` is given. Pass ``families=("logreg", "forest")`` to also
    exercise the skip path while tree ensembles are not exportable.
    """
    return run(SMOKE, families=families, out=out, mode="smoke", log=lambda _msg: None)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (200 calls, 1k rows, 20 trees): a smoke run of ~1-2 min")
    p.add_argument("--families", nargs="+", choices=list(FAMILIES), default=None,
                   metavar="FAMILY", help=f"families to run (default: "
                   f"{' '.join(DEFAULT_FAMILIES)}; also: "
                   f"{' '.join(f for f in FAMILIES if f not in DEFAULT_FAMILIES)})")
    p.add_argument("--engines", nargs="+", choices=list(ENGINES), default=None,
                   metavar="ENGINE", help=f"engines to run (default: all: {' '.join(ENGINES)})")
    p.add_argument("--out", type=Path, default=RESULTS_DIR,
                   help="output directory (default: benchmarks/results)")
    p.add_argument("--threads", type=int, nargs="+", default=None, metavar="N",
                   help="thread settings for the batch phase (default: 1 and all cores)")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="skip families not started after M minutes (default: 10.5 for the "
                   "full run, none for --quick; 0 disables)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    p.add_argument("--no-grpc", action="store_true",
                   help="skip the gRPC transport and cold-start phase")
    p.add_argument("--grpc-only", action="store_true",
                   help="only the gRPC transport and cold-start phase (no families)")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.max_minutes is not None:
        cfg = replace(cfg, max_minutes=args.max_minutes or None)
    if args.threads:
        cfg = replace(cfg, thread_settings=tuple(sorted(set(args.threads))))
    serving = None if args.no_grpc else (QUICK_SERVING if args.quick else ServingConfig())
    families = [] if args.grpc_only else (args.families or DEFAULT_FAMILIES)
    results = run(cfg, families=families, engines=args.engines, out=args.out,
                  charts=not args.no_charts, serving=serving,
                  mode="grpc" if args.grpc_only else None)
    from .report import render_markdown

    print(render_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
