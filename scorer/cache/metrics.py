"""Prometheus series of the output cache (registered on the server's /metrics)."""

from __future__ import annotations

import threading

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class CacheMetrics(Collector):
    """``tablescore_cache_lookups_total{backend, result}`` (result ``hit``, ``miss`` or
    ``error``; an error is also in ``tablescore_pipeline_stage_errors_total``)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self.counts = {"hit": 0, "miss": 0, "error": 0}

    def _add(self, result: str) -> None:
        with self._lock:
            self.counts[result] += 1

    def hit(self) -> None:
        self._add("hit")

    def miss(self) -> None:
        self._add("miss")

    def error(self) -> None:
        self._add("error")

    def collect(self):  # type: ignore[override]
        c = CounterMetricFamily("tablescore_cache_lookups", "Output cache lookups by result "
                                "(hit, miss, error: the request was scored)",
                                labels=["backend", "result"])
        with self._lock:
            for result, n in self.counts.items():
                c.add_metric([self.backend, result], n)
        yield c
