"""Prometheus series of the features stage (registered on the server's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: lookup latencies (seconds): a local Redis answers in ~0.1-1 ms, a timeout is 0.3 s
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0)


class FeatureMetrics:
    """Counters and a histogram, not registered anywhere until the server does it.

    Attributes
    ----------
    values : Counter
        ``tablescore_features_values_total{view, status}``: looked-up feature values by
        status (PRESENT, NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE).
    store_seconds : Histogram
        ``tablescore_features_store_seconds{view}``: one lookup (all ids of a request).
    store_errors : Counter
        ``tablescore_features_store_errors_total{view}``: lookups the store did not answer.
    """

    def __init__(self) -> None:
        self.values = Counter("tablescore_features_values", "Feature values looked up, by "
                              "status (PRESENT, NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE)",
                              ["view", "status"], registry=None)
        self.store_seconds = Histogram("tablescore_features_store_seconds", "Feature store "
                                       "lookup latency (all ids of one request)", ["view"],
                                       buckets=STORE_BUCKETS, registry=None)
        self.store_errors = Counter("tablescore_features_store_errors", "Feature lookups the "
                                    "store did not answer (requests answered UNAVAILABLE)",
                                    ["view"], registry=None)

        # the labelled children by label values: ``labels()`` takes a lock and builds its key
        # on every call (~2 us each, several per request)
        self._values: dict[tuple[str, str], object] = {}
        self._seconds: dict[str, object] = {}

    def count(self, view: str, by_status: dict[str, int]) -> None:
        for status, n in by_status.items():
            if n:
                child = self._values.get((view, status))
                if child is None:
                    child = self._values[(view, status)] = self.values.labels(view, status)
                child.inc(n)  # type: ignore[attr-defined]

    def observe_store(self, view: str, seconds: float) -> None:
        """One lookup's latency into ``store_seconds{view}``."""
        child = self._seconds.get(view)
        if child is None:
            child = self._seconds[view] = self.store_seconds.labels(view)
        child.observe(seconds)  # type: ignore[attr-defined]

    def collectors(self) -> list:
        return [self.values, self.store_seconds, self.store_errors]
