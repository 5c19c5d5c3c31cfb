"""The output cache: exact keys, LRU by bytes, a collision never answers, a failing cache
is skipped and counted by the pipeline."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis

from scorer.cache import LocalCache, RedisCache, open_cache, request_key
from scorer.cache import local as local_mod
from scorer.cache.key import Uncacheable
from scorer.cache.redis_cache import decode, encode
from scorer.pipeline import Pipeline, Request
from tests.services import RedisServer, redis_db


class _Target:
    def __init__(self, fingerprint: str) -> None:
        self.name, self.version, self.fingerprint = "m", "1", fingerprint


class _Model:
    output_names = ("y",)
    version = "1"
    fingerprint = "fp"

    def __init__(self) -> None:
        self.calls = 0

    def score_arrays(self, X: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"y": np.asarray(X, dtype=float).sum(axis=1)}


def _req(X: np.ndarray | dict, outputs: tuple[str, ...] = ("y",)) -> Request:
    rows = len(X) if isinstance(X, np.ndarray) else len(next(iter(X.values())))
    return Request(X, rows, list(outputs))


def test_the_key_covers_fingerprint_outputs_dtype_and_values() -> None:
    X = np.arange(6.0).reshape(3, 2)
    k = request_key(_Target("a"), _req(X))
    assert k == request_key(_Target("a"), _req(X.copy()))
    assert k != request_key(_Target("b"), _req(X))                 # a new version
    assert k != request_key(_Target("a"), _req(X, ("y", "z")))     # other outputs
    assert k != request_key(_Target("a"), _req(X.astype(np.float32)))
    assert k != request_key(_Target("a"), _req(X.reshape(2, 3)))
    cols = {"a": np.array(["x", None], dtype=object), "b": np.array([1.0, 2.0])}
    other = {"a": np.array(["x", ""], dtype=object), "b": np.array([1.0, 2.0])}
    assert request_key(_Target("a"), _req(cols)) != request_key(_Target("a"), _req(other))


def test_local_cache_is_an_lru_bounded_by_bytes() -> None:
    c = LocalCache(4000)
    t = _Target("f")
    reqs = [_req(np.full((10, 2), float(i))) for i in range(10)]
    for r in reqs:
        c.put(t, r, {"y": np.zeros(10)})
        assert c.bytes <= 4000
    assert 0 < len(c) < 10
    assert c.get(t, reqs[0]) is None           # the oldest went first
    assert c.get(t, reqs[-1]) is not None
    assert c.metrics.counts == {"hit": 1, "miss": 1, "error": 0}
    big = _req(np.zeros((1000, 2)))
    c.put(t, big, {"y": np.zeros(1000)})       # larger than the whole cache: not kept
    assert c.get(t, big) is None


def test_a_hash_collision_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_mod, "digest", lambda key: b"same")
    c = LocalCache(1 << 20)
    t = _Target("f")
    a, b = _req(np.ones((1, 2))), _req(np.zeros((1, 2)))
    c.put(t, a, {"y": np.array([2.0])})
    assert c.get(t, b) is None  # same slot, other key
    assert c.get(t, a)["y"].tolist() == [2.0]


def test_redis_blob_round_trip_and_cache() -> None:
    arrays = {"p": np.array([0.25, 1e-300]), "label": np.array(["no", "yes"], dtype=object),
              "k": np.array([1, 2], dtype=np.int64)}
    key, back = decode(encode(b"key", arrays))
    assert key == b"key"
    assert back["p"].tobytes() == arrays["p"].tobytes()
    assert back["label"].tolist() == ["no", "yes"] and back["k"].dtype == np.int64
    c = open_cache(redis_db() + "?ttl=60")
    assert isinstance(c, RedisCache)
    t = _Target(uuid.uuid4().hex)  # a fingerprint nobody else has: no shared entries
    r = _req(np.ones((2, 2)))
    assert c.get(t, r) is None
    c.put(t, r, arrays)
    got = c.get(t, r)
    assert got is not None and got["p"].tobytes() == arrays["p"].tobytes()
    c._r.delete(c._name(request_key(t, r)))
    c.close()


def test_a_dead_cache_is_skipped_and_counted() -> None:
    server = RedisServer()
    url = server.url
    server.kill()
    cache = open_cache(url, timeout=0.2)
    model = _Model()
    from scorer.pipeline import ModelResolver

    p = Pipeline(ModelResolver({"m": model}), cache=cache)
    _, out = p("m", np.ones((2, 2)))
    assert out["y"].tolist() == [2.0, 2.0] and model.calls == 1
    # (the lookup failed: no store is tried, so a hung cache costs one timeout, not two;
    # the lookups' counter counts the lookup only)
    assert p.errors.snapshot() == {("cache", "get"): 1}
    assert cache.metrics.counts["error"] == 1


def test_open_cache_refuses_unknown_specs() -> None:
    with pytest.raises(ValueError, match="expected local:MB"):
        open_cache("local:lots")
    with pytest.raises(ValueError, match="expected local:MB or redis"):
        open_cache("memcached://x")


def test_object_values_are_keyed_with_their_type() -> None:
    t = _Target("a")

    def key(*values: object) -> bytes:
        col = np.empty(len(values), dtype=object)
        col[:] = list(values)
        return request_key(t, _req({"c": col}))

    # a missing value and the category "nan" score differently: never one entry
    distinct = [key(np.nan), key("nan"), key(None), key("None"), key(1), key("1"),
                key(True), key("True"), key(b"a"), key("b'a'"), key(1.0), key(-0.0),
                key(0.0), key("ab", "c"), key("a", "bc")]
    assert len(set(distinct)) == len(distinct)
    assert key("x", None, 2.5) == key("x", None, 2.5)
    with pytest.raises(Uncacheable):
        key(object())


def test_requests_the_cache_cannot_key_are_scored_not_cached() -> None:
    from scorer.pipeline import ModelResolver

    class Unsigned(_Model):
        fingerprint = None  # built in memory: two such models would share entries

    for model, X in ((Unsigned(), {"c": np.array([1.0, 2.0])}),
                     (_Model(), {"c": np.array([object(), object()], dtype=object)})):
        model.score_arrays = lambda X, m=model: (  # type: ignore[method-assign]
            setattr(m, "calls", m.calls + 1) or {"y": np.zeros(2)})
        cache = LocalCache(1 << 20)
        p = Pipeline(ModelResolver({"m": model}), cache=cache)
        for _ in range(3):
            p("m", Request(X, 2, ["y"]))
        assert model.calls == 3 and len(cache) == 0
        assert cache.metrics.counts == {"hit": 0, "miss": 0, "error": 0}
        assert p.errors.snapshot() == {}


@pytest.mark.parametrize("kind", ["numbers", "strings"])
def test_local_cache_memory_stays_within_its_bound(kind: str) -> None:
    import gc
    import tracemalloc

    bound = 1 << 20
    c = LocalCache(bound)
    t = _Target("f")
    outs = ["p0", "p1", "p2", "label"]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):  # one-row requests, the usual case
            r = Request(np.array([[float(i), 1.0, 2.0, 3.0]]), 1, outs)
            arrays = ({o: np.array([0.5]) for o in outs} if kind == "numbers" else
                      {o: np.array([f"label-{i}-{o}"], dtype=object) for o in outs})
            c.put(t, r, arrays)
        del r, arrays
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(c) < 20_000 and c.bytes <= bound
    assert used <= 1.15 * bound, (used, c.bytes)  # what it holds, not 2-3x its bound


def test_a_redis_entry_that_does_not_decode_is_counted_as_an_error() -> None:
    c = open_cache(redis_db())
    t = _Target(uuid.uuid4().hex)
    r = _req(np.ones((1, 2)))
    name = c._name(request_key(t, r))  # type: ignore[attr-defined]
    c._r.set(name, b"\x00\x01 not an entry", ex=60)  # type: ignore[attr-defined]
    try:
        with pytest.raises(Exception):  # noqa: B017 (the pipeline absorbs any failure)
            c.get(t, r)
        assert c.metrics.counts["error"] == 1
    finally:
        c._r.delete(name)  # type: ignore[attr-defined]
        c.close()


def test_the_server_keeps_a_cache_urls_own_timeout() -> None:
    from scorer.server.app import _output_cache
    from scorer.server.config import ServerConfig

    for url, want in ((redis_db() + "?timeout=5", 5.0), (redis_db(), 0.7)):
        c = _output_cache(ServerConfig(repository=".", cache=url, features_timeout=0.7))
        try:
            assert c._r.connection_pool.connection_kwargs["socket_timeout"] == want  # type: ignore[attr-defined]
        finally:
            c.close()  # type: ignore[attr-defined]


def test_redis_entries_larger_than_the_bound_are_not_stored() -> None:
    c = open_cache(redis_db() + "?max_entry_mb=0.01")  # 10 KB
    t = _Target(uuid.uuid4().hex)
    small, big = _req(np.ones((2, 2))), _req(np.ones((4000, 2)))
    try:
        c.put(t, small, {"y": np.zeros(2)})
        c.put(t, big, {"y": np.zeros(4000)})  # 32 KB of outputs: scored, not kept
        assert c.get(t, small) is not None and c.get(t, big) is None
        assert not c._r.exists(c._name(request_key(t, big)))  # type: ignore[attr-defined]
    finally:
        c._r.delete(c._name(request_key(t, small)))  # type: ignore[attr-defined]
        c.close()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="max_entry_mb"):
        open_cache(redis_db() + "?max_entry_mb=lots")


def test_the_urls_redis_options_reach_redis() -> None:
    """(``?db=`` was dropped with the cache's own options.)"""
    db = int(redis_db().rsplit("/", 1)[1])
    c = open_cache(f"redis://127.0.0.1:6379?db={db}&ttl=60&timeout=2")
    assert isinstance(c, RedisCache) and c.ttl == 60
    t = _Target(uuid.uuid4().hex)
    r = _req(np.ones((1, 2)))
    c.put(t, r, {"p": np.array([0.5])})
    name = c._name(request_key(t, r))
    raw = redis.Redis.from_url(redis_db())
    try:
        assert raw.exists(name)  # in the database the URL names, not database 0
        raw.delete(name)
    finally:
        raw.close()
        c.close()
