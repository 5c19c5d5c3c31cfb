"""Fleet windows: replicas flush finished windows to the registry's database (SQLite and a
fresh PostgreSQL database), and the merged counts of two replicas equal one process's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scorer
from scorer.monitoring import DriftRecorder, Profile
from scorer.monitoring.drift import compare_flat
from scorer.monitoring.fleet import FleetWindows
from scorer.pipeline import ModelResolver, Pipeline
from scorer.registry import open_store

from .conftest import N, reference_data


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _traffic(pipe: Pipeline, X: np.ndarray) -> None:
    """Requests of several sizes, one-row ones included."""
    for chunk in np.array_split(X[:-50], 9):
        pipe("linear", chunk)
    for row in X[-50:]:
        pipe("linear", row.reshape(1, -1))


def test_two_replicas_merged_equal_one_process(store_url: str, linear_bundle: Path) -> None:
    model = scorer.load(linear_bundle)
    X = reference_data(11)
    X[:, 2] += 1.0  # one standard deviation
    clock = Clock(6000.5)
    store = open_store(store_url)
    try:
        sinks = [FleetWindows(store, replica_id=f"r{k}") for k in range(2)]
        replicas = [DriftRecorder(60, clock=clock, sink=s, flush_interval=0) for s in sinks]
        alone = DriftRecorder(60, clock=clock, flush_interval=0)
        for rec, part in ((replicas[0], X[:1700]), (replicas[1], X[1700:]), (alone, X)):
            _traffic(Pipeline(ModelResolver({"linear": model}), recorders=[rec]), part)
        clock.t += 60  # the window has ended: the next tick finishes and flushes it
        for rec in (*replicas, alone):
            rec.tick()
        assert all(s.wait_written(30) for s in sinks)
        profile = Profile.from_json(model.bundle.drift_reference)
        fleet = FleetWindows(store, writer=False)
        assert fleet.windows("linear", model.version) == [(6000.0, 2, N)]
        merged = fleet.merged(profile, "linear", model.version, 6000.0)
        (start, rows, drift) = alone.report()[("linear", model.version)]
        assert merged is not None and merged.replicas == 2 and merged.rows == rows == N
        assert start == merged.start == 6000.0
        # must hold: two processes' counts summed == one process counting every row
        alone_counts = _last_window(alone).counts
        assert np.array_equal(merged.counts, alone_counts)
        psi = {d.name: d.psi for d in merged.drift(profile)}
        assert psi == {d.name: d.psi for d in drift}
        assert psi["x2"] >= 0.2 and max(psi["x0"], psi["x1"], psi["x3"]) < 0.1
        # a retried flush (its acknowledgement lost) does not count twice
        assert sinks[0].write(_last_window(replicas[0])) is False
        assert np.array_equal(fleet.merged(profile, "linear", model.version, 6000.0).counts,
                              alone_counts)
        latest = fleet.latest(profile, "linear", model.version, before=clock.t)
        assert latest is not None and latest.start == 6000.0
        assert fleet.latest(profile, "linear", model.version, before=6059.0) is None
        for s in sinks:
            s.close()
    finally:
        store.close()


class _Keep:
    def __init__(self) -> None:
        self.windows: list = []


def _last_window(rec: DriftRecorder):
    """The last window ``rec`` finished (remembered by the fixture below)."""
    return rec._test_keep.windows[-1]


@pytest.fixture(autouse=True)
def _remember_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remember every window a recorder finishes (for comparing with the database)."""
    finish = DriftRecorder._finish

    def spy(self, m, done):
        keep = getattr(self, "_test_keep", None)
        if keep is None:
            keep = self._test_keep = _Keep()
        keep.windows.append(done)
        finish(self, m, done)

    monkeypatch.setattr(DriftRecorder, "_finish", spy)


def test_fleet_gauges_after_flush(store_url: str, linear_bundle: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    model = scorer.load(linear_bundle)
    clock = Clock(12000.0)
    store = open_store(store_url)
    try:
        sink = FleetWindows(store, replica_id="solo")
        rec = DriftRecorder(30, clock=clock, sink=sink, flush_interval=0)
        X = reference_data(12)
        X[:, 0] += 1.0
        _traffic(Pipeline(ModelResolver({"linear": model}), recorders=[rec]), X)
        clock.t += 45
        rec.tick()
        assert sink.wait_written(30)
        registry = CollectorRegistry()
        registry.register(sink.collector(rec, settle_s=10, cache_s=0))
        text = generate_latest(registry).decode()
        assert (f'tablescore_fleet_drift_window_rows{{model="linear",version="{model.version}"}}'
                f' {float(N)}') in text
        assert 'tablescore_fleet_drift_window_replicas{model="linear"' in text
        line = next(ln for ln in text.splitlines()
                    if ln.startswith('tablescore_fleet_feature_psi{feature="x0"'))
        assert float(line.rsplit(" ", 1)[1]) >= 0.2
        sink.close()
    finally:
        store.close()


def test_close_flushes_the_current_window(tmp_path: Path, linear_bundle: Path) -> None:
    model = scorer.load(linear_bundle)
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        sink = FleetWindows(store, replica_id="stopping")
        rec = DriftRecorder(300, clock=Clock(900.0), sink=sink, flush_interval=0)
        pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
        pipe("linear", reference_data(3, 120))
        rec.close()  # a replica shutting down mid-window: its rows so far are not lost
        fleet = FleetWindows(store, writer=False)
        assert fleet.windows("linear", model.version) == [(900.0, 1, 120)]
        profile = Profile.from_json(model.bundle.drift_reference)
        w = fleet.merged(profile, "linear", model.version, 900.0)
        expected = compare_flat(profile, profile.flat_counts(), w.counts)
        assert all(d.current_rows == 120 for d in expected)
    finally:
        store.close()


def test_database_lost_then_back_writes_each_window_once(linear_bundle: Path) -> None:
    """A flush while PostgreSQL is unreachable is retried until it is back; the window is
    written once."""
    from tests.services import PG_HOST, TcpProxy, fresh_database

    model = scorer.load(linear_bundle)
    host, port = PG_HOST.rsplit("@", 1)[1].split(":")
    with fresh_database() as url:
        proxy = TcpProxy(host, int(port)).start()
        store = open_store(f"postgresql://postgres@127.0.0.1:{proxy.port}/"
                           f"{url.rsplit('/', 1)[1]}", connect_timeout=1.0)
        direct = open_store(url)
        try:
            sink = FleetWindows(store, replica_id="flaky", retry_s=0.2)
            clock = Clock(30000.0)
            rec = DriftRecorder(60, clock=clock, sink=sink, flush_interval=0)
            _traffic(Pipeline(ModelResolver({"linear": model}), recorders=[rec]),
                     reference_data(13, 600))
            proxy.cut()
            clock.t += 60
            rec.tick()  # the window ends while the database is away
            assert not sink.wait_written(2.0) and sink.failures >= 1
            proxy.start()
            assert sink.wait_written(30)
            fleet = FleetWindows(direct, writer=False)
            assert fleet.windows("linear", model.version) == [(30000.0, 1, 600)]
            profile = Profile.from_json(model.bundle.drift_reference)
            w = fleet.merged(profile, "linear", model.version, 30000.0)
            assert np.array_equal(w.counts, _last_window(rec).counts)
            sink.close()
        finally:
            proxy.cut()
            store.close()
            direct.close()
