"""Prometheus metrics of one server process, in a registry of its own.

A private registry (instead of prometheus_client's global one) lets several servers run in one
process, as the tests and embedding applications do, without their series colliding.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# gRPC round trips of tabular scoring range from tens of microseconds (one row) to seconds
# (a million rows)
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every series the server exports.

    Model labels only ever hold names of models in the repository (a request for an unknown
    model is counted under ``model=""``), so clients cannot grow the series without bound.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where to register; a fresh registry by default. Process metrics (RSS as
        ``process_resident_memory_bytes``, CPU, open files) are added to it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        #: the per-request series (requests, latencies, in flight, rows scored)
        self.calls = RequestSeries()
        r.register(self.calls)
        #: failures the request pipeline's stages absorbed (see :meth:`watch_stage_errors`)
        self.stage_errors = StageErrorSeries(None)
        r.register(self.stage_errors)
        self.batched = Counter(
            "tablescore_batched_requests",
            "ModelInfer requests scored in a kernel call shared with other requests (adaptive "
            "batching)", ["model", "version"], registry=r)
        self.loaded = Gauge(
            "tablescore_model_version_ready",
            "1 for every model version loaded and serving", ["model", "version"], registry=r)
        self.loads = Counter(
            "tablescore_model_loads", "Version loads by model and result (ok, failed)",
            ["model", "result"], registry=r)
        self.load_failures = Counter(
            "tablescore_model_load_failures",
            "Versions that failed to load, verify or warm, by model and version",
            ["model", "version"], registry=r)
        self.load_seconds = Histogram(
            "tablescore_model_load_duration_seconds",
            "Time to read, verify and warm a version", ["model"], buckets=_LOAD_BUCKETS,
            registry=r)
        self.ready = Gauge(
            "tablescore_server_ready", "1 once the initial repository scan is loaded, 0 while "
            "starting or shutting down", registry=r)

    def watch_drift(self, recorder: Any) -> None:
        """Export a :class:`~scorer.monitoring.DriftRecorder`'s series from now on
        (``tablescore_feature_psi``, ``tablescore_prediction_psi``...: docs/monitoring.md)."""
        self.registry.register(recorder)

    def watch_stage_errors(self, errors: Any) -> None:
        """Export ``errors`` (a pipeline's :class:`~scorer.pipeline.StageErrors`) from now on."""
        self.stage_errors.errors = errors


class RequestSeries(Collector):
    """The series every request updates, as plain numbers under one lock, exported at scrape
    time with the names, labels and buckets of ordinary Prometheus counters, gauges and
    histograms:

    - ``tablescore_grpc_requests_total{method, code}``
    - ``tablescore_grpc_request_duration_seconds{method}`` (histogram)
    - ``tablescore_grpc_requests_in_flight``
    - ``tablescore_infer_requests_total{model, version, code}``
    - ``tablescore_infer_duration_seconds{model, version}`` (histogram)
    - ``tablescore_rows_scored_total{model, version}``

    prometheus_client takes a lock and several Python calls per update: the seven updates of a
    ModelInfer call cost 8.1 us on a 2-core test machine, against 0.8 us for one lock around
    plain additions (a single-row request's whole handler is about 35 us there).
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._bounds = tuple(float(b) for b in buckets)
        self._inflight = 0
        self._requests: dict[tuple[str, str], int] = {}
        # histograms: key -> [count per bucket (non-cumulative, the last one +Inf), sum]
        self._latency: dict[str, list[Any]] = {}
        self._infer: dict[tuple[str, str, str], int] = {}
        self._infer_latency: dict[tuple[str, str], list[Any]] = {}
        self._rows: dict[tuple[str, str], int] = {}

    # --- updates (request path) ---------------------------------------------------------------
    def started(self) -> None:
        """A request arrived (in flight until :meth:`finished`)."""
        with self._lock:
            self._inflight += 1

    def finished(self, method: str, code: str, seconds: float) -> None:
        """A request of ``method`` ended with status ``code`` after ``seconds``."""
        i = bisect_left(self._bounds, seconds)  # the first bucket whose bound is >= seconds
        key = (method, code)
        with self._lock:
            self._inflight -= 1
            self._requests[key] = self._requests.get(key, 0) + 1
            self._observe(self._latency, method, i, seconds)

    def inferred(self, model: str, version: str, rows: int, seconds: float) -> None:
        """A ModelInfer call scored ``rows`` rows of ``model`` / ``version``."""
        i = bisect_left(self._bounds, seconds)
        key = (model, version)
        ok = (model, version, "OK")
        with self._lock:
            self._infer[ok] = self._infer.get(ok, 0) + 1
            self._rows[key] = self._rows.get(key, 0) + rows
            self._observe(self._infer_latency, key, i, seconds)

    def _observe(self, table: dict[Any, list[Any]], key: Any, bucket: int,
                 seconds: float) -> None:
        """Add one observation to the histogram ``table[key]``; the caller holds the lock."""
        h = table.get(key)
        if h is None:
            h = table[key] = [[0] * (len(self._bounds) + 1), 0.0]
        h[0][bucket] += 1
        h[1] += seconds

    def infer_failed(self, model: str, version: str, code: str) -> None:
        """A ModelInfer call for ``model`` / ``version`` ("" when unknown) ended with
        ``code``."""
        key = (model, version, code)
        with self._lock:
            self._infer[key] = self._infer.get(key, 0) + 1

    # --- reading ------------------------------------------------------------------------------
    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's current value by its exposition name (``..._total``, ``..._count``,
        ``..._sum``, ``..._bucket`` with ``le``), or None: for tests and debugging."""
        labels = labels or {}
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    def collect(self) -> Iterator[Any]:
        with self._lock:
            inflight = self._inflight
            requests = dict(self._requests)
            latency = {k: (list(v[0]), v[1]) for k, v in self._latency.items()}
            infer = dict(self._infer)
            infer_latency = {k: (list(v[0]), v[1]) for k, v in self._infer_latency.items()}
            rows = dict(self._rows)
        yield _counter("tablescore_grpc_requests", "gRPC requests by method and status code",
                       ["method", "code"], requests)
        yield self._histogram("tablescore_grpc_request_duration_seconds",
                              "Time from receiving a request to its response, by method",
                              ["method"], {(k,): v for k, v in latency.items()})
        g = GaugeMetricFamily("tablescore_grpc_requests_in_flight",
                              "Requests being handled now")
        g.add_metric([], inflight)
        yield g
        yield _counter("tablescore_infer_requests",
                       "ModelInfer requests by model, version and status code",
                       ["model", "version", "code"], infer)
        yield self._histogram("tablescore_infer_duration_seconds",
                              "ModelInfer time in the server, by model",
                              ["model", "version"], infer_latency)
        yield _counter("tablescore_rows_scored", "Rows scored successfully, by model and version",
                       ["model", "version"], rows)

    def _histogram(self, name: str, doc: str, labels: list[str],
                   data: dict[tuple[str, ...], tuple[list[int], float]]) -> Any:
        h = HistogramMetricFamily(name, doc, labels=labels)
        for key, (counts, total) in sorted(data.items()):
            cumulative = 0
            buckets = []
            for bound, n in zip((*self._bounds, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            h.add_metric(list(key), buckets, total)
        return h


def _counter(name: str, doc: str, labels: list[str],
             data: dict[tuple[str, ...], int]) -> CounterMetricFamily:
    """A counter family with one sample per label tuple of ``data``."""
    c = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(data.items()):
        c.add_metric(list(key), n)
    return c


class StageErrorSeries(Collector):
    """``tablescore_pipeline_stage_errors_total{stage, kind}``: failures a pipeline stage
    absorbed without failing the request (an output cache that could not be read or written,
    a recorder that raised), read from the pipeline's :class:`~scorer.pipeline.StageErrors`
    at scrape time."""

    def __init__(self, errors: Any) -> None:
        self.errors = errors

    def collect(self) -> Iterator[Any]:
        data = self.errors.snapshot() if self.errors is not None else {}
        yield _counter("tablescore_pipeline_stage_errors",
                       "Stage failures absorbed without failing the request (the request was "
                       "still answered)", ["stage", "kind"], data)
