"""Drift monitoring through the server: gRPC traffic (tritonclient) -> PSI gauges on /metrics."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import exporters
import scorer
from scorer.server import serve
from scorer.server.config import ServerConfig

from .conftest import infer_matrix, publish, tc

WINDOW = 2.0


def _gauges(text: str, name: str) -> dict[str, float]:
    """``{feature or output label: value}`` of the samples of ``name``."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1:].rsplit("} ", 1)
            pairs = dict(kv.split("=", 1) for kv in labels.split(","))
            key = pairs.get("feature", pairs.get("output", "")).strip('"')
            out[key] = float(value)
    return out


@pytest.fixture(scope="module")
def drift_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 4))
    est = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5, 0.0]))
    src = tmp_path_factory.mktemp("drift") / "linear"
    exporters.export(est, src, sample=X, name="linear", feature_names=["a", "b", "c", "d"])
    repo = tmp_path_factory.mktemp("drift_repo")
    publish(src, repo, "linear", 1)
    return repo


def test_shifted_feature_shows_on_metrics_after_grpc_traffic(drift_repo: Path) -> None:
    with serve(drift_repo, port=0, metrics_port=0, poll_interval=0, drift_window=WINDOW,
               ready_timeout=60) as server:
        X = np.random.default_rng(3).normal(size=(4000, 4))
        X[:, 1] += 1.0  # one standard deviation
        client = tc.InferenceServerClient(server.address)
        try:
            # start right after a window boundary so that every row lands in one window
            time.sleep(WINDOW - time.time() % WINDOW + 0.05)
            for chunk in np.array_split(X, 20):
                infer_matrix(client, "linear", chunk)
        finally:
            client.close()
        time.sleep(WINDOW - time.time() % WINDOW + 0.05)  # that window has ended
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    psi = _gauges(text, "tablescore_feature_psi")
    assert set(psi) == {"a", "b", "c", "d"}, text
    assert psi["b"] >= 0.2
    assert max(psi["a"], psi["c"], psi["d"]) < 0.1, psi
    out = _gauges(text, "tablescore_prediction_psi")
    assert out["value"] >= 0.1
    assert 'tablescore_feature_psi{feature="b",model="linear",version="1"}' in text
    assert 'tablescore_drift_window_rows{model="linear",version="1"} 4000.0' in text
    assert 'tablescore_drift_rows_total{model="linear",version="1"} 4000.0' in text
    assert _gauges(text, "tablescore_feature_js_distance")["b"] > 0.1


def test_drift_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drift-thresholds"):
        ServerConfig(repository=tmp_path, drift_thresholds="0.2;0.1")
    with pytest.raises(ValueError, match="drift-window"):
        ServerConfig(repository=tmp_path, drift_window=-1)
    assert ServerConfig(repository=tmp_path, drift_window=0).drift_window == 0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="drift-sample"):
            ServerConfig(repository=tmp_path, drift_window=60, drift_sample=bad)
    assert ServerConfig(repository=tmp_path, drift_sample=0.05).drift_sample == 0.05


def test_replica_of_a_registry_flushes_its_windows(drift_repo: Path, tmp_path: Path) -> None:
    from scorer.monitoring import Profile
    from scorer.monitoring.fleet import FleetWindows
    from scorer.registry import open_store

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = open_store(url)
    store.publish(drift_repo / "linear" / "1", "linear")
    X = np.random.default_rng(4).normal(size=(2000, 4))
    X[:, 1] += 1.0
    with serve(tmp_path / "replica", port=0, metrics_port=0, store=url, drift_window=WINDOW,
               ready_timeout=60) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            time.sleep(WINDOW - time.time() % WINDOW + 0.05)
            for chunk in np.array_split(X, 10):
                infer_matrix(client, "linear", chunk)
        finally:
            client.close()
        fleet = FleetWindows(store, writer=False)
        deadline = time.time() + 30
        while time.time() < deadline and not fleet.windows("linear", "1"):
            time.sleep(0.2)  # the window ends, the counting thread finishes and flushes it
        (start, replicas, rows), = fleet.windows("linear", "1")
        assert (replicas, rows) == (1, 2000)
        time.sleep(max(0.0, start + 2 * WINDOW + 0.1 - time.time()))  # settled
        url_m = f"http://127.0.0.1:{server.metrics_port}/metrics"
        text = urllib.request.urlopen(url_m, timeout=10).read().decode()
    assert 'tablescore_fleet_drift_window_rows{model="linear",version="1"} 2000.0' in text
    assert _gauges(text, "tablescore_fleet_feature_psi")["b"] >= 0.2
    bundle = scorer.load(drift_repo / "linear" / "1").bundle
    merged = fleet.merged(Profile.from_json(bundle.drift_reference), "linear", "1", start)
    assert merged is not None and int(merged.counts.sum()) == 2000 * 5  # 4 inputs, 1 output
    store.close()
