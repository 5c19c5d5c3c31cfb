"""The serving side: a pipeline recorder counting every scored row into its reference bins,
per model version, in tumbling windows, and exporting PSI / JS per window on /metrics.

Counting happens in the compiled kernels of :mod:`.kernels` (one call for every numeric input
of an array request, one per output), under a per-version lock held only while counting.
Windows are aligned to the epoch (window ``k`` covers ``[k * w, (k + 1) * w)`` seconds of
wall-clock time), so windows of several replicas are the same windows and their counts add.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import BundleFormatError
from ..ir import Field
from . import kernels
from .drift import FeatureDrift, Thresholds, compare_flat
from .profile import CategoryMap, Profile, as_numbers

log = logging.getLogger("tablescore.drift")

#: default window length in seconds (``--drift-window``)
DEFAULT_WINDOW_S = 300.0
#: requests of at most this many rows are kept aside and counted together, PENDING_MAX at a
#: time: a kernel call costs microseconds of dispatch whatever its size, which would double
#: the cost of a one-row request (35 -> 78 us per call in the pipeline on 2 shared cores)
SMALL_ROWS = 16
#: rows per transposed block of a large numeric request
_BLOCK = 8192
PENDING_MAX = 256


class Binner:
    """Counts one model version's requests into a profile's bins.

    Parameters
    ----------
    profile : Profile
        The reference profile (its layout is used; its counts are not touched).
    fields : list of Field
        The model's input schema, in order (an array request's column ``j`` is ``fields[j]``).
    """

    def __init__(self, profile: Profile, fields: list[Field]) -> None:
        self.profile = profile
        self.size = int(profile.offsets()[-1])
        off = profile.offsets()
        col = {f.name: j for j, f in enumerate(fields)}
        cols, edges, edge_off, count_off = [], [], [0], []
        self._cat_inputs: list[tuple[str, int, int, int, CategoryMap]] = []
        self._num_columns: list[tuple[str, int, np.ndarray, int]] = []
        for i, fp in enumerate(profile.inputs):
            j = col.get(fp.name)
            if j is None:
                continue  # not a model input (a renamed field): nothing arrives for it
            if fp.kind == "numeric":
                cols.append(j)
                edges.append(fp.edges)
                edge_off.append(edge_off[-1] + len(fp.edges))
                count_off.append(int(off[i]))
                self._num_columns.append((fp.name, j, fp.edges, int(off[i])))
            else:
                self._cat_inputs.append((fp.name, j, int(off[i]), len(fp.categories or []),
                                         CategoryMap(fp.categories or [])))
        self._cols = np.array(cols, dtype=np.int64)
        self._edges = (np.concatenate(edges) if edges else np.zeros(0)).astype(np.float64)
        self._edge_off = np.array(edge_off, dtype=np.int64)
        self._count_off = np.array(count_off, dtype=np.int64)
        n_in = len(profile.inputs)
        self._outputs: list[tuple[str, np.ndarray | None, int, int, CategoryMap | None]] = []
        for i, fp in enumerate(profile.outputs):
            o = int(off[n_in + i])
            if fp.kind == "numeric":
                self._outputs.append((fp.name, fp.edges, o, 0, None))
            else:
                m = len(fp.categories or [])
                self._outputs.append((fp.name, None, o, m, CategoryMap(fp.categories or [])))

    def _count_numeric_matrix(self, X: np.ndarray, counts: np.ndarray) -> None:
        """Count the numeric input columns of ``X`` (rows, n_inputs): blocks of rows are
        transposed so that each column is counted from contiguous memory (count_numeric runs
        at a few ns per value there; count_matrix, reading rows, at ~90 ns per value on the
        2-core test machine, and per-column passes over the strided matrix stream it once
        per column)."""
        if X.shape[0] <= 64:
            kernels.count_matrix(X, self._cols, self._edges, self._edge_off, self._count_off,
                                 counts)
            return
        for a in range(0, X.shape[0], _BLOCK):
            block = np.ascontiguousarray(X[a:a + _BLOCK].T)
            for _, j, edges, o in self._num_columns:
                kernels.count_numeric(block[j], edges, o, counts)

    def count(self, inputs: Any, arrays: Mapping[str, np.ndarray], counts: np.ndarray) -> None:
        """Add one request into ``counts`` (int64, (size,)).

        Parameters
        ----------
        inputs : ndarray of shape (rows, n_inputs) or dict of str to ndarray of shape (rows,)
            ``Request.inputs``: a matrix in the model's input order, or columns by name.
        arrays : dict of str to ndarray of shape (rows,)
            The outputs the request returned (outputs it did not ask for are not counted).
        """
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "fiub":
            X = inputs if inputs.ndim == 2 else inputs.reshape(1, -1)
            if self._cols.size:
                self._count_numeric_matrix(X, counts)
            for _, j, o, m, cmap in self._cat_inputs:
                kernels.count_codes(cmap.codes(X[:, j]), m, o, counts)
        elif inputs is not None:
            if isinstance(inputs, np.ndarray):  # an object matrix: its columns
                X = inputs if inputs.ndim == 2 else inputs.reshape(1, -1)
                columns: Mapping[str, Any] = {n: X[:, j] for n, j, _, _ in self._num_columns}
                columns.update({n: X[:, j] for n, j, _, _, _ in self._cat_inputs})
            else:
                columns = inputs
            for name, _, edges, o in self._num_columns:
                values = columns.get(name)
                if values is not None:
                    kernels.count_numeric(as_numbers(values), edges, o, counts)
            for name, _, o, m, cmap in self._cat_inputs:
                values = columns.get(name)
                if values is not None:
                    kernels.count_codes(cmap.codes(values), m, o, counts)
        for name, edges, o, m, cmap in self._outputs:
            values = arrays.get(name)
            if values is None:
                continue
            if cmap is None:
                kernels.count_numeric(as_numbers(values), edges, o, counts)
            else:
                kernels.count_codes(cmap.codes(values), m, o, counts)


class WindowSink(Protocol):
    """Where finished windows go besides this process's gauges (a fleet's shared table)."""

    def flush(self, window: WindowCounts) -> None:
        """Store one finished window of one replica; may be called from a background
        thread; failures are logged, never raised to a request."""
        ...


@dataclass
class WindowCounts:
    """One model version's counts over one window (what replicas add up).

    ``counts`` is int64 of shape (total bins,) in the layout of the version's reference
    profile; ``start`` the window's start in seconds since the epoch.
    """

    model: str
    version: str
    fingerprint: str
    start: float
    seconds: float
    rows: int
    counts: np.ndarray


class _Monitor:
    """One model version's reference, current window and last report."""

    __slots__ = ("binner", "counts", "fingerprint", "last", "levels", "lock", "model",
                 "pending", "ref", "rows", "total_rows", "version", "window")

    def __init__(self, model: str, version: str, fingerprint: str, binner: Binner) -> None:
        self.model, self.version, self.fingerprint = model, version, fingerprint
        self.binner = binner
        self.ref = binner.profile.flat_counts()
        self.lock = threading.Lock()
        self.window = -1
        self.counts = np.zeros(binner.size, dtype=np.int64)
        self.rows = 0
        self.total_rows = 0
        #: the last finished window with rows: (start, rows, drift per feature)
        self.last: tuple[float, int, list[FeatureDrift]] | None = None
        self.levels: dict[tuple[str, str], str] = {}
        #: small requests of the current window not counted yet: (inputs, outputs)
        self.pending: list[tuple[Any, Mapping[str, np.ndarray]]] = []

    def flush(self) -> None:
        """Count the pending small requests (lock held): one kernel call per column group
        for all of them."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        first_in, first_out = pending[0]
        keys = first_out.keys()
        if not all(a.keys() == keys for _, a in pending):
            for x, arrays in pending:  # requests asked for different outputs: one by one
                self.binner.count(x, arrays, self.counts)
            return
        if all(isinstance(x, np.ndarray) and x.dtype.kind in "fiub" and x.ndim == 2
               for x, _ in pending):
            inputs: Any = np.concatenate([x for x, _ in pending])
        elif isinstance(first_in, Mapping) and all(isinstance(x, Mapping) for x, _ in pending):
            inputs = {k: np.concatenate([np.asarray(x[k], dtype=object) for x, _ in pending])
                      for k in first_in if all(k in x for x, _ in pending)}
        else:
            for x, arrays in pending:  # other forms (rare): one by one
                self.binner.count(x, arrays, self.counts)
            return
        outputs = {k: np.concatenate([a[k] for _, a in pending]) for k in keys}
        self.binner.count(inputs, outputs, self.counts)


class DriftRecorder:
    """A pipeline :class:`~scorer.pipeline.stages.Recorder` measuring drift per model version.

    A version whose bundle has no ``drift_reference`` is not counted (one dictionary lookup
    per request). The recorder is also a Prometheus collector: register it with the server's
    registry to export its gauges (see docs/monitoring.md).

    Parameters
    ----------
    window_s : float
        Window length in seconds (``--drift-window``).
    thresholds : Thresholds
        PSI levels; a feature whose level changes at the end of a window logs an event
        ``drift`` on logger ``tablescore.drift``.
    clock : callable
        Seconds since the epoch (``time.time``; tests pass their own).
    sink : WindowSink, optional
        Also receives every finished window (a fleet's PostgreSQL table).
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, thresholds: Thresholds | None = None,
                 *, clock: Callable[[], float] = time.time, sink: WindowSink | None = None) -> None:
        if not window_s > 0:
            raise ValueError(f"drift window must be positive seconds, got {window_s}")
        self.window_s = float(window_s)
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.sink = sink
        self._monitors: dict[tuple[str, str, str], _Monitor | None] = {}
        self._create = threading.Lock()

    # --- the request path ---------------------------------------------------------------------
    def record(self, target: Any, request: Any, arrays: Mapping[str, np.ndarray]) -> None:
        """Count the request's rows into its version's current window."""
        key = (target.name, target.version, target.fingerprint)
        m = self._monitors.get(key, False)
        if m is False:
            m = self._monitor(key, target)
        if m is None:
            return
        w = int(self.clock() // self.window_s)
        finished = None
        with m.lock:
            if w != m.window:
                finished = self._rotate(m, w)
            if request.rows <= SMALL_ROWS:
                m.pending.append((request.inputs, arrays))
                if len(m.pending) >= PENDING_MAX:
                    m.flush()
            else:
                m.binner.count(request.inputs, arrays, m.counts)
            m.rows += request.rows
            m.total_rows += request.rows
        if finished is not None:
            self._finish(m, finished)

    def _monitor(self, key: tuple[str, str, str], target: Any) -> _Monitor | None:
        with self._create:
            if key in self._monitors:
                return self._monitors[key]
            bundle = getattr(target.model, "bundle", None)
            ref = getattr(bundle, "drift_reference", None)
            m = None
            if ref:
                try:
                    profile = Profile.from_json(ref)
                    m = _Monitor(key[0], key[1], key[2], Binner(profile, bundle.inputs))
                except BundleFormatError as exc:
                    log.warning("model %s version %s: drift reference unusable (%s); not "
                                "monitored", key[0], key[1], exc,
                                extra={"event": "drift_reference_invalid", "model": key[0],
                                       "version": key[1]})
            self._monitors[key] = m
            return m

    # --- windows ------------------------------------------------------------------------------
    def _rotate(self, m: _Monitor, w: int) -> WindowCounts | None:
        """Start window ``w``; return the finished one if it counted rows (lock held)."""
        m.flush()
        done = None
        if m.rows:
            done = WindowCounts(m.model, m.version, m.fingerprint, m.window * self.window_s,
                                self.window_s, m.rows, m.counts)
            m.counts = np.zeros_like(m.counts)
            m.rows = 0
        m.window = w
        return done

    def _finish(self, m: _Monitor, done: WindowCounts) -> None:
        """Report a finished window: gauges, level changes, the sink (outside the lock)."""
        drift = compare_flat(m.binner.profile, m.ref, done.counts)
        m.last = (done.start, done.rows, drift)
        for d in drift:
            key = (d.role, d.name)
            level = self.thresholds.level(d.psi)
            before = m.levels.get(key, "ok")
            if level != before:
                m.levels[key] = level
                log.log(logging.WARNING if level != "ok" else logging.INFO,
                        "drift %s: model %s version %s %s '%s' PSI %.4f (%s -> %s)",
                        level, m.model, m.version, d.role, d.name, d.psi, before, level,
                        extra={"event": "drift", "model": m.model, "version": m.version,
                               "role": d.role, "feature": d.name, "psi": d.psi, "js": d.js,
                               "level": level, "previous": before, "rows": done.rows,
                               "window_start": done.start})
        if self.sink is not None:
            try:
                self.sink.flush(done)
            except Exception:  # a fleet table that is down never fails serving
                log.warning("drift window flush failed", exc_info=True)

    def tick(self) -> None:
        """Finish every window that has ended (scrapes call this: a quiet version's last
        window is reported without waiting for its next request)."""
        w = int(self.clock() // self.window_s)
        for m in list(self._monitors.values()):
            if m is None or m.window == w:
                continue
            with m.lock:
                finished = self._rotate(m, w) if m.window != w else None
            if finished is not None:
                self._finish(m, finished)

    def current(self, model: str, version: str) -> list[WindowCounts]:
        """The current (unfinished) window's counts of ``model`` / ``version`` (copies)."""
        out = []
        for m in list(self._monitors.values()):
            if m is not None and m.model == model and m.version == version:
                with m.lock:
                    m.flush()
                    out.append(WindowCounts(m.model, m.version, m.fingerprint,
                                            m.window * self.window_s, self.window_s, m.rows,
                                            m.counts.copy()))
        return out

    def report(self) -> dict[tuple[str, str], tuple[float, int, list[FeatureDrift]]]:
        """The last finished window of every monitored version: ``(model, version) ->
        (start, rows, drift per feature)``."""
        self.tick()
        return {(m.model, m.version): m.last for m in list(self._monitors.values())
                if m is not None and m.last is not None}

    # --- Prometheus ---------------------------------------------------------------------------
    def collect(self) -> Iterator[Any]:
        """The drift series (prometheus_client collector protocol)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        report = self.report()
        fpsi = GaugeMetricFamily(
            "tablescore_feature_psi", "PSI of an input's last finished window against the "
            "bundle's reference profile", labels=["model", "version", "feature"])
        opsi = GaugeMetricFamily(
            "tablescore_prediction_psi", "PSI of an output's last finished window against "
            "the bundle's reference profile", labels=["model", "version", "output"])
        fjs = GaugeMetricFamily(
            "tablescore_feature_js_distance", "Jensen-Shannon distance (base 2) of an input's "
            "last finished window against the reference", labels=["model", "version", "feature"])
        ojs = GaugeMetricFamily(
            "tablescore_prediction_js_distance", "Jensen-Shannon distance (base 2) of an "
            "output's last finished window against the reference",
            labels=["model", "version", "output"])
        wrows = GaugeMetricFamily(
            "tablescore_drift_window_rows", "Rows counted in the last finished drift window",
            labels=["model", "version"])
        wend = GaugeMetricFamily(
            "tablescore_drift_window_end_timestamp_seconds", "End of the last finished drift "
            "window (seconds since the epoch)", labels=["model", "version"])
        for (model, version), (start, rows, drift) in sorted(report.items()):
            wrows.add_metric([model, version], rows)
            wend.add_metric([model, version], start + self.window_s)
            for d in drift:
                if d.psi != d.psi:
                    continue  # nothing counted for it (an output the requests did not ask)
                psi, js = (fpsi, fjs) if d.role == "input" else (opsi, ojs)
                psi.add_metric([model, version, d.name], d.psi)
                js.add_metric([model, version, d.name], d.js)
        total = CounterMetricFamily("tablescore_drift_rows", "Rows counted for drift "
                                    "monitoring", labels=["model", "version"])
        for m in list(self._monitors.values()):
            if m is not None:
                total.add_metric([m.model, m.version], m.total_rows)
        yield from (fpsi, opsi, fjs, ojs, wrows, wend, total)
