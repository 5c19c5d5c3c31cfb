"""Fleet drift windows: every replica flushes its finished windows' counts to the registry's
database (PostgreSQL for a fleet, SQLite on one machine), so one report covers all replicas.

Counts add exactly, so the fleet's window is the sum of the replicas' windows (not a mean of
their PSIs). Writes are idempotent: a window is keyed by model, version, window start and the
replica (its id and the start time of its process), and inserted with ``ON CONFLICT DO
NOTHING``, so a flush retried after a lost acknowledgement never counts twice. Tables
(docs/monitoring.md, "Fleet windows"):

- ``ts_drift_windows``: one row per replica and window (rows counted, fingerprint, layout);
- ``ts_drift_counts``: one row per replica, window, feature and non-empty bin.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .drift import FeatureDrift, compare_flat
from .profile import Profile
from .recorder import WindowCounts

log = logging.getLogger("tablescore.drift")

#: windows waiting to be written at most (a database down for long: older ones are dropped)
MAX_PENDING = 4096


def _schema() -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS ts_drift_windows (model TEXT NOT NULL, version TEXT NOT "
        "NULL, window_start DOUBLE PRECISION NOT NULL, replica TEXT NOT NULL, incarnation "
        "DOUBLE PRECISION NOT NULL, fingerprint TEXT NOT NULL, seconds DOUBLE PRECISION NOT "
        "NULL, rows BIGINT NOT NULL, layout TEXT NOT NULL, flushed_at DOUBLE PRECISION NOT "
        "NULL, PRIMARY KEY (model, version, window_start, replica, incarnation))",
        "CREATE TABLE IF NOT EXISTS ts_drift_counts (model TEXT NOT NULL, version TEXT NOT "
        "NULL, window_start DOUBLE PRECISION NOT NULL, replica TEXT NOT NULL, incarnation "
        "DOUBLE PRECISION NOT NULL, role TEXT NOT NULL, feature TEXT NOT NULL, bin INTEGER "
        "NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (model, version, window_start, "
        "replica, incarnation, role, feature, bin))",
    ]


def layout_key(profile: Profile) -> str:
    """A short text naming the bins of ``profile`` (replicas only add like layouts)."""
    return json.dumps([[f.name, f.kind, f.bins] for f in profile.features],
                      separators=(",", ":"))


@dataclass
class FleetWindow:
    """One window summed over the replicas that flushed it.

    ``counts`` is int64 (total bins,) in the layout of the version's profile.
    """

    model: str
    version: str
    start: float
    seconds: float
    rows: int
    replicas: int
    counts: np.ndarray

    def drift(self, profile: Profile) -> list[FeatureDrift]:
        """PSI and JS per feature of the summed counts against ``profile``'s counts."""
        return compare_flat(profile, profile.flat_counts(), self.counts)


class FleetWindows:
    """A :class:`~.recorder.WindowSink` writing to the registry's store, and the reader of
    the merged windows.

    Parameters
    ----------
    store : SQLStore
        The registry (``scorer.registry.open_store``): its ``transaction()`` and dialect.
    replica_id : str, optional
        This replica (default ``host:pid``); with the process's start time it keys the rows.
    retry_s : float
        Seconds between attempts while the database cannot be reached.
    writer : bool
        Start the background writer (False: :meth:`write` only, for readers and tests).
    """

    def __init__(self, store: Any, *, replica_id: str | None = None, retry_s: float = 1.0,
                 writer: bool = True) -> None:
        self.store = store
        self.replica = replica_id or f"{socket.gethostname()}:{os.getpid()}"
        self.incarnation = time.time()
        self.retry_s = retry_s
        self.failures = 0
        self.written = 0
        self.dropped = 0
        with store.transaction(write=True) as cur:
            for stmt in _schema():
                cur.execute(stmt)
        self._pending: deque[WindowCounts] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._layouts: dict[tuple[str, str, str], tuple[Profile, str]] = {}
        if writer:
            self._thread = threading.Thread(target=self._run, name="tablescore-drift-fleet",
                                            daemon=True)
            self._thread.start()

    # --- writing --------------------------------------------------------------------------
    def register(self, window_layout: Profile, model: str, version: str,
                 fingerprint: str) -> None:
        """Tell the sink the layout of a version's counts (the recorder does, once)."""
        self._layouts[(model, version, fingerprint)] = (window_layout,
                                                        layout_key(window_layout))

    def flush(self, window: WindowCounts) -> None:
        """Queue one finished window for writing (never blocks on the database)."""
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(window)
            self._cond.notify()

    def write(self, window: WindowCounts) -> bool:
        """Write one window now, in one transaction; False when this replica had already
        written it (a retry), True when it was new. Raises when the database fails."""
        profile, key = self._layouts[(window.model, window.version, window.fingerprint)]
        q = self.store._q
        rows = []
        off = profile.offsets()
        n_in = len(profile.inputs)
        nz = np.flatnonzero(window.counts)
        f_of = np.searchsorted(off, nz, side="right") - 1
        for i, f in zip(nz.tolist(), f_of.tolist(), strict=True):
            fp = profile.features[f]
            rows.append((window.model, window.version, window.start, self.replica,
                         self.incarnation, "input" if f < n_in else "output", fp.name,
                         i - int(off[f]), int(window.counts[i])))
        with self.store.transaction(write=True) as cur:
            cur.execute(q(
                "INSERT INTO ts_drift_windows (model, version, window_start, replica, "
                "incarnation, fingerprint, seconds, rows, layout, flushed_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING rows"),
                (window.model, window.version, window.start, self.replica, self.incarnation,
                 window.fingerprint, window.seconds, window.rows, key, time.time()))
            if cur.fetchone() is None:
                return False  # written before: the counts are in too (same transaction)
            cur.executemany(q(
                "INSERT INTO ts_drift_counts (model, version, window_start, replica, "
                "incarnation, role, feature, bin, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING"), rows)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                window = self._pending[0]
            try:
                self.write(window)
            except KeyError:  # no layout registered for it: nothing to write it as
                log.warning("drift window of model %s version %s has no registered layout; "
                            "not written", window.model, window.version)
            except Exception as exc:  # the database is away: keep the window, try again
                self.failures += 1
                log.warning("drift window flush to the registry failed (%s); retrying",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            extra={"event": "drift_flush_failed"})
                with self._cond:
                    if self._closing:
                        return
                    self._cond.wait(self.retry_s)
                continue
            with self._cond:
                if self._pending and self._pending[0] is window:
                    self._pending.popleft()
                self.written += 1
                self._cond.notify_all()

    def wait_written(self, timeout: float = 10.0) -> bool:
        """Block until every queued window is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop the writer."""
        self.wait_written(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._pending:
            log.warning("%d drift windows not written to the registry at shutdown",
                        len(self._pending), extra={"event": "drift_flush_lost"})

    # --- reading --------------------------------------------------------------------------
    def windows(self, model: str, version: str) -> list[tuple[float, int, int]]:
        """``(window start, replicas, rows)`` of every flushed window, oldest first."""
        with self.store.transaction() as cur:
            cur.execute(self.store._q(
                "SELECT window_start, COUNT(*), SUM(rows) FROM ts_drift_windows WHERE model = ? "
                "AND version = ? GROUP BY window_start ORDER BY window_start"), (model, version))
            return [(float(s), int(n), int(r)) for s, n, r in cur.fetchall()]

    def merged(self, profile: Profile, model: str, version: str,
               start: float) -> FleetWindow | None:
        """The window starting at ``start`` summed over every replica that flushed it
        (None when none did). Rows of another layout than ``profile``'s are left out."""
        q = self.store._q
        key = layout_key(profile)
        with self.store.transaction() as cur:
            cur.execute(q(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0), MAX(seconds) FROM ts_drift_windows "
                "WHERE model = ? AND version = ? AND window_start = ? AND layout = ?"),
                (model, version, start, key))
            n, rows, seconds = cur.fetchone()
            if not n:
                return None
            cur.execute(q(
                "SELECT c.role, c.feature, c.bin, SUM(c.count) FROM ts_drift_counts c JOIN "
                "ts_drift_windows w ON w.model = c.model AND w.version = c.version AND "
                "w.window_start = c.window_start AND w.replica = c.replica AND "
                "w.incarnation = c.incarnation WHERE c.model = ? AND c.version = ? AND "
                "c.window_start = ? AND w.layout = ? GROUP BY c.role, c.feature, c.bin"),
                (model, version, start, key))
            found = cur.fetchall()
        off = profile.offsets()
        n_in = len(profile.inputs)
        where = {("input" if f < n_in else "output", fp.name): int(off[f])
                 for f, fp in enumerate(profile.features)}
        counts = np.zeros(int(off[-1]), dtype=np.int64)
        for role, feature, b, c in found:
            counts[where[(role, feature)] + int(b)] += int(c)
        return FleetWindow(model, version, float(start), float(seconds), int(rows), int(n),
                           counts)

    def latest(self, profile: Profile, model: str, version: str, *,
               before: float) -> FleetWindow | None:
        """The merged window of the latest start whose window ended at or before ``before``
        (seconds since the epoch: leave the replicas time to flush)."""
        with self.store.transaction() as cur:
            cur.execute(self.store._q(
                "SELECT MAX(window_start) FROM ts_drift_windows WHERE model = ? AND version "
                "= ? AND window_start + seconds <= ?"), (model, version, before))
            (start,) = cur.fetchone()
        return None if start is None else self.merged(profile, model, version, float(start))

    def collector(self, recorder: Any, *, settle_s: float = 10.0,
                  cache_s: float = 5.0) -> FleetCollector:
        """A Prometheus collector of the fleet's latest merged window per version the
        ``recorder`` monitors (see :class:`FleetCollector`)."""
        return FleetCollector(self, recorder, settle_s=settle_s, cache_s=cache_s)


class FleetCollector:
    """Exports the fleet's merged windows: ``tablescore_fleet_feature_psi{model,version,
    feature}``, ``tablescore_fleet_prediction_psi{model,version,output}``,
    ``tablescore_fleet_drift_window_rows{model,version}`` and
    ``tablescore_fleet_drift_window_replicas{model,version}``, for the latest window that
    ended ``settle_s`` seconds ago or earlier (replicas flush a few tenths of a second after
    a window ends); read from the database at most every ``cache_s`` seconds."""

    def __init__(self, fleet: FleetWindows, recorder: Any, *, settle_s: float,
                 cache_s: float) -> None:
        self.fleet, self.recorder = fleet, recorder
        self.settle_s, self.cache_s = settle_s, cache_s
        self._cache: tuple[float, list[tuple[FleetWindow, list[FeatureDrift]]]] = (-1e18, [])
        self._lock = threading.Lock()

    def _windows(self) -> list[tuple[FleetWindow, list[FeatureDrift]]]:
        with self._lock:
            at, cached = self._cache
            now = time.monotonic()
            if now - at < self.cache_s:
                return cached
            out = []
            before = self.recorder.clock() - self.settle_s
            for model, version, profile in self.recorder.profiles():
                try:
                    w = self.fleet.latest(profile, model, version, before=before)
                except Exception:  # the database is away: no fleet series this scrape
                    log.warning("reading the fleet's drift windows failed", exc_info=True)
                    return cached
                if w is not None:
                    out.append((w, w.drift(profile)))
            self._cache = (now, out)
            return out

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        fpsi = GaugeMetricFamily(
            "tablescore_fleet_feature_psi", "PSI of an input over the summed counts of every "
            "replica's latest flushed window", labels=["model", "version", "feature"])
        opsi = GaugeMetricFamily(
            "tablescore_fleet_prediction_psi", "PSI of an output over the summed counts of "
            "every replica's latest flushed window", labels=["model", "version", "output"])
        rows = GaugeMetricFamily(
            "tablescore_fleet_drift_window_rows", "Rows of the fleet's latest flushed drift "
            "window (all replicas)", labels=["model", "version"])
        reps = GaugeMetricFamily(
            "tablescore_fleet_drift_window_replicas", "Replicas that flushed the fleet's "
            "latest drift window", labels=["model", "version"])
        start = GaugeMetricFamily(
            "tablescore_fleet_drift_window_end_timestamp_seconds", "End of the fleet's latest "
            "flushed drift window", labels=["model", "version"])
        for w, drift in self._windows():
            rows.add_metric([w.model, w.version], w.rows)
            reps.add_metric([w.model, w.version], w.replicas)
            start.add_metric([w.model, w.version], w.start + w.seconds)
            for d in drift:
                if d.psi == d.psi:
                    (fpsi if d.role == "input" else opsi).add_metric(
                        [w.model, w.version, d.name], d.psi)
        yield from (fpsi, opsi, rows, reps, start)
