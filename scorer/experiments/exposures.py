"""The exposure log: one record per experiment request, written to a sink without ever
blocking a request.

``record`` appends a tuple to a bounded buffer (a full buffer drops the record and counts
it); a writer thread takes the buffer in batches and hands them to the sink, every
``flush_s`` seconds or ``max_rows`` records, and flushes on close (the server closes it on
SIGTERM, waiting ``close_timeout`` seconds at most). The sink is picked by the target's URL
scheme (:data:`SINKS`); a target without a scheme is a directory:

- ``DIR``: Parquet files ``DIR/<experiment>/exposures-<UTC time>-<pid>-<n>.parquet`` (written
  aside and renamed, so a reader never sees half a file). Columns: ``time``
  (timestamp[us, UTC]), ``experiment``, ``unit``, ``arm``, ``holdout`` (bool), ``model``,
  ``version``, ``rows`` and ``out.<name>`` for each output's first row.
- ``postgresql://...``: the table ``tablescore_exposures`` (:mod:`.postgres`), written with
  ``COPY``; while the database is away the batch is kept and retried with backoff, the
  buffer stays bounded and what overflows it is dropped and counted.

A shadow version (the experiment's ``shadow``) is scored by the writer thread, off the request
path, and logged with arm ``shadow``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("tablescore.experiments")

#: one record as sinks get it: (time [s since the epoch], experiment, unit, arm, holdout,
#: model, version, rows, {output: first row's value})
Row = tuple[float, str, str, str, bool, str, str, int, dict[str, Any]]


class SinkUnavailable(Exception):
    """The sink cannot take a batch now (its database is away): keep it and retry later."""


class Sink(Protocol):
    """Where the writer thread puts batches of exposure records."""

    #: how logs name it (no password)
    name: str

    def write(self, rows: list[Row]) -> int:
        """Write ``rows``; return how many of them could not be written (dropped, counted).
        Raise :class:`SinkUnavailable` to have the whole batch retried later; any other
        exception drops it (counted)."""

    def close(self) -> None: ...


def _parquet(target: str, **options: Any) -> Sink:
    return ParquetSink(target, **options)


def _postgres(target: str, **options: Any) -> Sink:
    from .postgres import PostgresSink

    return PostgresSink(target, **options)


#: URL scheme -> sink constructor; a target without ``scheme://`` is a Parquet directory
SINKS: dict[str, Callable[..., Sink]] = {
    "postgresql": _postgres,
    "postgres": _postgres,
}


def time_us(t: float) -> int:
    """An exposure's time (seconds since the epoch) in whole microseconds, rounded: what
    every sink stores, so a Parquet log and a PostgreSQL table give the same report."""
    return round(t * 1e6)


def scheme_of(target: str | os.PathLike[str]) -> str:
    """The URL scheme of an exposure log target ("" for a directory)."""
    text = os.fspath(target)
    return text.split("://", 1)[0] if "://" in text else ""


def open_sink(target: str | os.PathLike[str], **options: Any) -> Sink:
    """The sink of ``target``: a directory (Parquet) or a URL whose scheme :data:`SINKS`
    knows; ValueError for another scheme."""
    scheme = scheme_of(target)
    if not scheme:
        return _parquet(os.fspath(target), **options)
    make = SINKS.get(scheme)
    if make is None:
        raise ValueError(f"unknown exposure log '{scheme}://...': give a directory (Parquet) "
                         "or postgresql://USER@HOST:PORT/DB")
    return make(os.fspath(target), **options)


class ExposureLog:
    """A recorder writing exposures of routed requests.

    Parameters
    ----------
    target : path-like, str or Sink
        A directory (Parquet files, one sub-directory per experiment), a
        ``postgresql://...`` URL, or a sink.
    router : ExperimentRouter
        The router whose assignments are logged (it knows each model's experiment).
    buffer : int
        Records held in memory at most (besides the batch being written); more are dropped
        and counted.
    flush_s : float
        Seconds between batches.
    max_rows : int
        Records per batch at most.
    close_timeout : float
        Seconds :meth:`close` waits for the last batch; what is still unwritten then is
        counted as dropped.
    backoff_max_s : float
        Longest wait between attempts while the sink is unavailable (from 0.1 s, doubling).
    """

    def __init__(self, target: str | os.PathLike[str] | Sink, router: Any, *,
                 buffer: int = 100_000, flush_s: float = 5.0, max_rows: int = 100_000,
                 close_timeout: float = 10.0, backoff_max_s: float = 5.0) -> None:
        self.sink: Sink = (target if hasattr(target, "write") else open_sink(target))  # type: ignore[arg-type]
        self.router = router
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.capacity = buffer
        self.close_timeout = close_timeout
        self.backoff_max_s = backoff_max_s
        # a deque: append and popleft are atomic and cheaper than queue.Queue's locking;
        # the bound is checked before appending (a race can pass it by a record per thread)
        self._buffer: deque[tuple] = deque()
        self._lock = threading.Lock()  # for the counters only (drops are the rare path)
        self.dropped = 0
        self.written = 0
        #: records the writer took from the buffer and has not written or dropped yet
        self._held = 0
        #: of those, how many close() counted as dropped when it gave up waiting (the
        #: writer's late outcome for them corrects the counts: nothing counted twice)
        self._abandoned = 0
        #: True while the sink is reachable (False after a failed attempt, until one works)
        self.up = True
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
        if len(self._buffer) >= self.capacity:
            self._drop(1)  # never block a request for the log
            return
        # the writer takes each output's first row: a single-row request's arrays are kept
        # as they are, a larger one's cut to their first row (bounded memory per record)
        outs = arrays if request.rows == 1 else {k: a[:1] for k, a in arrays.items()}
        self._buffer.append((time.time(), exp, self.router.unit_of(exp, request), resp,
                             target.name, target.version, request.rows, outs,
                             request.inputs if exp.shadow else None))

    def _drop(self, n: int) -> None:
        with self._lock:
            k = min(n, self._abandoned)  # (already counted by close)
            self._abandoned -= k
            self.dropped += n - k

    # --- writer -------------------------------------------------------------------------------
    def _take(self, pending: list[Row]) -> None:
        """Move buffered records into ``pending`` (up to ``max_rows``), as sink rows."""
        buf = self._buffer
        while buf and len(pending) < self.max_rows:
            t, exp, unit, resp, model, version, rows, outs, inputs = buf.popleft()
            first = {k: a[0] for k, a in outs.items() if len(a)}
            row = (t, exp.name, unit, resp["arm"], "holdout" in resp, model, version, rows,
                   first)
            pending.append(row)
            if inputs is not None:
                shadow = self._shadow(row, exp.shadow, inputs)
                if shadow is not None:
                    pending.append(shadow)

    def _run(self) -> None:
        pending: list[Row] = []
        next_flush = time.monotonic() + self.flush_s
        delay = 0.0  # the backoff while the sink is unavailable
        retry_at = 0.0
        while True:
            stopping = self._stop.is_set()
            self._take(pending)
            self._held = len(pending)
            now = time.monotonic()
            if pending and (stopping or (now >= retry_at and (
                    len(pending) >= self.max_rows or now >= next_flush))):
                if self._deliver(pending):
                    pending = []
                    self._held = 0
                    delay = 0.0
                    next_flush = now + self.flush_s
                elif stopping:  # one last try failed: what is left is lost, counted
                    self._drop(len(pending) + len(self._buffer))
                    self._buffer.clear()
                    self._held = 0
                    return
                else:
                    delay = min(max(0.1, 2 * delay), self.backoff_max_s)
                    retry_at = time.monotonic() + delay
                continue  # (the buffer may hold more: take it before sleeping)
            if stopping and not pending and not self._buffer:
                return
            if now >= next_flush:
                next_flush = now + self.flush_s
            self._stop.wait(0.05)

    def _deliver(self, rows: list[Row]) -> bool:
        """Hand ``rows`` to the sink: True when written or dropped for good, False when the
        sink is unavailable (keep them and retry)."""
        try:
            lost = self.sink.write(rows)
        except SinkUnavailable as exc:
            if self.up:
                log.warning("exposure log unavailable; retrying with backoff", extra={
                    "event": "exposures_unavailable", "sink": self.sink.name,
                    "error": str(exc)})
            self.up = False
            return False
        except Exception:  # a full disk or a refused batch must not kill the writer
            self._drop(len(rows))
            log.exception("writing exposures failed", extra={"event": "exposures_failed",
                                                             "sink": self.sink.name})
            return True
        if not self.up:
            log.info("exposure log available again", extra={
                "event": "exposures_available", "sink": self.sink.name})
        self.up = True
        with self._lock:
            k = min(len(rows), self._abandoned)  # written after all: not lost
            self._abandoned -= k
            self.dropped -= k
            self.written += len(rows) - lost
            self.dropped += lost
        return True

    def _shadow(self, row: Row, version: str, inputs: Any) -> Row | None:
        try:
            lv = self.router.repository.resolve(row[5], version)
            arrays = lv.model.score_arrays(inputs)
        except Exception as exc:  # the shadow's failure is logged, never answered
            log.warning("shadow scoring failed", extra={
                "event": "shadow_failed", "model": row[5], "version": version,
                "error": str(exc)})
            return None
        first = {k: a[0] for k, a in arrays.items() if len(a)}
        return (row[0], row[1], row[2], "shadow", row[4], row[5], lv.version, row[7], first)

    def close(self) -> None:
        """Write what is buffered and stop (the server calls this on shutdown), waiting
        ``close_timeout`` seconds at most: a sink that hangs cannot hold the shutdown."""
        self._stop.set()
        self._thread.join(timeout=self.close_timeout)
        if self._thread.is_alive():
            with self._lock:
                left = len(self._buffer)
                self._buffer.clear()
                # the batch the writer holds (being written, or waiting for the sink) is
                # lost too unless its write ends after all
                held = self._held - self._abandoned
                self._abandoned += held
                self.dropped += left + held
            log.warning("exposure log not flushed in time; records lost", extra={
                "event": "exposures_close_timeout", "sink": self.sink.name,
                "buffered": left, "in_flight": held})
        try:
            self.sink.close()
        except Exception:
            log.exception("closing the exposure log failed")

    def collector(self) -> Any:
        return _Series(self)


# --- Parquet ----------------------------------------------------------------------------------
class ParquetSink:
    """Parquet files under ``directory``, one sub-directory per experiment."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = str(self.directory)
        self.files = 0
        self._seq = 0

    def write(self, rows: list[Row]) -> int:
        by_exp: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            by_exp[r[1]].append(r)
        lost = 0
        for exp, rs in by_exp.items():
            try:
                self._write_file(exp, rs)
            except Exception:  # a full disk: this experiment's file is lost, the others not
                lost += len(rs)
                log.exception("writing exposures failed", extra={
                    "event": "exposures_failed", "experiment": exp})
        return lost

    def _write_file(self, experiment: str, rows: list[Row]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {
            "time": pa.array([time_us(r[0]) for r in rows], pa.timestamp("us", tz="UTC")),
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
        self.files += 1

    def close(self) -> None:
        pass


class _Series:
    def __init__(self, log_: ExposureLog) -> None:
        self.log = log_

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield CounterMetricFamily("tablescore_exposures_dropped",
                                  "Exposure records dropped (buffer full, a write failed, or "
                                  "the sink was away at shutdown)",
                                  value=float(self.log.dropped))
        yield CounterMetricFamily("tablescore_exposures_written",
                                  "Exposure records written to the exposure log",
                                  value=float(self.log.written))
        yield GaugeMetricFamily("tablescore_exposures_sink_up",
                                "1 while the exposure log's sink takes writes, 0 after a "
                                "failed attempt until one succeeds",
                                value=1.0 if self.log.up else 0.0)
