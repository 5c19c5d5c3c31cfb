"""Prometheus metrics of one server process, in a registry of its own.

A private registry (instead of prometheus_client's global one) lets several servers run in one
process, as the tests and embedding applications do, without their series colliding.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

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
        self.requests = Counter(
            "tablescore_grpc_requests", "gRPC requests by method and status code",
            ["method", "code"], registry=r)
        self.latency = Histogram(
            "tablescore_grpc_request_duration_seconds",
            "Time from receiving a request to its response, by method", ["method"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge(
            "tablescore_grpc_requests_in_flight", "Requests being handled now", registry=r)
        self.infer = Counter(
            "tablescore_infer_requests", "ModelInfer requests by model, version and status code",
            ["model", "version", "code"], registry=r)
        self.infer_latency = Histogram(
            "tablescore_infer_duration_seconds", "ModelInfer time in the server, by model",
            ["model", "version"], buckets=_LATENCY_BUCKETS, registry=r)
        self.rows = Counter(
            "tablescore_rows_scored", "Rows scored successfully, by model and version",
            ["model", "version"], registry=r)
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
