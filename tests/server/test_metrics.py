"""``scorer.server.metrics.RequestSeries``: the per-request series as Prometheus exposes them
(counters, a gauge, histograms with cumulative buckets), exact under concurrent updates."""

from __future__ import annotations

import threading

from prometheus_client import generate_latest

from scorer.server.metrics import Metrics


def test_series_in_the_exposition_format():
    m = Metrics()
    calls = m.calls
    calls.started()
    calls.finished("ModelInfer", "OK", 0.0004)
    calls.started()
    calls.finished("ModelInfer", "OK", 0.0025)  # on a bound: counted in le="0.0025"
    calls.started()
    calls.finished("ModelMetadata", "NOT_FOUND", 20.0)  # above every bound: +Inf only
    calls.started()  # still in flight
    calls.inferred("iris", "1", 3, 0.0003)
    calls.inferred("iris", "1", 2, 0.0007)
    calls.infer_failed("", "", "NOT_FOUND")
    text = generate_latest(m.registry).decode()
    for line in (
            'tablescore_grpc_requests_total{code="OK",method="ModelInfer"} 2.0',
            'tablescore_grpc_requests_total{code="NOT_FOUND",method="ModelMetadata"} 1.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="0.00025",method="ModelInfer"}'
            ' 0.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="0.0005",method="ModelInfer"}'
            ' 1.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="0.0025",method="ModelInfer"}'
            ' 2.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="+Inf",method="ModelInfer"} 2.0',
            'tablescore_grpc_request_duration_seconds_count{method="ModelInfer"} 2.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="10.0",method="ModelMetadata"}'
            ' 0.0',
            'tablescore_grpc_request_duration_seconds_bucket{le="+Inf",method="ModelMetadata"}'
            ' 1.0',
            "tablescore_grpc_requests_in_flight 1.0",
            'tablescore_infer_requests_total{code="OK",model="iris",version="1"} 2.0',
            'tablescore_infer_requests_total{code="NOT_FOUND",model="",version=""} 1.0',
            'tablescore_rows_scored_total{model="iris",version="1"} 5.0',
            'tablescore_infer_duration_seconds_count{model="iris",version="1"} 2.0',
            'tablescore_infer_duration_seconds_bucket{le="0.0005",model="iris",version="1"} 1.0',
    ):
        assert line in text, line
    assert abs(calls.value("tablescore_grpc_request_duration_seconds_sum",
                           {"method": "ModelInfer"}) - 0.0029) < 1e-12
    assert "# TYPE tablescore_grpc_request_duration_seconds histogram" in text
    assert "# TYPE tablescore_rows_scored_total counter" in text


def test_concurrent_updates_are_all_counted():
    calls = Metrics().calls

    def work():
        for _ in range(5000):
            calls.started()
            calls.inferred("m", "1", 2, 0.001)
            calls.finished("ModelInfer", "OK", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.value("tablescore_grpc_requests_total",
                       {"method": "ModelInfer", "code": "OK"}) == 20000
    assert calls.value("tablescore_rows_scored_total", {"model": "m", "version": "1"}) == 40000
    assert calls.value("tablescore_grpc_requests_in_flight") == 0
    assert calls.value("tablescore_infer_duration_seconds_bucket",
                       {"model": "m", "version": "1", "le": "0.001"}) == 20000
