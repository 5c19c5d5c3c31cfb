"""The recorder on less common requests and deployments: data frames in any column order,
requests it cannot count, one model object under two names, a version reloaded with new
parameters."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sklearn.linear_model import LinearRegression

import exporters
import scorer
from scorer.monitoring import DriftRecorder, Profile, WindowCounts
from scorer.monitoring.profile import count_columns
from scorer.pipeline import ModelResolver, Pipeline
from scorer.pipeline.request import Request

from .conftest import reference_data

NAMES = ["x0", "x1", "x2", "x3"]


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _expected(model: scorer.Model, X: np.ndarray) -> np.ndarray:
    """What counting the rows ``X`` (model input order) adds, by the reference code."""
    profile = Profile.from_json(model.bundle.drift_reference)
    return count_columns(profile.zeros(), {n: X[:, j] for j, n in enumerate(NAMES)},
                         model.score_arrays(X))


def _series(rec: DriftRecorder, name: str) -> list[str]:
    """The exposition lines of the samples of ``name``."""
    reg = CollectorRegistry()
    reg.register(rec)
    return [line for line in generate_latest(reg).decode().splitlines()
            if line.startswith(name + "{")]


@pytest.mark.parametrize(("rows", "sample"), [(1, 1.0), (100, 1.0), (1000, 1.0), (1000, 0.5)])
def test_data_frames_are_counted_by_column_name(linear_bundle: Path, rows: int,
                                                sample: float) -> None:
    """The model reads a frame's columns by name: so does the counting, whatever the
    frame's column order and whatever other columns it has (one-row, small, large and
    sampled requests)."""
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0, sample=sample)
    pipe = Pipeline(ModelResolver({"linear": model}), recorders=[rec])
    X = reference_data(31, rows)
    X[:, 3] += 3.0  # a column that lands in other bins than its neighbours
    df = pd.DataFrame(X, columns=NAMES)[NAMES[::-1]]
    df["request_id"] = np.arange(rows)  # not a model input
    pipe("linear", df)
    (w,) = rec.current("linear", model.version)
    picked = X[::round(1 / sample)] if rows >= 256 else X
    assert w.rows == len(picked)
    assert np.array_equal(w.counts, _expected(model, picked))


def test_requests_that_cannot_be_counted_lose_only_their_rows(linear_bundle: Path,
                                                              caplog) -> None:
    """A request the binner cannot read costs only its own rows, counted as dropped (one
    warning per failed batch), never those counted beside it."""
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    resolver = ModelResolver({"linear": model})
    pipe = Pipeline(resolver, recorders=[rec])
    target = resolver.resolve("linear")
    X = reference_data(32, 370)
    for x in X[:50]:  # one-row requests (the input-row buffer)
        pipe("linear", x.reshape(1, -1))
    pipe("linear", X[50:60])
    # small requests of the wrong width (the window's batch fails) that fail alone too (a
    # scalar for an output)
    for n in (3, 2):
        rec.record(target, Request(np.zeros((n, 5)), n, ["value"]),
                   {"value": np.float64(0.0)})
    pipe("linear", X[60:70])
    # a large request (a kernel call of its own) with a scalar for a column
    rec.record(target, Request({"x0": np.float64(1.0)}, 300, ["value"]), {})
    pipe("linear", X[70:])
    with caplog.at_level(logging.WARNING, logger="tablescore.drift"):
        (w,) = rec.current("linear", model.version)
    assert w.rows == len(X) and np.array_equal(w.counts, _expected(model, X))
    assert rec.dropped("linear", model.version) == 3 + 2 + 300
    lost = [r for r in caplog.records if getattr(r, "event", "") == "drift_uncountable"]
    assert sorted(r.rows for r in lost) == [5, 300]
    assert (f'tablescore_drift_dropped_rows_total{{model="linear",version="{model.version}"}}'
            ' 305.0') in _series(rec, "tablescore_drift_dropped_rows_total")


def test_one_model_object_under_two_names_counts_each_name(linear_bundle: Path) -> None:
    model = scorer.load(linear_bundle)
    rec = DriftRecorder(60, clock=Clock(), flush_interval=0)
    pipe = Pipeline(ModelResolver({"churn": model, "churn-eu": model}), recorders=[rec])
    X = reference_data(33, 300)
    X[:, 1] += 1.0
    Y = reference_data(34, 300)
    for a in range(0, 300, 30):  # the names take turns, one-row and small requests
        pipe("churn", X[a:a + 1])
        pipe("churn-eu", Y[a:a + 1])
        pipe("churn", X[a + 1:a + 30])
        pipe("churn-eu", Y[a + 1:a + 30])
    (a,) = rec.current("churn", model.version)
    (b,) = rec.current("churn-eu", model.version)
    assert a.rows == b.rows == 300
    assert np.array_equal(a.counts, _expected(model, X))
    assert np.array_equal(b.counts, _expected(model, Y))


class _Windows:
    """A sink keeping every finished window."""

    def __init__(self) -> None:
        self.windows: list[WindowCounts] = []

    def flush(self, window: WindowCounts) -> None:
        self.windows.append(window)


def test_a_version_reloaded_with_new_parameters_keeps_one_series(
        linear_bundle: Path, tmp_path: Path) -> None:
    """Same model name and version, new fingerprint: one counter series per version (the
    fingerprints' rows add up); the unloaded model's monitor is forgotten once its last
    window is reported, and its rows stay in the counters."""
    X0 = reference_data(35)
    est = LinearRegression().fit(X0, X0 @ np.array([0.5, 1.0, -1.0, 2.0]))
    exporters.export(est, tmp_path / "b", sample=X0, name="linear")
    old, new = scorer.load(linear_bundle), scorer.load(tmp_path / "b")
    version = old.version or "1"
    assert (new.version or "1") == version and old.fingerprint != new.fingerprint
    clock, sink = Clock(1000.0), _Windows()
    rec = DriftRecorder(60, clock=clock, flush_interval=0, sink=sink)
    pipe = Pipeline(ModelResolver({"linear": old}), recorders=[rec])
    pipe("linear", reference_data(36, 100))
    pipe = Pipeline(ModelResolver({"linear": new}), recorders=[rec])  # the reload
    pipe("linear", reference_data(37, 40))
    labels = f'{{model="linear",version="{version}"}}'
    assert _series(rec, "tablescore_drift_rows_total") == [
        f"tablescore_drift_rows_total{labels} 140.0"]
    assert _series(rec, "tablescore_drift_dropped_rows_total") == [
        f"tablescore_drift_dropped_rows_total{labels} 0.0"]
    del old
    gc.collect()
    rec.tick()  # its window has not ended: kept
    assert len(rec.current("linear", version)) == 2
    clock.t += 60
    pipe("linear", reference_data(38, 10))
    rec.tick()
    assert sorted((w.fingerprint == new.fingerprint, w.rows) for w in sink.windows) == [
        (False, 100), (True, 40)]
    (w,) = rec.current("linear", version)
    assert w.fingerprint == new.fingerprint and w.rows == 10
    assert len([m for m in rec._monitors.values() if m is not None]) == 1
    assert _series(rec, "tablescore_drift_rows_total") == [
        f"tablescore_drift_rows_total{labels} 150.0"]
