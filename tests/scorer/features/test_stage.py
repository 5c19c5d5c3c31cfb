"""The features stage's view metadata: what it caches, and for how long."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from scorer.features import FeatureStore
from scorer.features.loader import load
from scorer.features.stage import FeatureStage


class _Counting:
    """A store that counts its ``view`` calls."""

    def __init__(self, store: FeatureStore) -> None:
        self.store, self.calls = store, 0
        self.url = store.url

    def view(self, name: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.store.view(name)


def test_a_view_the_store_does_not_hold_is_asked_for_again_after_retry_after(
        store: FeatureStore, view_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import scorer.features.stage as stage_module

    now = [1000.0]  # the stage's clock (a loaded machine makes a real one skip ahead)
    monkeypatch.setattr(stage_module, "time", SimpleNamespace(
        monotonic=lambda: now[0], time=time.time, perf_counter=time.perf_counter))
    counting = _Counting(store)
    stage = FeatureStage(counting, {"m": {"view": view_name}},  # type: ignore[arg-type]
                         retry_after=0.2)
    for _ in range(50):  # requests to a model bound to an absent view: one store call
        assert stage.view(view_name) is None
    assert counting.calls == 1
    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "v.parquet")
    load(store, tmp_path / "v.parquet", view=view_name, entity="id")
    now[0] += 0.15
    assert stage.view(view_name) is None  # (still within retry_after)
    now[0] += 0.1
    meta = stage.view(view_name)
    assert meta is not None and meta.entity == "id" and counting.calls == 2
    for _ in range(10):  # a view it holds: cached for meta_ttl
        assert stage.view(view_name) is meta
    assert counting.calls == 2


def test_a_lookup_that_cannot_read_the_view_is_counted_as_a_store_error(
        tmp_path: Path) -> None:
    import numpy as np
    import pytest

    from scorer.errors import UnavailableError
    from scorer.features import open_store
    from scorer.pipeline import Request
    from tests.services import RedisServer

    server = RedisServer()
    server.kill()  # unreachable since the stage started: the view's metadata never read
    stage = FeatureStage(open_store(server.url, timeout=0.2),
                         {"m": {"view": "v", "entity": "id"}})

    class Target:
        name, version, model = "m", "1", None

    for _ in range(2):
        with pytest.raises(UnavailableError):
            stage.fill(Target(), Request(None, 1, [], extras={"id": np.array([1])}))
    assert stage.metrics.store_errors.labels("v")._value.get() == 2


def test_sqlite_close_closes_every_threads_connection(tmp_path: Path) -> None:
    import sqlite3
    import threading

    import pytest

    from scorer.features import open_store

    store = open_store(f"sqlite:///{tmp_path}/f.db")
    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "v.parquet")
    load(store, tmp_path / "v.parquet", view="v", entity="id")
    meta = store.view("v")
    conns = []

    def read() -> None:
        assert store.read(meta, ["2"], ["x"]).columns["x"].tolist() == [1.5]
        conns.append(store._db())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conns.append(store._db())  # type: ignore[attr-defined]
    assert len({id(c) for c in conns}) == 4
    store.close()
    for c in conns:  # all closed, the worker threads' too
        with pytest.raises(sqlite3.ProgrammingError):
            c.execute("SELECT 1")
    assert store.read(meta, ["1"], ["x"]).columns["x"].tolist() == [0.5]  # opened again
    store.close()


def test_a_failing_store_is_not_asked_for_metadata_it_gave_within_retry_after(
        store: FeatureStore, view_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung store past meta_ttl: each request pays its read's timeout, not one more for a
    metadata refresh (a hang answered in 2-3 timeouts)."""
    import numpy as np

    import scorer.features.stage as stage_module
    from scorer.errors import UnavailableError
    from scorer.pipeline import Request

    now = [1000.0]
    monkeypatch.setattr(stage_module, "time", SimpleNamespace(
        monotonic=lambda: now[0], time=time.time, perf_counter=time.perf_counter))
    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "v.parquet")
    load(store, tmp_path / "v.parquet", view=view_name, entity="id")

    class Hung(_Counting):
        down = False
        reads = 0

        def view(self, name: str):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.down:
                raise UnavailableError("timed out")
            return self.store.view(name)

        def read(self, meta, keys, features):  # type: ignore[no-untyped-def]
            self.reads += 1
            if self.down:
                raise UnavailableError("timed out")
            return self.store.read(meta, keys, features)

    hung = Hung(store)
    stage = FeatureStage(hung, {"m": {"view": view_name, "entity": "id"}},  # type: ignore
                         meta_ttl=30.0, retry_after=1.0)
    from sklearn.linear_model import LogisticRegression

    import exporters
    import scorer

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    exporters.export(LogisticRegression().fit(X, [0, 0, 1, 1]), tmp_path / "b", sample=X)

    class Target:
        name, version, model = "m", "1", scorer.load(tmp_path / "b")

    def request() -> None:
        stage.fill(Target(), Request(None, 1, [], extras={"id": np.array([1])}))

    request()
    assert hung.calls == 1
    now[0] += 31.0  # the metadata is old now
    hung.down = True
    calls = hung.calls
    for _ in range(3):  # three requests within retry_after of the failed read
        with pytest.raises(UnavailableError):
            request()
        now[0] += 0.3
    assert hung.calls - calls == 1  # one metadata refresh tried, then the cached metadata
    assert hung.reads == 4  # (each request: its own read, one timeout)
