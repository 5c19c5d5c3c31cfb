"""The exposure log: one record per experiment request, written to Parquet files without ever
blocking a request.

``record`` puts a tuple on a bounded queue (a full queue drops the record and counts it); a
writer thread turns the queue into files ``DIR/<experiment>/exposures-<UTC time>-<pid>-<n>.parquet``
(written aside and renamed, so a reader never sees half a file), rolled every ``flush_s``
seconds or ``max_rows`` records, and flushed on close (the server closes it on SIGTERM).
Columns: ``time`` (timestamp[us, UTC]), ``experiment``, ``unit``, ``arm``, ``holdout`` (bool),
``model``, ``version``, ``rows`` and ``out.<name>`` for each output's first row. A shadow
version (the experiment's ``shadow``) is scored by the writer thread, off the request path,
and logged with arm ``shadow``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("tablescore.experiments")


class ExposureLog:
    """A recorder writing exposures of routed requests.

    Parameters
    ----------
    directory : path-like
        Where the Parquet files go (one sub-directory per experiment).
    router : ExperimentRouter
        The router whose assignments are logged (it knows each model's experiment).
    buffer : int
        Records held in memory at most; more are dropped and counted.
    flush_s : float
        Seconds between files.
    max_rows : int
        Records per file at most.
    """

    def __init__(self, directory: str | os.PathLike[str], router: Any, *,
                 buffer: int = 100_000, flush_s: float = 5.0, max_rows: int = 100_000) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.router = router
        self.flush_s = flush_s
        self.max_rows = max_rows
        self._queue: queue.Queue[tuple] = queue.Queue(maxsize=buffer)
        self.dropped = 0
        self.written = 0
        self.files = 0
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tablescore-exposures",
                                        daemon=True)
        self._thread.start()

    # --- request path -------------------------------------------------------------------------
    def record(self, target: Any, request: Any, arrays: dict[str, np.ndarray]) -> None:
        resp = request.response
        if not resp or "experiment" not in resp:
            return
        exp = self.router.experiments.get(target.name)
        if exp is None or exp.name != resp["experiment"]:
            return
        unit = self.router.unit_of(exp, request)
        first = {k: a[0] for k, a in arrays.items() if len(a)}
        item = (time.time(), exp.name, unit, resp["arm"], "holdout" in resp, target.name,
                target.version, request.rows, first,
                (exp.shadow, request.inputs) if exp.shadow else None)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1  # never block a request for the log

    # --- writer -------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[tuple] = []
        next_flush = time.monotonic() + self.flush_s
        while True:
            stopping = self._stop.is_set()
            timeout = max(0.0, next_flush - time.monotonic())
            try:
                item = self._queue.get(timeout=min(timeout, 0.2))
                pending.append(item)
                while len(pending) < self.max_rows:
                    pending.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if pending and (len(pending) >= self.max_rows or time.monotonic() >= next_flush
                            or stopping):
                self._write(pending)
                pending = []
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + self.flush_s
            if stopping and self._queue.empty() and not pending:
                return

    def _write(self, items: list[tuple]) -> None:
        rows: list[tuple] = []
        for it in items:
            rows.append(it[:9])
            if it[9] is not None:
                shadow = self._shadow(it)
                if shadow is not None:
                    rows.append(shadow)
        by_exp: dict[str, list[tuple]] = defaultdict(list)
        for r in rows:
            by_exp[r[1]].append(r)
        for exp, rs in by_exp.items():
            try:
                self._write_file(exp, rs)
            except Exception:  # a full disk must not kill the writer: count and go on
                self.dropped += len(rs)
                log.exception("writing exposures failed", extra={"event": "exposures_failed",
                                                                 "experiment": exp})

    def _shadow(self, it: tuple) -> tuple | None:
        version, inputs = it[9]
        try:
            lv = self.router.repository.resolve(it[5], version)
            arrays = lv.model.score_arrays(inputs)
        except Exception as exc:  # the shadow's failure is logged, never answered
            log.warning("shadow scoring failed", extra={
                "event": "shadow_failed", "model": it[5], "version": version, "error": str(exc)})
            return None
        first = {k: a[0] for k, a in arrays.items() if len(a)}
        return (it[0], it[1], it[2], "shadow", it[4], it[5], lv.version, it[7], first)

    def _write_file(self, experiment: str, rows: list[tuple]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {
            "time": pa.array([int(r[0] * 1e6) for r in rows], pa.timestamp("us", tz="UTC")),
            "experiment": pa.array([r[1] for r in rows], pa.string()),
            "unit": pa.array([r[2] for r in rows], pa.string()),
            "arm": pa.array([r[3] for r in rows], pa.string()),
            "holdout": pa.array([r[4] for r in rows], pa.bool_()),
            "model": pa.array([r[5] for r in rows], pa.string()),
            "version": pa.array([r[6] for r in rows], pa.string()),
            "rows": pa.array([r[7] for r in rows], pa.int64()),
        }
        names = sorted({k for r in rows for k in r[8]})
        for name in names:
            values = [r[8].get(name) for r in rows]
            if all(v is None or isinstance(v, int | float | np.number) for v in values):
                cols[f"out.{name}"] = pa.array(
                    [None if v is None else float(v) for v in values], pa.float64())
            else:
                cols[f"out.{name}"] = pa.array(
                    [None if v is None else (v.decode() if isinstance(v, bytes) else str(v))
                     for v in values], pa.string())
        table = pa.table(cols)
        d = self.directory / experiment
        d.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        final = d / f"exposures-{stamp}-{os.getpid()}-{self._seq:06d}.parquet"
        tmp = d / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        self.written += len(rows)
        self.files += 1

    def close(self) -> None:
        """Write what is queued and stop (the server calls this on shutdown)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def collector(self) -> Any:
        return _Series(self)


class _Series:
    def __init__(self, log_: ExposureLog) -> None:
        self.log = log_

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily("tablescore_exposures_dropped",
                                  "Exposure records dropped (buffer full, or a write failed)",
                                  value=float(self.log.dropped))
        yield CounterMetricFamily("tablescore_exposures_written",
                                  "Exposure records written to Parquet",
                                  value=float(self.log.written))
