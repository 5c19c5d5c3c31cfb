"""The server's request path is the pipeline: stages given to ``serve`` run for gRPC requests,
protobuf never reaches them, and a cache hit leaves the batcher consistent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import tritonclient.grpc as tc

from protos import inference_pb2 as pb
from scorer.pipeline import Pipeline, Request
from scorer.server import serve
from scorer.server.metrics import Metrics
from scorer.server.servicer import InferenceServicer

from .conftest import Exported, infer_matrix, publish


class DictCache:
    """An exact-key cache: fingerprint + the request's bytes and outputs."""

    def __init__(self) -> None:
        self.store: dict[tuple, dict[str, np.ndarray]] = {}
        self.hits = 0
        self.seen_types: set[type] = set()

    def _key(self, target, request: Request) -> tuple:
        self.seen_types.add(type(request.inputs))
        X = np.ascontiguousarray(request.inputs)
        return (target.fingerprint, X.dtype.str, X.shape, X.tobytes(), tuple(request.outputs))

    def get(self, target, request):
        hit = self.store.get(self._key(target, request))
        self.hits += hit is not None
        return hit

    def put(self, target, request, arrays):
        self.store[self._key(target, request)] = arrays


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def record(self, target, request, arrays):
        self.seen.append((target.name, target.version, request.rows))


def test_stages_run_for_grpc_requests(bundles: dict[str, Exported], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 3)
    cache, rec = DictCache(), Recorder()
    X = bundles["iris"].X[:4]
    expected = bundles["iris"].est.predict_proba(X)
    with serve(repo, port=0, ready_timeout=60, cache=cache, recorders=[rec]) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            for _ in range(3):
                r = infer_matrix(client, "iris", X)
                np.testing.assert_allclose(r.as_numpy("probability(0)"), expected[:, 0],
                                           rtol=0, atol=1e-12)
        finally:
            client.close()
    assert cache.hits == 2
    assert rec.seen == [("iris", "3", 4)] * 3
    assert cache.seen_types == {np.ndarray}  # a decoded tensor, never a protobuf message


class _Context:
    def abort(self, code, details):
        raise AssertionError(f"aborted: {code} {details}")


def test_a_cache_hit_withdraws_its_batching_announcement(bundles: dict[str, Exported],
                                                         tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    cache = DictCache()
    X = np.ascontiguousarray(bundles["iris"].X[:2], dtype=np.float64)
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="input", datatype="FP64", shape=list(X.shape))
    assert t is not None
    req.raw_input_contents.append(X.tobytes())
    with serve(repo, port=0, ready_timeout=60) as server:
        config = replace(server.config, batch_delay_us=50_000.0)
        servicer = InferenceServicer(server.repository, config, Metrics(), server._state,
                                     pipeline=Pipeline(server.repository, cache=cache))
        handler = servicer.handlers()["ModelInfer"]
        first = handler(req.SerializeToString(), _Context())
        for _ in range(3):
            assert handler(req.SerializeToString(), _Context()) == first
        batcher = next(iter(servicer._batchers.values()))
        # announced before decoding, answered by the cache: withdrawn, so no batch leader
        # waits for requests that will never be submitted
        assert batcher._incoming == 0
    assert cache.hits == 3


def test_absorbed_stage_errors_are_exported(bundles: dict[str, Exported],
                                            tmp_path: Path) -> None:
    class Down:
        """Its first lookup fails (no store is tried after it), its second misses and the
        store after it fails."""

        lookups = 0

        def get(self, target, request):
            self.lookups += 1
            if self.lookups == 1:
                raise ConnectionError("down")
            return None

        def put(self, target, request, arrays):
            raise ConnectionError("down")

    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    with serve(repo, port=0, ready_timeout=60, metrics_port=0, cache=Down()) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            for _ in range(2):
                r = infer_matrix(client, "iris", bundles["iris"].X[:2])
                assert r.as_numpy("label").shape == (2,)
        finally:
            client.close()
        import urllib.request

        text = urllib.request.urlopen(
            f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'tablescore_pipeline_stage_errors_total{kind="get",stage="cache"} 1.0' in text
    assert 'tablescore_pipeline_stage_errors_total{kind="put",stage="cache"} 1.0' in text


class ByUnit:
    """A router and a features stage for the test: the unit id (a parameter or a BYTES
    column) picks version 2 for even ids, and an entity-only request gets its rows from a
    table of stored features."""

    def __init__(self, repository, stored: np.ndarray) -> None:
        self.repository = repository
        self.stored = stored
        self.seen: list[tuple] = []

    def extra_inputs(self, target) -> frozenset[str]:
        return frozenset({"customer_id"})

    def route(self, target, request: Request):
        unit = (request.parameters or {}).get("customer_id")
        if unit is None and request.extras:
            unit = request.extras["customer_id"][0]
        self.seen.append((type(request.inputs), unit))
        if unit is None:
            return target
        arm = "candidate" if int(unit) % 2 == 0 else "control"
        request.response = {"arm": arm, "experiment": "test"}
        return self.repository.resolve(target.name, "2" if arm == "candidate" else "1")

    def fill(self, target, request: Request) -> Request:
        if request.inputs is not None:
            return request
        ids = request.extras["customer_id"].astype(int)
        return Request(self.stored[ids], request.rows, request.outputs,
                       request.parameters, request.extras, request.response)


def test_router_extras_parameters_and_response(bundles: dict[str, Exported],
                                               tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    (repo / "iris" / "config.json").write_text('{"version_policy": {"all": {}}}')
    X = np.ascontiguousarray(bundles["iris"].X[:6], dtype=np.float64)
    with serve(repo, port=0, ready_timeout=60) as server:
        stage = ByUnit(server.repository, X)
        pipeline = Pipeline(server.repository, router=stage, features=stage)
        servicer = InferenceServicer(server.repository, server.config, Metrics(),
                                     server._state, pipeline=pipeline)
        handler = servicer.handlers()["ModelInfer"]

        def call(req) -> pb.ModelInferResponse:
            return pb.ModelInferResponse.FromString(handler(req.SerializeToString(),
                                                            _Context()))

        # the unit as a request parameter, the inputs as one raw matrix
        req = pb.ModelInferRequest(model_name="iris")
        req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
        req.raw_input_contents.append(X[:1].tobytes())
        req.parameters["customer_id"].int64_param = 4
        resp = call(req)
        assert resp.model_version == "2"
        assert resp.parameters["arm"].string_param == "candidate"
        assert resp.parameters["experiment"].string_param == "test"
        got = np.frombuffer(resp.raw_output_contents[0], dtype=np.float64)
        np.testing.assert_allclose(got, bundles["iris_v2"].est.predict_proba(X[:1])[:, 0],
                                   rtol=0, atol=1e-12)

        # the unit as a BYTES column beside the model's inputs
        req = pb.ModelInferRequest(model_name="iris")
        req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
        req.raw_input_contents.append(X[:1].tobytes())
        req.inputs.add(name="customer_id", datatype="BYTES", shape=[1])
        req.raw_input_contents.append(len(b"3").to_bytes(4, "little") + b"3")
        resp = call(req)
        assert (resp.model_version, resp.parameters["arm"].string_param) == ("1", "control")

        # only the id column: the features stage supplies the rows
        req = pb.ModelInferRequest(model_name="iris")
        t = req.inputs.add(name="customer_id", datatype="INT64", shape=[3])
        t.contents.int64_contents.extend([5, 1, 3])
        resp = call(req)
        assert resp.model_version == "1"
        labels = list(resp.outputs[[o.name for o in resp.outputs].index("label")]
                      .contents.int64_contents)
        assert labels == list(bundles["iris"].est.predict(X[[5, 1, 3]]))
        # protobuf never reached a stage; the id column came as a column
        assert {kind for kind, _ in stage.seen} <= {np.ndarray, type(None)}
