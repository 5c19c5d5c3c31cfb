"""The Redis backend with what another client may leave in the store: connections Redis
closed, metadata and values that do not follow the layout (docs/features.md)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from scorer.errors import FeatureDataError, UnavailableError
from scorer.features import open_store, redis_store, resp
from scorer.features.loader import load
from scorer.features.redis_store import RedisStore
from scorer.features.stage import FeatureStage
from scorer.features.store import ViewMeta
from scorer.pipeline import Request


@pytest.fixture(params=["compiled", "hiredis"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Stores read answers by the compiled reader (scorer.features.resp), or through
    hiredis (until it is compiled; views with strings)."""
    if request.param == "compiled":
        resp.warm()
    else:
        monkeypatch.setattr(redis_store, "resp_ready", lambda: False)
    return str(request.param)


# every test, with each reader (rstore, raw, view_name: conftest)
pytestmark = pytest.mark.usefixtures("reader")


def _load(store: RedisStore, view: str, tmp_path: Path, n: int = 3, k: int = 2) -> ViewMeta:
    df = pd.DataFrame({"id": np.arange(n), **{f"x{j}": np.arange(n) + j / 10 for j in range(k)}})
    df.to_parquet(tmp_path / "v.parquet")
    load(store, tmp_path / "v.parquet", view=view, entity="id")
    meta = store.view(view)
    assert meta is not None
    return meta


def test_a_connection_redis_closed_is_replaced_on_the_next_read(
        rstore: RedisStore, raw: redis.Redis, view_name: str, tmp_path: Path) -> None:
    meta = _load(rstore, view_name, tmp_path)
    assert rstore.read(meta, ["1"], ["x0"]).found.tolist() == [True]
    conn = rstore._connection()
    conn.send_command("CLIENT", "ID")
    raw.client_kill_filter(_id=conn.read_response())  # as a restart or an idle timeout does
    rows = rstore.read(meta, ["1", "2"], ["x0"])  # no UNAVAILABLE: Redis is up
    assert rows.found.tolist() == [True, True]
    assert rows.columns["x0"].tolist() == [1.0, 2.0]


def test_a_store_that_is_down_is_still_unavailable(view_name: str, tmp_path: Path) -> None:
    from tests.services import RedisServer

    server = RedisServer()
    try:
        s = open_store(server.url)
        meta = _load(s, view_name, tmp_path)  # type: ignore[arg-type]
        assert s.read(meta, ["0"], ["x0"]).found.tolist() == [True]
        server.kill()
        with pytest.raises(UnavailableError):
            s.read(meta, ["0"], ["x0"])
        s.close()
    finally:
        server.kill()


def test_each_thread_reads_on_its_own_connection_and_close_disconnects_them(
        rstore: RedisStore, view_name: str, tmp_path: Path) -> None:
    meta = _load(rstore, view_name, tmp_path)
    got: list = []
    ready, done = threading.Barrier(4, timeout=60), threading.Event()

    def read() -> None:
        got.append((rstore.read(meta, ["2"], ["x1"]).columns["x1"][0], rstore._connection()))
        ready.wait()
        done.wait(10)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    ready.wait()
    assert [v for v, _ in got] == [2.1] * 3
    conns = {id(c) for _, c in got}
    assert len(conns) == 3 and id(rstore._connection()) not in conns
    done.set()
    for t in threads:
        t.join()
    rstore.close()
    assert all(c._sock is None for _, c in got)


def test_metadata_that_does_not_follow_the_layout(rstore: RedisStore, raw: redis.Redis,
                                                   view_name: str) -> None:
    key = f"ts:v:{view_name}"
    raw.hset(key, mapping={"entity": "id", "features": '["a"]'})  # no "types"
    with pytest.raises(FeatureDataError, match="no field 'types'"):
        rstore.view(view_name)
    raw.hset(key, "types", '{"a": "complex"}')
    with pytest.raises(FeatureDataError, match="layout"):
        rstore.view(view_name)
    raw.delete(key)
    raw.set(key, "a string")
    with pytest.raises(FeatureDataError, match="cannot be read as a hash"):
        rstore.view(view_name)


def test_the_stage_serves_full_rows_beside_a_view_it_cannot_read(
        rstore: RedisStore, raw: redis.Redis, view_name: str) -> None:
    raw.hset(f"ts:v:{view_name}", mapping={"entity": "id", "features": "not json",
                                           "types": "{}"})
    stage = FeatureStage(rstore, {"m": {"view": view_name}}, retry_after=60)

    class Target:
        name, version, model = "m", "1", None

    assert stage.extra_inputs(Target()) == frozenset()  # full rows: no id column to take
    calls = []
    view = rstore.view
    rstore.view = lambda name: calls.append(name) or view(name)  # type: ignore[method-assign]
    for _ in range(5):  # an entity request: the store's data is wrong, said in its terms
        with pytest.raises(FeatureDataError, match=f"feature view '{view_name}'"):
            stage.fill(Target(), Request(None, 1, [], extras={"id": np.array([1])}))
    assert len(calls) <= 1  # asked again after retry_after, not on every request


@pytest.mark.parametrize("ids", [1, 600])  # Python's float, then one Arrow cast
@pytest.mark.parametrize("value", [b" 7", b"1_000", b"seven", b""])
def test_a_stored_value_that_is_not_a_number_is_refused_whatever_the_request_size(
        rstore: RedisStore, raw: redis.Redis, view_name: str, tmp_path: Path, ids: int,
        value: bytes) -> None:
    meta = _load(rstore, view_name, tmp_path, n=ids)
    raw.hset(f"ts:f:{view_name}:0", "x1", value)
    with pytest.raises(FeatureDataError, match=r"entity '0' holds x1 = b'.*', which is not "
                                               "a double"):
        rstore.read(meta, [str(i) for i in range(ids)], ["x0", "x1"])


def test_a_stored_timestamp_or_key_that_is_not_one(rstore: RedisStore, raw: redis.Redis,
                                                   view_name: str, tmp_path: Path) -> None:
    meta = _load(rstore, view_name, tmp_path)
    for ts in (b"1.5e15", b"99999999999999999999999", b" 12"):
        raw.hset(f"ts:f:{view_name}:1", "_ts", ts)
        with pytest.raises(FeatureDataError, match="entity '1' holds _ts"):
            rstore.read(meta, ["0", "1"], ["x0", "x1"])
    raw.delete(f"ts:f:{view_name}:1")
    raw.set(f"ts:f:{view_name}:1", "not a hash")
    with pytest.raises(FeatureDataError, match=rf"feature view '{view_name}': entity '1' "
                       rf"\(key ts:f:{view_name}:1\) cannot be read as a hash"):
        rstore.read(meta, ["0", "1", "2"], ["x0", "x1"])
    raw.delete(f"ts:f:{view_name}:1")
    rows = rstore.read(meta, ["0", "1", "2"], ["x0", "x1"])  # the connection still serves
    assert rows.found.tolist() == [True, False, True]


def test_a_view_loaded_again_with_more_features_reads_the_new_way(
        rstore: RedisStore, view_name: str, tmp_path: Path) -> None:
    meta = _load(rstore, view_name, tmp_path, k=1)
    assert rstore.read(meta, ["1"], ["x0"]).columns["x0"].tolist() == [1.0]  # HGETALL
    rstore.delete_view(view_name)
    meta = _load(rstore, view_name, tmp_path, k=3)
    rows = rstore.read(meta, ["1"], ["x0"])  # one of three features: HMGET
    assert rows.found.tolist() == [True] and rows.columns["x0"].tolist() == [1.0]
