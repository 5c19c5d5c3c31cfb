"""Every RPC of the service through tritonclient, plus the health and reflection services."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

import scorer
from tests.server.conftest import infer_matrix


def test_health_rpcs(client: tc.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert not client.is_model_ready("iris", "2")
    assert not client.is_model_ready("nope")
    assert not client.is_model_ready("broken")  # its only version failed verification


def test_server_metadata(client: tc.InferenceServerClient) -> None:
    md = client.get_server_metadata()
    assert md.name == "tablescore"
    assert md.version == scorer.__version__
    assert "model_repository" in md.extensions and "statistics" in md.extensions


def test_model_metadata(client: tc.InferenceServerClient, main_repo) -> None:
    md = client.get_model_metadata("mixed")
    assert md.name == "mixed" and md.versions == ["1"] and md.platform == "tablescore"
    assert [(i.name, i.datatype, list(i.shape)) for i in md.inputs] == [
        ("color", "BYTES", [-1]), ("size", "FP64", [-1]), ("count", "INT64", [-1])]
    assert [(o.name, o.datatype) for o in md.outputs] == [
        ("probability(no)", "FP64"), ("probability(yes)", "FP64"), ("decision", "FP64"),
        ("label", "BYTES")]
    iris = client.get_model_metadata("iris", "1")
    assert [o.name for o in iris.outputs][-1] == "label"
    assert iris.outputs[-1].datatype == "INT64"  # integer classes
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")


def test_model_config_carries_provenance(client: tc.InferenceServerClient, main_repo) -> None:
    cfg = client.get_model_config("iris").config
    model = scorer.load(main_repo / "iris" / "1")
    assert cfg.name == "iris" and cfg.platform == "tablescore" and cfg.max_batch_size == 0
    assert cfg.parameters["fingerprint"].string_value == model.fingerprint
    assert cfg.parameters["schema_version"].string_value == "1.0"
    assert cfg.parameters["task"].string_value == "classification"
    assert cfg.parameters["version"].string_value == "1"
    assert cfg.version_policy.latest.num_versions == 1
    assert [i.name for i in cfg.input] == ["x0", "x1", "x2", "x3"]
    assert list(cfg.input[0].dims) == [-1]


def test_model_infer_and_statistics(client: tc.InferenceServerClient, bundles) -> None:
    X = bundles["iris"].X[:7]
    before = client.get_inference_statistics("iris", "1").model_stats[0]
    result = infer_matrix(client, "iris", X)
    resp = result.get_response()
    assert resp.model_name == "iris" and resp.model_version == "1"
    np.testing.assert_allclose(
        np.column_stack([result.as_numpy(f"probability({c})") for c in range(3)]),
        bundles["iris"].est.predict_proba(X), rtol=1e-9, atol=1e-12)
    after = client.get_inference_statistics("iris", "1").model_stats[0]
    assert after.inference_count == before.inference_count + 7
    assert after.execution_count == before.execution_count + 1
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    assert after.inference_stats.compute_infer.ns > before.inference_stats.compute_infer.ns
    assert after.last_inference > 0
    every = client.get_inference_statistics()
    assert {(s.name, s.version) for s in every.model_stats} == {
        ("iris", "1"), ("ridge", "1"), ("mixed", "1")}
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_inference_statistics("nope")


def test_repository_index(client: tc.InferenceServerClient) -> None:
    index = {(m.name, m.version): (m.state, m.reason)
             for m in client.get_model_repository_index().models}
    assert index[("iris", "1")] == ("READY", "")
    state, reason = index[("broken", "1")]
    assert state == "UNAVAILABLE"
    assert "verification" in reason and "row" in reason
    ready = client.get_model_repository_index(as_json=True)
    assert ready["models"]


def test_repository_unload_and_load(client: tc.InferenceServerClient) -> None:
    client.unload_model("ridge")
    assert not client.is_model_ready("ridge")
    with pytest.raises(InferenceServerException, match="unloaded"):
        infer_matrix(client, "ridge", np.zeros((1, 10)))
    client.load_model("ridge")
    assert client.is_model_ready("ridge")
    assert infer_matrix(client, "ridge", np.zeros((1, 10))).as_numpy("value").shape == (1,)
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.load_model("nope")
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.unload_model("nope")
    with pytest.raises(InferenceServerException, match="failed to load") as err:
        client.load_model("broken")
    assert err.value.status() == "StatusCode.FAILED_PRECONDITION"
    with pytest.raises(InferenceServerException, match="not supported"):
        client.load_model("ridge", config='{"backend": "onnx"}')


def test_grpc_health_service(server) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_describes_the_service(server) -> None:
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(server.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(db)
        svc = pool.FindServiceByName("inference.GRPCInferenceService")
        assert "ModelInfer" in [m.name for m in svc.methods]
        msg = pool.FindMessageTypeByName("inference.ModelInferRequest")
        assert msg.fields_by_name["raw_input_contents"].number == 7


def test_metrics_endpoint(server, client: tc.InferenceServerClient) -> None:
    infer_matrix(client, "iris", np.zeros((3, 4)))
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("nope")
    inp = tc.InferInput("x", [1, 4], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 4)))
    for name, version in (("iris", "99"), ("nope", "")):  # a known model's unknown version
        with pytest.raises(InferenceServerException):
            client.infer(name, [inp], model_version=version)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    assert 'tablescore_grpc_requests_total{code="OK",method="ModelInfer"}' in text
    assert 'tablescore_grpc_requests_total{code="NOT_FOUND",method="ModelMetadata"}' in text
    assert 'tablescore_infer_requests_total{code="OK",model="iris",version="1"}' in text
    assert 'tablescore_infer_requests_total{code="NOT_FOUND",model="iris",version=""}' in text
    assert 'tablescore_infer_requests_total{code="NOT_FOUND",model="",version=""}' in text
    assert "nope" not in "".join(ln for ln in text.splitlines() if "infer_requests" in ln)
    assert 'tablescore_rows_scored_total{model="iris",version="1"}' in text
    assert 'tablescore_grpc_request_duration_seconds_bucket{le="0.001",method="ModelInfer"}' \
        in text
    assert 'tablescore_model_version_ready{model="iris",version="1"} 1.0' in text
    failures = [line for line in text.splitlines() if line.startswith(
        'tablescore_model_load_failures_total{model="broken",version="1"}')]
    assert failures and float(failures[0].split()[-1]) >= 1
    assert "tablescore_server_ready 1.0" in text
    rss = [line for line in text.splitlines()
           if line.startswith("process_resident_memory_bytes ")]
    assert rss and float(rss[0].split()[1]) > 0
