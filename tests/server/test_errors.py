"""Every error reaches the client with its status code and a message in the caller's terms;
no bad request takes the server down."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from scorer.server.status import code_for
from tests.server.conftest import infer_matrix

INFER = "/inference.GRPCInferenceService/ModelInfer"


def _code(err: pytest.ExceptionInfo) -> str:
    return err.value.status().removeprefix("StatusCode.")


def _columns(df, **override):
    """tritonclient inputs for the mixed model from a DataFrame slice."""
    inputs = []
    spec = {"color": "BYTES", "size": "FP64", "count": "INT64"}
    spec.update(override)
    for name, dt in spec.items():
        if dt is None:
            continue
        values = df[name].to_numpy()
        values = values.astype(object) if dt == "BYTES" else values.astype(
            {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}[dt])
        inp = tc.InferInput(name, [len(df)], dt)
        inp.set_data_from_numpy(values)
        inputs.append(inp)
    return inputs


@pytest.mark.parametrize(("model", "version", "message"), [
    ("nope", "", "unknown model 'nope'"),
    ("iris", "7", "unknown version '7' of model 'iris' (ready versions: 1)"),
])
def test_not_found(client, model: str, version: str, message: str) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, model, np.zeros((1, 4)), version=version)
    assert _code(err) == "NOT_FOUND"
    assert message in err.value.message()


def test_unavailable_when_no_version_ready(client) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "broken", np.zeros((1, 4)))
    assert _code(err) == "UNAVAILABLE"
    msg = err.value.message()
    assert "model 'broken' is not ready" in msg and "verification" in msg


@pytest.mark.parametrize(("build", "message"), [
    (lambda df: _columns(df, count=None), "missing input 'count' (model 'mixed' expects 3"),
    (lambda df: _columns(df.assign(color=[1.0] * len(df)), color="FP64"),
     "input 'color' is a string field: expected datatype BYTES, got FP64"),
    (lambda df: _columns(df, size="BYTES"), "input 'size' is a double field: expected a "
                                            "numeric datatype"),
    (lambda df: _columns(df.assign(color=["purple"] * len(df))),
     "unknown category 'purple' for field 'color' in row 0"),
    (lambda df: _columns(df.assign(color=[""] * len(df))),
     "field 'color' has missing values (rows 0, 1)"),
])
def test_invalid_columns(client, bundles, build, message: str) -> None:
    df = bundles["mixed"].X.iloc[:2]
    with pytest.raises(InferenceServerException) as err:
        client.infer("mixed", build(df))
    assert _code(err) == "INVALID_ARGUMENT"
    assert message in err.value.message()


def test_invalid_matrix(client) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "iris", np.zeros((2, 3)))
    assert _code(err) == "INVALID_ARGUMENT"
    assert ("input 'input': expected shape [rows, 4] (inputs in order: x0, x1, x2, x3), "
            "got [2, 3]") in err.value.message()
    with pytest.raises(InferenceServerException, match="a FP64 matrix cannot carry string "
                                                       "field 'color'"):
        infer_matrix(client, "mixed", np.zeros((2, 3)))
    with pytest.raises(InferenceServerException, match="unknown output 'proba'"):
        infer_matrix(client, "iris", np.zeros((1, 4)), outputs=["proba"])
    with pytest.raises(InferenceServerException, match="unknown input 'x9'"):
        infer_matrix(client, "iris", np.zeros((1, 4, 1)), name="x9")


@pytest.mark.parametrize("char", ["x", "\U0001f600"])
@pytest.mark.parametrize("where", ["input", "output", "version"])
def test_huge_client_strings_leave_the_error_readable(client, where: str, char: str) -> None:
    # a 100 KB name echoed in full would exceed the client's trailer limit: the client would
    # see RESOURCE_EXHAUSTED instead of the real error; so would 2,000 emoji, percent-encoded
    # (12 bytes each)
    huge = char * (100_000 if char == "x" else 2000)
    with pytest.raises(InferenceServerException) as err:
        if where == "input":
            infer_matrix(client, "iris", np.zeros((1, 4, 1)), name=huge)
        elif where == "output":
            infer_matrix(client, "iris", np.zeros((1, 4)), outputs=[huge])
        else:
            client.get_inference_statistics("iris", model_version=huge)
    expected = "NOT_FOUND" if where == "version" else "INVALID_ARGUMENT"
    assert _code(err) == expected
    assert len(err.value.message()) < 2200


def test_invalid_raw_payloads(server) -> None:
    def call(req):
        with grpc.insecure_channel(server.address) as ch:
            stub = ch.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=service_pb2.ModelInferResponse.FromString)
            return stub(req, timeout=5)

    req = service_pb2.ModelInferRequest(model_name="iris")
    req.inputs.add(name="x", datatype="FP64", shape=[2, 4])
    req.raw_input_contents.append(b"\0" * 63)
    with pytest.raises(grpc.RpcError) as err:
        call(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "shape [2, 4] of FP64 needs 64 bytes, raw_input_contents holds 63" in \
        err.value.details()
    req.inputs[0].datatype = "BF16"
    with pytest.raises(grpc.RpcError, match="datatype 'BF16' is not supported"):
        call(req)
    req = service_pb2.ModelInferRequest(model_name="iris")
    req.inputs.add(name="x", datatype="FP64", shape=[2, 4])
    with pytest.raises(grpc.RpcError, match=r"needs 8 values in contents\.fp64_contents, got 0"):
        call(req)


def test_malformed_protobuf(server, client) -> None:
    with grpc.insecure_channel(server.address) as ch:
        raw = ch.unary_unary(INFER)  # no serializers: bytes go out as they are
        plain = service_pb2.ModelInferRequest(id="r")
        plain.inputs.add(name="input", datatype="FP64", shape=[1, 4])
        plain.raw_input_contents.append(b"\0" * 32)
        bad_utf8 = b"\x0a\x02\xc3\x28" + plain.SerializeToString()  # model name: not UTF-8
        for garbage in (b"\xff\xff\xff\xff\x0f", b"\x0a\x05ab", bytes(range(256)) * 4,
                        bad_utf8, plain.SerializeToString()[:-1]):
            with pytest.raises(grpc.RpcError) as err:
                raw(garbage, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed ModelInferRequest message" in err.value.details()
        meta = ch.unary_unary("/inference.GRPCInferenceService/ModelMetadata")
        with pytest.raises(grpc.RpcError) as err:
            meta(b"\x12\xff", timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.is_server_live() and client.is_model_ready("iris")


def test_resource_exhausted(client) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "iris", np.zeros((5001, 4), dtype=np.float32))
    assert _code(err) == "RESOURCE_EXHAUSTED"
    assert "the request has 5001 rows; this server scores at most 5000 per request" in \
        err.value.message()
    # over the 1 MiB message limit: refused by gRPC before any parsing
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "iris", np.zeros((40_000, 4)))
    assert _code(err) == "RESOURCE_EXHAUSTED"
    assert client.is_server_live()
    assert infer_matrix(client, "iris", np.zeros((1, 4))).as_numpy("label").shape == (1,)


def test_internal_error_hides_the_trace(server, client, caplog, monkeypatch) -> None:
    lv = server.repository.resolve("iris")

    def boom(X):
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(lv.model, "score_arrays", boom)
    with caplog.at_level(logging.ERROR, logger="tablescore.server"):
        with pytest.raises(InferenceServerException) as err:
            infer_matrix(client, "iris", np.zeros((1, 4)))
    assert _code(err) == "INTERNAL"
    msg = err.value.message()
    assert "internal error in ModelInfer (reference " in msg
    assert "secret" not in msg and "Traceback" not in msg and "ZeroDivision" not in msg
    ref = msg.split("reference ")[1].split(";")[0]
    logged = [r for r in caplog.records if getattr(r, "ref", None) == ref]
    assert logged and logged[0].exc_info is not None
    monkeypatch.undo()
    assert infer_matrix(client, "iris", np.zeros((1, 4))).as_numpy("label").shape == (1,)


def test_status_table() -> None:
    from scorer.errors import (
        BundleFormatError,
        FieldTypeError,
        ModelNotFoundError,
        NotReadyError,
        ResourceLimitError,
        UnknownCategoryError,
    )

    assert code_for(ModelNotFoundError("x")) == grpc.StatusCode.NOT_FOUND
    assert code_for(NotReadyError("x")) == grpc.StatusCode.UNAVAILABLE
    assert code_for(ResourceLimitError("x")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_for(FieldTypeError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_for(UnknownCategoryError("x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_for(BundleFormatError("x")) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_for(KeyError("x")) == grpc.StatusCode.INTERNAL


def test_bogus_shapes_fail_fast(server) -> None:
    """A shape far larger than the data is refused before anything of that size is made."""
    with grpc.insecure_channel(server.address) as ch:
        stub = ch.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=service_pb2.ModelInferResponse.FromString)
        for datatype, raw in (("BYTES", b"\1\0\0\0a"), ("FP64", b"\0" * 8)):
            req = service_pb2.ModelInferRequest(model_name="mixed")
            req.inputs.add(name="color", datatype=datatype, shape=[1, 1 << 39])
            req.raw_input_contents.append(raw)
            with pytest.raises(grpc.RpcError) as err:
                stub(req, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        req = service_pb2.ModelInferRequest(model_name="mixed")
        req.inputs.add(name="color", datatype="FP64", shape=[-1])
        with pytest.raises(grpc.RpcError, match="invalid shape"):
            stub(req, timeout=5)


def test_a_bytes_matrix_of_the_wrong_width_is_refused_before_its_values_are_read(
        server, monkeypatch) -> None:
    """A [1, N] BYTES matrix for a 3-input model: refused by its declared shape, before its
    N strings are split (15M empty strings once took 0.5 GB and 4 s a call)."""
    from scorer.server import codec

    read = []
    real = codec.tensor_array
    monkeypatch.setattr(codec, "tensor_array", lambda t, *a: read.append(t.name) or real(t, *a))
    with grpc.insecure_channel(server.address) as ch:
        stub = ch.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=service_pb2.ModelInferResponse.FromString)
        n = 100_000
        req = service_pb2.ModelInferRequest(model_name="mixed")
        req.inputs.add(name="input", datatype="BYTES", shape=[1, n])
        req.raw_input_contents.append(b"\0\0\0\0" * n)
        with pytest.raises(grpc.RpcError) as err:
            stub(req, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected shape [rows, 3]" in err.value.details()
        assert f"got [1, {n}]" in err.value.details()
    assert read == []  # no value of it was read


def test_max_message_mb_out_of_grpcs_range_is_a_usage_error(tmp_path) -> None:
    from scorer.server.config import ServerConfig

    for mb in (-1, 0, 2048):
        with pytest.raises(ValueError, match="--max-message-mb must be between"):
            ServerConfig(repository=tmp_path, max_message_bytes=int(mb * 1024 * 1024))


def test_raw_and_contents_mixed_are_refused_with_a_stage_column_too(bundles) -> None:
    """A request with an id column for a stage (an experiment's unit) takes another decoding
    path: it refuses an input that has contents beside raw_input_contents as well."""
    import scorer
    from scorer.errors import InputError
    from scorer.server.codec import ModelSchema, decode_request

    schema = ModelSchema(scorer.load(bundles["iris"].path))
    req = service_pb2.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    t.contents.fp64_contents.extend([1.0, 2.0, 3.0, 4.0])
    req.raw_input_contents.append(np.zeros(4).tobytes())
    u = req.inputs.add(name="uid", datatype="INT64", shape=[1])
    req.raw_input_contents.append(np.array([5], dtype=np.int64).tobytes())
    assert u.name == "uid"
    with pytest.raises(InputError, match="has contents, but the request uses raw_input"):
        decode_request(req, schema, max_rows=10, extras=frozenset({"uid"}))


def test_the_access_log_cuts_a_clients_model_name() -> None:
    from scorer.server.logs import MAX_NAME, AccessLog

    log = AccessLog("all")
    log.note("A" * 1_000_000, "7" * 5000, 1)
    model, version, rows = log._local.note
    assert (len(model), len(version), rows) == (MAX_NAME, MAX_NAME, 1)


def test_narrow_integers_and_shared_memory_are_refused_clearly(server) -> None:
    """8/16-bit values travel in 32-bit contents fields: out of their range is refused; a
    shared-memory input (none here) is named as such, not as a shape error."""
    from protos import inference_pb2 as pb
    from protos import inference_pb2_grpc as pbg

    channel = grpc.insecure_channel(server.address)
    stub = pbg.GRPCInferenceServiceStub(channel)
    try:
        for dt, field, values in (("UINT8", "uint_contents", [300, 1, 2, 3]),
                                  ("INT8", "int_contents", [1000, -1, 2, 3]),
                                  ("INT16", "int_contents", [40000, 1, 2, 3])):
            req = pb.ModelInferRequest(model_name="iris")
            t = req.inputs.add(name="input", datatype=dt, shape=[1, 4])
            getattr(t.contents, field).extend(values)
            with pytest.raises(grpc.RpcError) as err:
                stub.ModelInfer(req, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"value {values[0]} is out of range for {dt}" in err.value.details()
        req = pb.ModelInferRequest(model_name="iris")
        t = req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
        t.parameters["shared_memory_region"].string_param = "r0"
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "parameter 'shared_memory_region' is not supported" in err.value.details()
    finally:
        channel.close()
