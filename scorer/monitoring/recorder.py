"""The serving side: a pipeline recorder counting every scored row into its reference bins,
per model version, in tumbling windows, and exporting PSI / JS per window on /metrics.

The request path only queues what it scored, per model version: a one-row request of numbers
that got every output as the bytes of its input row, appended to one buffer per window (a
copy: an in-process caller may reuse its input array; no lock; the counting thread scores
these rows again, in one batch, for their outputs: the batch path returns what the one-row
path did, bit for bit), any other as ``(time, request, outputs)``. Queued
requests are counted in one compiled pass per batch (:func:`.kernels.count_batch`, which
releases the GIL) by a background thread every ``flush_interval`` seconds (at once after a
large request, so its counting runs beside the next one); never in a request's thread.
Counts stay exact (unless ``sample`` < 1 is asked for large requests): every queued row is
counted, in the window of the time its request was recorded. When a queue is full (counting
cannot keep up) the request is not queued and its rows are counted as dropped
(``tablescore_drift_dropped_rows_total``): the window's PSI is then over the rows counted.
So are the rows of a request that cannot be counted (the other requests counted with it
still are).

Windows are aligned to the epoch (window ``k`` covers ``[k * w, (k + 1) * w)`` seconds of
wall-clock time), so windows of several replicas are the same windows and their counts add.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from ..errors import BundleFormatError
from ..ir import Field
from ..pipeline.request import Request
from . import kernels
from .drift import FeatureDrift, Thresholds, compare_flat
from .profile import CategoryMap, Profile, as_numbers

log = logging.getLogger("tablescore.drift")

#: default window length in seconds (``--drift-window``)
DEFAULT_WINDOW_S = 300.0
#: seconds between the counting thread's passes over the queues
FLUSH_INTERVAL_S = 0.05
#: requests queued per model version at most (one-row requests: rows); past it requests are
#: dropped and counted as such
QUEUE_REQUESTS = 1 << 16
#: rows queued per model version at most (what the queued requests keep alive)
QUEUE_ROWS = 1 << 21
#: requests of at least this many rows are counted in a kernel call of their own
_OWN_CALL_ROWS = 256
#: requests of at least this many rows are sampled when a sampling rate is set
SAMPLE_MIN_ROWS = _OWN_CALL_ROWS
#: seconds a rotated input-only buffer is kept after it was last found empty
_ROTATED_GRACE_S = 2.0
#: requests of more rows than this wake the counting thread at once
_WAKE_ROWS = 4096
# integers compare exactly as float64 only up to 2**53
_EXACT_INT = float(2 ** 53)
_EMPTY_X = np.zeros((0, 0))
_time_of = itemgetter(0)
#: the request path's lookup entry: (model's weak reference, monitor or None, served name,
#: version)
_Entry = tuple[Callable[[], Any], "_Monitor | None", str, str]
#: what the request path finds for a model object without an entry (matches no model)
_NO_ENTRY: _Entry = (lambda: None, None, "", "")


def _key_tables(categories: Sequence[str]) -> tuple[list[tuple[float, int]],
                                                    list[tuple[float, int]]]:
    """Sorted ``(value, code)`` of the categories whose text a float, resp. an integer, has
    (``str(v) == category``, as :class:`.profile.CategoryMap` compares): typed values (labels,
    numbers sent for a category) are then looked up in compiled code."""
    floats: dict[float, int] = {}
    ints: dict[float, int] = {}
    for code, c in enumerate(categories):
        try:
            v = float(c)
            if v == v and repr(v) == c:
                floats.setdefault(v, code)
        except ValueError:
            pass
        try:
            i = int(c)
            if str(i) == c and abs(i) <= _EXACT_INT:
                ints.setdefault(float(i), code)
        except ValueError:
            pass
    return sorted(floats.items()), sorted(ints.items())


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
        feats = profile.features
        n_in = len(profile.inputs)
        self.n_fields = len(fields)
        col = {f.name: j for j, f in enumerate(fields)}
        # numeric inputs of a matrix request first: row t of the edge table is column cols[t]
        matrix = [i for i, fp in enumerate(profile.inputs)
                  if fp.kind == "numeric" and fp.name in col]
        order = matrix + [i for i in range(len(feats)) if i not in set(matrix)]
        self._erow = {f: r for r, f in enumerate(order)}
        w = max([len(fp.edges) for fp in feats if fp.kind == "numeric"] + [2])
        self._E = np.full((len(order), w), np.inf)
        self._ne = np.full(len(order), 2, dtype=np.int64)
        for f in order:
            fp = feats[f]
            if fp.kind == "numeric":
                self._E[self._erow[f], :len(fp.edges)] = fp.edges
                self._ne[self._erow[f]] = len(fp.edges)
        self._cols = np.array([col[feats[f].name] for f in matrix], dtype=np.int64)
        self._coff = off[matrix].astype(np.int64)
        # sorted keys of categorical features: row 2f float texts, 2f + 1 integer texts
        tables = [_key_tables(fp.categories or []) if fp.kind == "categorical" else ([], [])
                  for fp in feats]
        wk = max([len(t) for pair in tables for t in pair] + [1])
        self._K = np.full((2 * len(feats), wk), np.inf)
        self._kc = np.zeros((2 * len(feats), wk), dtype=np.int64)
        self._kn = np.zeros(2 * len(feats), dtype=np.int64)
        for f, pair in enumerate(tables):
            for h, t in enumerate(pair):
                self._kn[2 * f + h] = len(t)
                for q, (v, c) in enumerate(t):
                    self._K[2 * f + h, q], self._kc[2 * f + h, q] = v, c
        self._off = off
        self._cmaps = {f: CategoryMap(fp.categories or []) for f, fp in enumerate(feats)
                       if fp.kind == "categorical"}
        #: inputs counted from a matrix's column besides the numeric ones (categories)
        self._matrix_other = [(f, col[fp.name]) for f, fp in enumerate(profile.inputs)
                              if fp.name in col and f not in set(matrix)]
        self._inputs = [(f, fp.name) for f, fp in enumerate(profile.inputs) if fp.name in col]
        self._outputs = [(n_in + i, fp.name) for i, fp in enumerate(profile.outputs)]
        self._names = [f.name for f in fields]

    def _column(self, f: int, values: Any) -> tuple[int, int, int, np.ndarray]:
        """``(feature, kind, table row, float64 values)`` of one column (rows,) of feature
        ``f`` for :func:`.kernels.count_batch`."""
        if f not in self._cmaps:
            return f, kernels.V_NUMERIC, self._erow[f], as_numbers(values)
        arr = np.asarray(values)
        kind = arr.dtype.kind
        if kind == "f":
            return f, kernels.V_KEYS, 2 * f, arr.astype(np.float64, copy=False)
        if kind in "iu" and (arr.size == 0 or float(np.abs(arr).max()) <= _EXACT_INT):
            return f, kernels.V_KEYS, 2 * f + 1, arr.astype(np.float64)
        return f, kernels.V_CODES, 0, self._cmaps[f].codes(arr)

    def count(self, inputs: Any, arrays: Mapping[str, np.ndarray], counts: np.ndarray) -> None:
        """Add one request into ``counts`` (int64, (size,)).

        Parameters
        ----------
        inputs : ndarray of shape (rows, n_inputs) or dict of str to ndarray of shape (rows,)
            ``Request.inputs``: a matrix in the model's input order, or columns by name.
        arrays : dict of str to ndarray of shape (rows,)
            The outputs the request returned (outputs it did not ask for are not counted).
        """
        self.count_many([inputs], [arrays], counts)

    def count_many(self, inputs: Sequence[Any], outputs: Sequence[Mapping[str, np.ndarray]],
                   counts: np.ndarray) -> None:
        """Add several requests into ``counts`` in one kernel call: each feature's values of
        all requests are put together (features are counted independently, so a request
        without some column or output simply adds nothing to it).

        Parameters
        ----------
        inputs : sequence of ``Request.inputs``
            Matrices (rows, n_inputs) in the model's order, one-row vectors (n_inputs,), or
            dicts of columns (rows,); None for a request without inputs.
        outputs : sequence of dict of str to ndarray of shape (rows,)
            The outputs each request returned.
        """
        X = _EMPTY_X
        vcols: list[tuple[int, int, int, np.ndarray]] = []
        mat = self._matrix(inputs)
        if mat is not None and mat.dtype.kind in "fiub":
            if self._cols.size:
                X = mat
            vcols += [self._column(f, mat[:, j]) for f, j in self._matrix_other]
        else:
            columns = ([{n: mat[:, j] for j, n in enumerate(self._names)}] if mat is not None
                       else self._columns(inputs))
            for f, name in self._inputs:
                vals = [c[name] for c in columns if name in c]
                if vals:
                    vcols.append(self._column(f, _concat(vals)))
        for f, name in self._outputs:
            try:
                vals = list(map(itemgetter(name), outputs))
            except KeyError:  # some requests did not ask for it
                vals = [a[name] for a in outputs if name in a]
            if vals:
                vcols.append(self._column(f, _concat(vals)))
        sizes = [len(v[3]) for v in vcols]
        V = (np.concatenate([v[3] for v in vcols]).astype(np.float64, copy=False) if vcols
             else np.zeros(0))
        vstart = np.zeros(len(vcols) + 1, dtype=np.int64)
        np.cumsum(sizes, out=vstart[1:])
        feats = np.array([v[0] for v in vcols], dtype=np.int64)
        cats = self.profile.features
        vm = np.array([len(cats[f].categories or []) for f in feats.tolist()], dtype=np.int64)
        kernels.count_batch(X, self._cols, self._E, self._ne, self._coff, V, vstart,
                            np.array([v[2] for v in vcols], dtype=np.int64),
                            np.array([v[1] for v in vcols], dtype=np.int64),
                            self._K, self._kn, self._kc, vm,
                            self._off[feats].astype(np.int64), counts)

    def _matrix(self, inputs: Sequence[Any]) -> np.ndarray | None:
        """All inputs as one matrix (rows, n_fields) when every request sent an array."""
        if not inputs or set(map(type, inputs)) != {np.ndarray}:
            return None
        try:
            X = np.concatenate(inputs) if len(inputs) > 1 else inputs[0]
        except ValueError:  # 1-D one-row vectors beside matrices
            X = np.concatenate([x.reshape(-1, self.n_fields) for x in inputs])
        if X.ndim == 1:
            X = X.reshape(-1, self.n_fields)
        return X

    def _columns(self, inputs: Sequence[Any]) -> list[Mapping[str, Any]]:
        """Each request's inputs as columns by name (matrices split into their columns)."""
        out: list[Mapping[str, Any]] = []
        for x in inputs:
            if isinstance(x, np.ndarray):
                X = x.reshape(-1, self.n_fields) if x.ndim == 1 else x
                out.append({n: X[:, j] for j, n in enumerate(self._names)})
            elif x is not None:
                out.append(x)
        return out


def _concat(values: list[Any]) -> np.ndarray:
    """One column from the pieces (rows_i,) of several requests."""
    if len(values) == 1:
        return np.asarray(values[0])
    try:
        # pieces of one shape (one-row requests): np.array stacks them 4x faster than
        # np.concatenate (~110 vs ~440 ns a piece)
        a = np.array(values)
        if a.ndim == 2:
            return a.reshape(-1)
    except ValueError:  # pieces of different lengths
        pass
    try:
        return np.concatenate(values)
    except ValueError:  # lists or scalars among arrays
        return np.concatenate([np.asarray(v, dtype=object).reshape(-1) for v in values])


def _every(x: Any, k: int, *, names: Sequence[str] = ()) -> Any:
    """Copies of rows ``0, k, 2k, ...`` of a request's inputs (a matrix (rows, n), columns
    by name (rows,) or a data frame: its columns ``names``, by name) or outputs (columns by
    name)."""
    if isinstance(x, Mapping):
        return {n: np.array(np.asarray(v)[::k]) for n, v in x.items()}
    if hasattr(x, "columns"):
        return {n: np.array(np.asarray(x[n])[::k]) for n in names if n in x.columns}
    return x if x is None else np.array(np.asarray(x)[::k])


def _owned(x: Any, *, names: Sequence[str] = ()) -> Any:
    """A copy of a small request (its inputs, not its parameters or extras) or of its
    outputs (dict of str to ndarray): what the counting thread reads later cannot be
    changed by a caller reusing its arrays. A data frame becomes its columns ``names`` (the
    model's inputs) by name: the model reads a frame's columns by name, in any order."""
    if isinstance(x, Request):
        return Request(_owned(x.inputs, names=names), x.rows, x.outputs)
    if isinstance(x, Mapping):
        return {n: np.array(v) for n, v in x.items()}
    if hasattr(x, "columns"):
        return {n: np.array(x[n]) for n in names if n in x.columns}
    return x if x is None else np.array(x)


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
    """One model version's reference, queue, current window and last report."""

    __slots__ = ("binner", "counts", "dropped", "fingerprint", "last", "levels", "lock",
                 "model", "model_ref", "queue", "queued_rows", "ref", "rows", "rowx",
                 "total_rows", "version", "window", "xold", "xspec", "xwin")

    def __init__(self, model: str, version: str, fingerprint: str, binner: Binner) -> None:
        self.model, self.version, self.fingerprint = model, version, fingerprint
        self.binner = binner
        self.ref = binner.profile.flat_counts()
        #: (time, request, outputs) recorded and not counted yet; appended by request
        #: threads, taken by the counting thread (deque appends and pops are thread-safe)
        self.queue: deque[tuple[float, Any, Mapping[str, np.ndarray]]] = deque()
        #: rows of the queued requests of more than one row (guarded by ``lock``)
        self.queued_rows = 0
        #: one-row requests that asked for every output, inputs only: the bytes of each
        #: input row, one after the other, all recorded in window ``xwin`` (their outputs are
        #: scored again in one batch by the counting thread: a batch row costs a fraction of
        #: copying a one-row request's outputs here). Rotated out into ``xold`` as
        #: ``(window, buffer, rotated at)`` by the first row of a later window.
        self.rowx = bytearray()
        self.xwin = -1.0
        self.xold: list[tuple[float, bytearray, float]] = []
        #: (input dtype, input count, output count of the model, bytes of a full ``rowx``)
        #: of the rows that go to ``rowx``; None until learnt, False when they cannot
        self.xspec: Any = None
        #: weak reference to the model the version's requests were scored by (scores the
        #: rows of ``rowx`` again)
        self.model_ref: Any = None
        self.lock = threading.Lock()
        self.dropped = 0
        self.window = -1
        self.counts = np.zeros(binner.size, dtype=np.int64)
        self.rows = 0
        self.total_rows = 0
        #: the last finished window with rows: (start, rows, drift per feature)
        self.last: tuple[float, int, list[FeatureDrift]] | None = None
        self.levels: dict[tuple[str, str], str] = {}

    def learn(self, x: Any, n_outputs: int, queue_requests: int) -> None:
        """Set :attr:`xspec` from a one-row request: its input dtype, when the inputs are
        numbers (the bytes of the row then stand for it); ``n_outputs`` is how many outputs
        the model has."""
        numeric_row = (isinstance(x, np.ndarray) and x.dtype.kind in "fiub"
                       and x.size == self.binner.n_fields)
        self.xspec = ((x.dtype, x.size, n_outputs, x.dtype.itemsize * x.size * queue_requests)
                      if numeric_row else False)

    def take_inputs(self, buf: bytearray) -> np.ndarray:
        """Empty ``buf`` of :attr:`rowx`'s whole rows: the rows (rows, n_fields)."""
        dtype, n = self.xspec[0], self.xspec[1]
        size = dtype.itemsize * n
        nb = len(buf) // size * size
        data = buf[:nb]  # a copy: rows appended meanwhile stay in ``buf``
        del buf[:nb]
        return np.frombuffer(data, dtype=dtype).reshape(-1, n)

    def rotate_inputs(self, w: float) -> None:
        """Start :attr:`rowx` of window ``w`` (lock held)."""
        if self.xwin >= 0:  # (kept even empty: a request thread may still append to it)
            self.xold.append((self.xwin, self.rowx, time.monotonic()))
        self.rowx = bytearray()
        self.xwin = w


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
        Also receives every finished window (a fleet's shared table).
    flush_interval : float
        Seconds between the counting thread's passes (0: no thread; counting happens when
        :meth:`drain`, :meth:`current`, :meth:`report` or a scrape is called).
    queue_requests, queue_rows : int
        Bounds of each version's queue (requests, rows of multi-row requests); past them a
        request's rows are dropped and counted in ``tablescore_drift_dropped_rows_total``.
    sample : float
        ``--drift-sample``: 1 (default) counts every row. Below 1, a request of at least
        :data:`SAMPLE_MIN_ROWS` rows has only its rows ``0, k, 2k, ...`` counted, ``k =
        round(1 / sample)`` (a fixed rule: replicas' counts still add exactly; smaller
        requests are counted whole). The window's PSI is then an estimate from fewer rows:
        its noise floor grows by ``k`` (docs/monitoring.md).
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, thresholds: Thresholds | None = None,
                 *, clock: Callable[[], float] = time.time, sink: WindowSink | None = None,
                 flush_interval: float = FLUSH_INTERVAL_S,
                 queue_requests: int = QUEUE_REQUESTS, queue_rows: int = QUEUE_ROWS,
                 sample: float = 1.0) -> None:
        if not window_s > 0:
            raise ValueError(f"drift window must be positive seconds, got {window_s}")
        if not 0 < sample <= 1:
            raise ValueError(f"drift sampling rate must be in (0, 1], got {sample}")
        #: count every ``sample_every``-th row of a large request (1: every row)
        self.sample_every = max(1, round(1 / sample))
        self.window_s = float(window_s)
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.sink = sink
        self.flush_interval = flush_interval
        self.queue_requests = int(queue_requests)
        self.queue_rows = int(queue_rows)
        self._monitors: dict[tuple[str, str, str], _Monitor | None] = {}
        #: id(model) -> (weak reference to the model, its monitor or None, served name,
        #: version): the request path's lookup (the model object of a loaded version is the
        #: same for all its requests; the weak reference tells a reused id from the same
        #: model; the name and version, a model object served under several names)
        self._fast: dict[int, _Entry] = {}
        #: (id(model), name, version) -> entry: the names and versions of a model object
        #: besides the one ``_fast`` holds
        self._named: dict[tuple[int, str, str], _Entry] = {}
        #: (model, version) -> (rows, dropped rows) of retired monitors: their counters go
        #: on in the series of the version (guarded by the drain lock)
        self._retired: dict[tuple[str, str], tuple[int, int]] = {}
        self._create = threading.Lock()
        self._drain_lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the request path ---------------------------------------------------------------------
    def record(self, target: Any, request: Any, arrays: Mapping[str, np.ndarray]) -> None:
        """Queue the request's rows for counting in its version's current window."""
        model = target.model
        ref, m, name, version = self._fast.get(id(model), _NO_ENTRY)
        if ref() is not model or name is not target.name or version is not target.version:
            m = self._slow_monitor(target)
        if m is None:
            return
        if request.rows == 1:  # the common serving case: no lock, no row bookkeeping
            x = request.inputs
            xs = m.xspec
            if (xs and type(x) is np.ndarray and x.dtype is xs[0] and x.size == xs[1]
                    and len(arrays) == xs[2]):
                # numbers, every output: the bytes of the input row alone (a copy: the
                # caller may reuse its array); the counting thread scores such rows again
                # in one batch for their outputs
                w = self.clock() // self.window_s
                r = m.rowx
                if w == m.xwin and len(r) < xs[3]:
                    r += x.tobytes()  # one operation under the GIL: whole rows only
                else:
                    self._row_slow(m, x, w)
                return
            if xs is None:
                m.learn(x, len(target.model.output_names), self.queue_requests)
            q = m.queue
            if len(q) < self.queue_requests:
                q.append((self.clock(), _owned(request, names=m.binner._names),
                          _owned(arrays)))
            else:
                self._drop(m, 1)
            return
        rows = request.rows
        k = self.sample_every
        if k > 1 and rows >= SAMPLE_MIN_ROWS:
            # rows 0, k, 2k, ... copied here (1/k of the request: cheap), so nothing of the
            # request is kept
            request = Request(_every(request.inputs, k, names=m.binner._names),
                              -(-rows // k), request.outputs)
            arrays, rows = _every(arrays, k), request.rows
        elif rows < _OWN_CALL_ROWS:
            # small requests: copies (an in-process caller may reuse its arrays); a large
            # one is kept by reference until counted (a copy would cost about as much as
            # scoring it): its caller must not modify it in place meanwhile
            request, arrays = _owned(request, names=m.binner._names), _owned(arrays)
        big = rows if rows != 1 else 0  # (what _drain takes off queued_rows)
        q = m.queue
        with m.lock:
            ok = len(q) < self.queue_requests and m.queued_rows + big <= self.queue_rows
            if ok:
                m.queued_rows += big
                q.append((self.clock(), request, arrays))
        if not ok:
            self._drop(m, rows)
        elif rows >= _WAKE_ROWS:
            self._wake.set()

    def _row_slow(self, m: _Monitor, x: np.ndarray, w: float) -> None:
        """An input-only row that is the first of a later window (rotates the buffer), of
        an earlier one (a thread racing the boundary: counted in the later one), or past the
        queue bound (dropped)."""
        with m.lock:
            if w > m.xwin:
                m.rotate_inputs(w)
            r = m.rowx
            full = len(r) >= m.xspec[3]
            if not full:
                r += x.tobytes()
        if full:
            self._drop(m, 1)

    def _drop(self, m: _Monitor, rows: int) -> None:
        with m.lock:
            first = m.dropped == 0
            m.dropped += rows
        if first:
            log.warning("drift counting cannot keep up: model %s version %s drops rows "
                        "(tablescore_drift_dropped_rows_total)", m.model, m.version,
                        extra={"event": "drift_dropped", "model": m.model,
                               "version": m.version})

    def _lookup(self, target: Any, *, fast: bool = True) -> _Entry:
        """The entry of ``target``, its monitor created if new; kept in ``_fast`` when
        ``fast`` (and the model takes weak references)."""
        key = (target.name, target.version, target.fingerprint)
        model = target.model
        try:
            ref: Any = weakref.ref(model)
        except TypeError:  # a model object without weak references: the slower lookup
            ref, fast = (lambda: model), False
        while True:
            m = self._monitors.get(key, False)
            if m is False:
                m = self._monitor(key, target)
            if m is None:
                break
            with self._create:
                # not one _retire has just removed (a model of its fingerprint loaded again)
                if self._monitors.get(key) is m:
                    m.model_ref = ref
                    break
        entry = (ref, m, target.name, target.version)
        if fast:
            self._fast[id(model)] = entry
            weakref.finalize(model, self._fast.pop, id(model), None)
        return entry

    def _slow_monitor(self, target: Any) -> _Monitor | None:
        """The monitor of ``target`` when ``_fast`` has no entry for it: the first request
        of its model object (or one without weak references), or another name or version
        of a model object ``_fast`` holds (one model object served under several names)."""
        model = target.model
        e = self._fast.get(id(model))
        if e is None or e[0]() is not model:
            return self._lookup(target)[1]
        key = (id(model), target.name, target.version)
        e = self._named.get(key)
        if e is None or e[0]() is not model:
            e = self._lookup(target, fast=False)
            self._named[key] = e
            weakref.finalize(model, self._named.pop, key, None)
        return e[1]

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
                    register = getattr(self.sink, "register", None)
                    if register is not None:
                        register(profile, key[0], key[1], key[2])
                except BundleFormatError as exc:
                    log.warning("model %s version %s: drift reference unusable (%s); not "
                                "monitored", key[0], key[1], exc,
                                extra={"event": "drift_reference_invalid", "model": key[0],
                                       "version": key[1]})
            self._monitors[key] = m
            if m is not None and self.flush_interval > 0 and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tablescore-drift",
                                                daemon=True)
                self._thread.start()
            return m

    # --- counting -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # never let the counting thread die
                log.exception("drift counting failed")

    def drain(self) -> None:
        """Count everything queued so far (the counting thread does this every
        ``flush_interval``)."""
        with self._drain_lock:
            for m in list(self._monitors.values()):
                if m is not None and (m.queue or m.rowx or m.xold):
                    self._drain(m)

    def _drain(self, m: _Monitor) -> None:
        """Count ``m``'s queues, window by window (drain lock held)."""
        q = m.queue
        batch = [q.popleft() for _ in range(len(q))]
        big = sum(r.rows for _, r, _ in batch if r.rows != 1)
        if big:
            with m.lock:
                m.queued_rows -= big
        wq = np.floor_divide(np.fromiter(map(_time_of, batch), dtype=np.float64,
                                         count=len(batch)), self.window_s).astype(np.int64)
        xrows = self._input_rows(m)
        # windows in time order (a queue's requests arrive in time order, up to threads
        # racing at a boundary)
        wx = np.array([w for w, _ in xrows], dtype=np.int64)
        for wk in np.unique(np.concatenate([wq, wx])).tolist():
            if wk > m.window:
                done = self._rotate(m, wk)
                if done is not None:
                    self._finish(m, done)
            # a request of an already finished window (it raced the boundary) counts in the
            # current one: counts stay exact in total, off by a request in time
            part = ([batch[i] for i in np.flatnonzero(wq == wk).tolist()]
                    if len(batch) else [])
            # large requests one by one (copying them together would cost more than the
            # kernel call it saves), small ones together
            for _, r, o in part:
                if r.rows >= _OWN_CALL_ROWS:
                    self._count_each(m, [r.inputs], [o], [r.rows])
            part = [e for e in part if e[1].rows < _OWN_CALL_ROWS]
            inputs = [r.inputs for _, r, _ in part]
            outputs = [o for _, _, o in part]
            sizes = [r.rows for _, r, _ in part]
            for w, xr in xrows:
                if w == wk:
                    inputs.append(xr)
                    outputs.append(self._rescore(m, xr))
                    sizes.append(xr.shape[0])
            rows = sum(sizes)
            if not rows:
                continue
            try:
                m.binner.count_many(inputs, outputs, m.counts)
            except Exception:
                # one request the binner cannot read must not lose the others' rows
                self._count_each(m, inputs, outputs, sizes)
            else:
                m.rows += rows
                m.total_rows += rows

    def _count_each(self, m: _Monitor, inputs: list[Any],
                    outputs: list[Mapping[str, np.ndarray]], sizes: list[int]) -> None:
        """Count requests one by one (drain lock held); the rows of a request that cannot be
        counted are counted as dropped, with one warning for all of them.

        ``count_many`` fails while putting its columns together, before its kernel adds
        anything: a request that fails leaves ``m.counts`` as it was.
        """
        lost, failed, error = 0, 0, None
        for x, o, n in zip(inputs, outputs, sizes, strict=True):
            try:
                m.binner.count_many([x], [o], m.counts)
            except Exception as exc:
                lost, failed, error = lost + n, failed + 1, error or exc
                continue
            m.rows += n
            m.total_rows += n
        if not lost:
            return
        with m.lock:
            m.dropped += lost
        log.warning("model %s version %s: %d rows of %d requests could not be counted for "
                    "drift (tablescore_drift_dropped_rows_total)", m.model, m.version, lost,
                    failed, exc_info=error,
                    extra={"event": "drift_uncountable", "model": m.model,
                           "version": m.version, "rows": lost})

    def _input_rows(self, m: _Monitor) -> list[tuple[int, np.ndarray]]:
        """Take the input-only rows of ``m`` by window: ``[(window, rows (n, n_fields))]``
        (drain lock held). A rotated buffer is kept a while after it was last found empty:
        a request thread that read it just before the rotation may still append a row."""
        out = []
        with m.lock:
            old = list(m.xold)
            cur = (m.xwin, m.rowx)
        now = time.monotonic()
        keep = []
        for w, buf, since in old:
            if buf:
                out.append((int(w), m.take_inputs(buf)))
                keep.append((w, buf, now))
            elif now - since < _ROTATED_GRACE_S:
                keep.append((w, buf, since))
        with m.lock:
            m.xold[:len(old)] = keep
        if cur[1]:
            out.append((int(cur[0]), m.take_inputs(cur[1])))
        return [(w, x) for w, x in out if x.shape[0]]

    def _rescore(self, m: _Monitor, X: np.ndarray) -> Mapping[str, np.ndarray]:
        """The outputs of input-only rows (rows, n_fields), scored again by the model that
        answered them (the batch path returns what the one-row path returned, bit for
        bit); none when that model is gone or fails (its inputs are still counted)."""
        model = m.model_ref() if m.model_ref is not None else None
        if model is None:
            log.warning("model %s version %s unloaded before its last %d rows' outputs were "
                        "counted (their inputs are)", m.model, m.version, X.shape[0])
            return {}
        try:
            # serial: never a parallel kernel beside a request thread's (see score_arrays)
            return model.score_arrays(X, serial=True)
        except Exception:
            log.warning("model %s version %s: scoring %d recorded rows again for drift "
                        "failed (their inputs are counted)", m.model, m.version, X.shape[0],
                        exc_info=True)
            return {}

    # --- windows ------------------------------------------------------------------------------
    def _rotate(self, m: _Monitor, w: int) -> WindowCounts | None:
        """Start window ``w``; return the finished one if it counted rows (drain lock held)."""
        done = None
        if m.rows:
            done = WindowCounts(m.model, m.version, m.fingerprint, m.window * self.window_s,
                                self.window_s, m.rows, m.counts)
            m.counts = np.zeros_like(m.counts)
            m.rows = 0
        m.window = w
        return done

    def _finish(self, m: _Monitor, done: WindowCounts) -> None:
        """Report a finished window: gauges, level changes, the sink."""
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
            except Exception:  # a fleet table that is down never fails counting
                log.warning("drift window flush failed", exc_info=True)

    def tick(self) -> None:
        """Count what is queued, then finish every window that has ended (the counting
        thread and scrapes call this: a quiet version's last window is reported without
        waiting for its next request)."""
        w = int(self.clock() // self.window_s)
        with self._drain_lock:
            self.drain()
            for m in list(self._monitors.values()):
                if m is None or m.window >= w:
                    continue
                done = self._rotate(m, w)
                if done is not None:
                    self._finish(m, done)
            self._retire()

    def _retire(self) -> None:
        """Forget the monitors of unloaded models that a newer monitor of the same model
        version replaced (a bundle reloaded with new parameters), once their rows are
        counted and their last window reported (drain lock held, after a drain): their
        counters go on in the version's series."""
        monitors = list(self._monitors.items())
        newest = {(m.model, m.version): key for key, m in monitors if m is not None}
        for key, m in monitors:
            if (m is None or newest[(m.model, m.version)] == key or m.model_ref is None
                    or m.model_ref() is not None or m.rows or m.queue or m.rowx
                    or any(buf for _, buf, _ in m.xold)):
                continue
            with self._create:
                if m.model_ref() is not None or self._monitors.get(key) is not m:
                    continue  # a model of its fingerprint was loaded again meanwhile
                del self._monitors[key]
            rows, dropped = self._retired.get((m.model, m.version), (0, 0))
            self._retired[(m.model, m.version)] = (rows + m.total_rows, dropped + m.dropped)

    def close(self) -> None:
        """Stop the counting thread after a last pass; the current windows' counts go to
        the sink (as partial windows: their rows so far)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._drain_lock:
            self.drain()
            if self.sink is not None:
                for m in list(self._monitors.values()):
                    if m is not None and m.rows:
                        done = self._rotate(m, m.window)
                        if done is not None:
                            self._finish(m, done)
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()

    def current(self, model: str, version: str) -> list[WindowCounts]:
        """The current (unfinished) window's counts of ``model`` / ``version`` (copies)."""
        out = []
        with self._drain_lock:
            self.drain()
            for m in list(self._monitors.values()):
                if m is not None and m.model == model and m.version == version:
                    out.append(WindowCounts(m.model, m.version, m.fingerprint,
                                            m.window * self.window_s, self.window_s, m.rows,
                                            m.counts.copy()))
        return out

    def profiles(self) -> list[tuple[str, str, Profile]]:
        """``(model, version, reference profile)`` of every monitored version."""
        return [(m.model, m.version, m.binner.profile) for m in list(self._monitors.values())
                if m is not None]

    def dropped(self, model: str, version: str) -> int:
        """Rows of ``model`` / ``version`` not counted (the queue was full, or the request
        could not be counted)."""
        with self._drain_lock:
            return self._retired.get((model, version), (0, 0))[1] + sum(
                m.dropped for m in list(self._monitors.values())
                if m is not None and m.model == model and m.version == version)

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
        dropped = CounterMetricFamily(
            "tablescore_drift_dropped_rows", "Rows not counted for drift monitoring because "
            "the counting queue was full or their request could not be counted",
            labels=["model", "version"])
        # one series per version: the monitors of its fingerprints (and retired ones) add up
        with self._drain_lock:
            sums = dict(self._retired)
            for m in list(self._monitors.values()):
                if m is not None:
                    rows, lost = sums.get((m.model, m.version), (0, 0))
                    sums[(m.model, m.version)] = (rows + m.total_rows, lost + m.dropped)
        for (model, version), (rows, lost) in sums.items():
            total.add_metric([model, version], rows)
            dropped.add_metric([model, version], lost)
        yield from (fpsi, opsi, fjs, ojs, wrows, wend, total, dropped)
