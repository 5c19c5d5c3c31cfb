"""Entity-id requests over gRPC (#22): scored from the feature store bit for bit as the same
full rows in process, overrides, unknown and stale entities, a store that stops answering or
dies, and the output cache across a new version and new features. Every store test runs on
both backends (SQLite embedded; Redis in a database of this process's own)."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

import scorer
from scorer.features import open_store
from scorer.features.loader import load
from tests.services import RedisServer, redis_db

from .conftest import Exported, infer_matrix, publish

ENTITY = "customer_id"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/features.db"
        return
    from scorer.features import resp

    resp.warm()  # (the server's reads take the compiled reader from the first request)
    url = redis_db()
    yield url
    import redis

    r = redis.Redis.from_url(url)  # this test's views only (see view names below)
    for k in r.scan_iter(match="ts:*:tfx_*", count=1000):
        r.delete(k)


def _view() -> str:
    return f"tfx_{uuid.uuid4().hex[:10]}"


def _ids(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * 7 + 3  # ids that are not row numbers


def _load(url: str, view: str, df: pd.DataFrame, tmp_path: Path, **kw: object) -> None:
    path = tmp_path / f"{view}-{uuid.uuid4().hex[:6]}.parquet"
    df.to_parquet(path)
    s = open_store(url)
    try:
        load(s, path, view=view, entity=kw.pop("entity", ENTITY), **kw)  # type: ignore[arg-type]
    finally:
        s.close()


def _bind(repo: Path, model: str, **features: object) -> None:
    (repo / model / "config.json").write_text(json.dumps({"features": features}))


def _ids_input(ids: np.ndarray, shape: list[int] | None = None) -> tc.InferInput:
    a = np.ascontiguousarray(ids, dtype=np.int64)
    if shape is not None:
        a = a.reshape(shape)
    inp = tc.InferInput(ENTITY, list(a.shape), "INT64")
    inp.set_data_from_numpy(a)
    return inp


def _bits_equal(got: np.ndarray, expected: np.ndarray) -> bool:
    got, expected = np.asarray(got), np.asarray(expected)
    if expected.dtype.kind == "f":
        return got.dtype == expected.dtype and np.array_equal(got.view(np.int64),
                                                              expected.view(np.int64))
    return got.tolist() == [v.decode() if isinstance(v, bytes) else v
                            for v in expected.tolist()] or np.array_equal(got, expected)


def _assert_scores(result: tc.InferResult, expected: dict[str, np.ndarray]) -> None:
    for name, want in expected.items():
        got = result.as_numpy(name).reshape(-1)
        if got.dtype == object:
            got = np.array([v.decode() for v in got], dtype=object)
        assert _bits_equal(got, want), name


def _metrics(server: object) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",  # type: ignore[attr-defined]
                                  timeout=5).read().decode()


def _code(exc: InferenceServerException) -> str:
    return str(exc.status())


def test_entity_requests_score_bit_for_bit(bundles: dict[str, Exported], tmp_path: Path,
                                           store_url: str) -> None:
    model = scorer.load(bundles["iris"].path)
    names = model.input_names
    X = np.ascontiguousarray(bundles["iris"].X, dtype=np.float64)
    ids = _ids(len(X))
    view = _view()
    df = pd.DataFrame(X, columns=names)
    df.insert(0, ENTITY, ids)
    _load(store_url, view, df, tmp_path)
    # mixed: string ids (BYTES), a string feature and an integer one
    mixed = scorer.load(bundles["mixed"].path)
    mdf = bundles["mixed"].X.copy()
    mdf.insert(0, "sku", [f"sku-{i}" for i in range(len(mdf))])
    mview = _view()
    _load(store_url, mview, mdf, tmp_path, entity="sku")

    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["mixed"].path, repo, "mixed", 1)
    _bind(repo, "iris", view=view)
    _bind(repo, "mixed", view=mview)
    with serve_features(repo, store_url) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            # (150 ids: their 600 numbers parsed by Arrow; fewer by Python)
            for rows in ([0], [5, 0, 149, 5], list(range(0, 150, 3))[:100],
                         list(range(149, -1, -1))):
                idx = np.array(rows)
                expected = model.score_arrays(X[idx])
                r = client.infer("iris", [_ids_input(ids[idx])])
                _assert_scores(r, expected)
                r = client.infer("iris", [_ids_input(ids[idx], [len(idx), 1])])
                _assert_scores(r, expected)
            # an input sent with the ids overrides the stored value
            idx = np.array([1, 2, 3])
            override = np.array([0.5, -1.0, 7.25])
            x0 = tc.InferInput(names[0], [3], "FP64")
            x0.set_data_from_numpy(override)
            Xo = X[idx].copy()
            Xo[:, 0] = override
            r = client.infer("iris", [_ids_input(ids[idx]), x0])
            _assert_scores(r, model.score_arrays(Xo))
            # full rows are served as before
            r = infer_matrix(client, "iris", X[:2])
            _assert_scores(r, model.score_arrays(X[:2]))
            # BYTES ids, string features
            rows_m = [4, 0, 17]
            inp = tc.InferInput("sku", [3], "BYTES")
            inp.set_data_from_numpy(np.array([f"sku-{i}".encode() for i in rows_m],
                                             dtype=object))
            r = client.infer("mixed", [inp])
            _assert_scores(r, mixed.score_arrays(bundles["mixed"].X.iloc[rows_m]))
            # an unknown entity: NOT_FOUND naming it, never a score
            with pytest.raises(InferenceServerException) as ei:
                client.infer("iris", [_ids_input(np.array([ids[0], 999_999]))])
            assert _code(ei.value) == "StatusCode.NOT_FOUND"
            assert "unknown customer_id '999999'" in ei.value.message()
        finally:
            client.close()
        text = _metrics(server)
    assert f'tablescore_features_values_total{{status="NOT_FOUND",view="{view}"}} 4.0' in text
    assert f'tablescore_features_store_seconds_count{{view="{view}"}}' in text


def serve_features(repo: Path, url: str, **kw: object):  # type: ignore[no-untyped-def]
    from scorer.server import serve

    return serve(repo, port=0, metrics_port=0, ready_timeout=60, features=url,
                 poll_interval=0.2, **kw)


def test_stale_and_missing_entities(bundles: dict[str, Exported], tmp_path: Path,
                                    store_url: str) -> None:
    model = scorer.load(bundles["iris"].path)
    names = model.input_names
    X = np.ascontiguousarray(bundles["iris"].X[:4], dtype=np.float64)
    view = _view()
    df = pd.DataFrame(X, columns=names)
    df.insert(0, ENTITY, [1, 2, 3, 4])
    now = time.time()
    df["t"] = [now, now, now - 7200, now - 7200]  # 3 and 4 are older than max_age
    _load(store_url, view, df, tmp_path, timestamp="t", max_age=3600)
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris"].path, repo, "lenient", 1)
    _bind(repo, "iris", view=view)
    _bind(repo, "lenient", view=view, missing="policy")
    with serve_features(repo, store_url) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            r = client.infer("iris", [_ids_input(np.array([1, 2]))])
            _assert_scores(r, model.score_arrays(X[:2]))
            with pytest.raises(InferenceServerException) as ei:
                client.infer("iris", [_ids_input(np.array([2, 3]))])
            assert _code(ei.value) == "StatusCode.NOT_FOUND"
            assert "customer_id '3' only has features older than the view's max_age" in \
                ei.value.message()
            # "policy": the bundle's missing-value policy decides; iris refuses missing
            # values, so the request is refused by the model, not scored as zeros
            with pytest.raises(InferenceServerException) as ei:
                client.infer("lenient", [_ids_input(np.array([1, 4]))])
            assert _code(ei.value) == "StatusCode.INVALID_ARGUMENT"
            assert "missing" in ei.value.message().lower()
        finally:
            client.close()
        text = _metrics(server)
    assert f'tablescore_features_values_total{{status="OUTSIDE_MAX_AGE",view="{view}"}} 8.0' \
        in text
    assert f'tablescore_features_values_total{{status="PRESENT",view="{view}"}} 16.0' in text


def test_policy_fills_missing_features_with_nan(bundles: dict[str, Exported],
                                                tmp_path: Path) -> None:
    """In process: under "policy" an unknown entity's features are NaN (never zeros) and the
    model's own missing-value handling sees them."""
    from scorer.features import FeatureStage
    from scorer.pipeline import ModelResolver, Pipeline, Request

    model = scorer.load(bundles["iris"].path)
    names = model.input_names
    url = f"sqlite:///{tmp_path}/f.db"
    view = _view()
    df = pd.DataFrame(bundles["iris"].X[:2], columns=names)
    df.insert(0, ENTITY, [1, 2])
    _load(url, view, df, tmp_path)
    stage = FeatureStage(open_store(url), {"iris": {"view": view, "missing": "policy"}})
    target = ModelResolver({"iris": model}).resolve("iris")
    req = Request(None, 2, model.output_names, extras={ENTITY: np.array([2, 99])})
    stage.fill(target, req)
    # (numbers only: the model's matrix, in its input order, as from Redis)
    assert isinstance(req.inputs, np.ndarray) and req.inputs.shape == (2, len(names))
    assert np.isnan(req.inputs[1]).all()
    assert req.inputs[0].tolist() == df[names].iloc[1].tolist()
    assert Pipeline(ModelResolver({"iris": model}), features=stage).features is stage


def test_store_down_then_back(bundles: dict[str, Exported], tmp_path: Path) -> None:
    model = scorer.load(bundles["iris"].path)
    names = model.input_names
    X = np.ascontiguousarray(bundles["iris"].X[:5], dtype=np.float64)
    df = pd.DataFrame(X, columns=names)
    df.insert(0, ENTITY, [10, 11, 12, 13, 14])
    redis_server = RedisServer()
    try:
        view = _view()
        _load(redis_server.url, view, df, tmp_path)
        repo = tmp_path / "repo"
        publish(bundles["iris"].path, repo, "iris", 1)
        _bind(repo, "iris", view=view)
        with serve_features(repo, redis_server.url, features_timeout=0.3) as server:
            client = tc.InferenceServerClient(server.address)
            try:
                ok = client.infer("iris", [_ids_input(np.array([11, 12]))])
                _assert_scores(ok, model.score_arrays(X[1:3]))

                def down_answer() -> float:
                    t0 = time.perf_counter()
                    with pytest.raises(InferenceServerException) as ei:
                        client.infer("iris", [_ids_input(np.array([11]))])
                    assert _code(ei.value) == "StatusCode.UNAVAILABLE"
                    assert "feature store" in ei.value.message()
                    return time.perf_counter() - t0

                # a store that stops answering (the process frozen): bounded by the timeout
                redis_server.signal(signal.SIGSTOP)
                try:
                    assert down_answer() < 1.5
                    # full rows never touch the store
                    _assert_scores(infer_matrix(client, "iris", X[:2]),
                                   model.score_arrays(X[:2]))
                finally:
                    redis_server.signal(signal.SIGCONT)
                r = client.infer("iris", [_ids_input(np.array([11, 12]))])  # no restart
                _assert_scores(r, model.score_arrays(X[1:3]))
                # a store that is gone (connection refused), then a new one, loaded again
                redis_server.kill()
                assert down_answer() < 1.5
                _assert_scores(infer_matrix(client, "iris", X[:2]), model.score_arrays(X[:2]))
                redis_server.start()
                _load(redis_server.url, view, df, tmp_path)
                r = client.infer("iris", [_ids_input(np.array([14]))])
                _assert_scores(r, model.score_arrays(X[4:5]))
            finally:
                client.close()
            text = _metrics(server)
        assert f'tablescore_features_store_errors_total{{view="{view}"}} 2.0' in text
    finally:
        redis_server.kill()


def test_store_down_since_start_and_no_entity_in_the_binding(bundles: dict[str, Exported],
                                                              tmp_path: Path) -> None:
    """The binding does not name the entity column and the store never answered since the
    server started: an id-only request cannot be told from an unknown input, so it gets
    UNAVAILABLE (naming the store and the fix), not INVALID_ARGUMENT; once the store answers,
    the same request is scored, and a really unknown input is INVALID_ARGUMENT again."""
    model = scorer.load(bundles["iris"].path)
    X = np.ascontiguousarray(bundles["iris"].X[:3], dtype=np.float64)
    df = pd.DataFrame(X, columns=model.input_names)
    df.insert(0, ENTITY, [20, 21, 22])
    redis_server = RedisServer()
    try:
        view = _view()
        _load(redis_server.url, view, df, tmp_path)
        redis_server.kill()  # down before the server starts: the view's columns are unknown
        repo = tmp_path / "repo"
        publish(bundles["iris"].path, repo, "iris", 1)
        _bind(repo, "iris", view=view)  # no "entity"
        with serve_features(repo, redis_server.url, features_timeout=0.3) as server:
            client = tc.InferenceServerClient(server.address)
            try:
                for shape in (None, [1, 1]):  # [N] and [N, 1]
                    t0 = time.perf_counter()
                    with pytest.raises(InferenceServerException) as ei:
                        client.infer("iris", [_ids_input(np.array([21]), shape)])
                    assert time.perf_counter() - t0 < 1.5
                    assert _code(ei.value) == "StatusCode.UNAVAILABLE", ei.value.message()
                    msg = ei.value.message()
                    assert "feature store" in msg and "unreachable" in msg
                    assert f"'{ENTITY}'" in msg and '"entity"' in msg
                # full rows are served meanwhile
                _assert_scores(infer_matrix(client, "iris", X[:2]), model.score_arrays(X[:2]))
                redis_server.start()
                _load(redis_server.url, view, df, tmp_path)
                deadline = time.monotonic() + 10
                while True:  # the stage asks the store again after its retry interval
                    try:
                        r = client.infer("iris", [_ids_input(np.array([21, 22]))])
                        break
                    except InferenceServerException as exc:
                        assert _code(exc) == "StatusCode.UNAVAILABLE"
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                _assert_scores(r, model.score_arrays(X[1:3]))
                other = tc.InferInput("nope", [1], "INT64")
                other.set_data_from_numpy(np.array([1], dtype=np.int64))
                with pytest.raises(InferenceServerException) as ei:
                    client.infer("iris", [other])
                assert _code(ei.value) == "StatusCode.INVALID_ARGUMENT"
                assert "unknown input 'nope'" in ei.value.message()
            finally:
                client.close()
    finally:
        redis_server.kill()


@pytest.mark.parametrize("cache", ["local:8", "redis"])
def test_cache_hits_and_never_outlives_a_version_or_features(
        bundles: dict[str, Exported], tmp_path: Path, cache: str) -> None:
    if cache == "redis":
        cache = redis_db()
    model = scorer.load(bundles["iris"].path)
    model2 = scorer.load(bundles["iris_v2"].path)
    names = model.input_names
    # values of this run only: a shared Redis keeps entries of earlier runs (its keys hold
    # the feature values, so the same rows would hit where this test expects a miss)
    X = np.ascontiguousarray(bundles["iris"].X[:6], dtype=np.float64) \
        + uuid.uuid4().int % 10**9 / 1e12
    url = f"sqlite:///{tmp_path}/f.db"
    view = _view()
    df = pd.DataFrame(X, columns=names)
    df.insert(0, ENTITY, np.arange(6))
    df["t"] = 100.0
    _load(url, view, df, tmp_path, timestamp="t")
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    _bind(repo, "iris", view=view)
    backend = "local" if cache.startswith("local") else "redis"

    def hits(server: object) -> float:
        for line in _metrics(server).splitlines():
            if line.startswith(f'tablescore_cache_lookups_total{{backend="{backend}",'
                               'result="hit"}'):
                return float(line.split()[-1])
        return 0.0

    with serve_features(repo, url, cache=cache) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            Xq = X[:3] + 1e-3  # not the stored rows: a full-row request of its own
            for _ in range(3):
                _assert_scores(infer_matrix(client, "iris", Xq), model.score_arrays(Xq))
            assert hits(server) == 2
            for _ in range(2):
                _assert_scores(client.infer("iris", [_ids_input(np.array([1, 2]))]),
                               model.score_arrays(X[1:3]))
            assert hits(server) == 3
            # new features for entity 1: the entry made with the old ones never answers
            newer = df.iloc[[1]].copy()
            newer[names[0]] = 3.5
            newer["t"] = 200.0
            _load(url, view, newer, tmp_path, timestamp="t")
            X1 = X[1:3].copy()
            X1[0, 0] = 3.5
            _assert_scores(client.infer("iris", [_ids_input(np.array([1, 2]))]),
                           model.score_arrays(X1))
            assert hits(server) == 3
            # a new version: same request, the new model's answer
            publish(bundles["iris_v2"].path, repo, "iris", 2)
            deadline = time.monotonic() + 60
            while server.repository.resolve("iris").version != "2":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            r = infer_matrix(client, "iris", Xq)
            assert r.get_response().model_version == "2"
            _assert_scores(r, model2.score_arrays(Xq))
            assert hits(server) == 3
        finally:
            client.close()


def test_a_binding_to_a_view_the_store_does_not_hold(bundles: dict[str, Exported],
                                                     tmp_path: Path, store_url: str) -> None:
    """The store answers but holds no such view: the server's configuration is wrong, not
    the request: FAILED_PRECONDITION naming the model, the view and the fix, whether the
    binding names the entity column or not; full rows are still served."""
    model = scorer.load(bundles["iris"].path)
    X = np.ascontiguousarray(bundles["iris"].X[:2], dtype=np.float64)
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris"].path, repo, "named", 1)
    absent = _view()
    _bind(repo, "iris", view=absent)
    _bind(repo, "named", view=absent, entity=ENTITY)
    with serve_features(repo, store_url) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            for name in ("iris", "named"):
                with pytest.raises(InferenceServerException) as ei:
                    client.infer(name, [_ids_input(np.array([3]))])
                assert _code(ei.value) == "StatusCode.FAILED_PRECONDITION", ei.value.message()
                msg = ei.value.message()
                assert f"model '{name}' reads feature view '{absent}'" in msg
                assert "does not hold" in msg and "tablescore features load" in msg
                _assert_scores(infer_matrix(client, name, X), model.score_arrays(X))
        finally:
            client.close()
