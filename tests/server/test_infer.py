"""ModelInfer input and output encodings: one 2-D tensor or one tensor per column, every
datatype, raw_input_contents vs contents, requested outputs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.server.conftest import infer_matrix

CONTENTS_FIELD = {"FP64": "fp64_contents", "FP32": "fp32_contents", "INT64": "int64_contents",
                  "INT32": "int_contents", "BYTES": "bytes_contents", "BOOL": "bool_contents"}


@pytest.fixture()
def stub(server):
    """Triton's own generated stub, for requests tritonclient's helpers cannot build
    (``contents`` instead of raw bytes)."""
    with grpc.insecure_channel(server.address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _proba(result, n_classes: int = 3) -> np.ndarray:
    return np.column_stack([result.as_numpy(f"probability({c})") for c in range(n_classes)])


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT64", "INT32"])
def test_matrix_raw(client: tc.InferenceServerClient, bundles, datatype: str) -> None:
    b = bundles["iris"]
    X = b.X[:11]
    dtype = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32}
    sent = X.astype(dtype[datatype])
    result = infer_matrix(client, "iris", sent, datatype)
    # what the caller sent, converted to float64 like the original model would see it
    expected = b.est.predict_proba(sent.astype(np.float64))
    np.testing.assert_allclose(_proba(result), expected, rtol=1e-9, atol=1e-12)
    labels = result.as_numpy("label")
    assert labels.dtype == np.int64 and labels.shape == (11,)
    assert (labels == b.est.predict(sent.astype(np.float64))).all()


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT64", "INT32"])
def test_matrix_contents(stub, bundles, datatype: str) -> None:
    b = bundles["iris"]
    X = b.X[:5]
    sent = X if datatype.startswith("FP") else np.round(X).astype(np.int64)
    req = service_pb2.ModelInferRequest(model_name="iris", id="req-7")
    t = req.inputs.add(name="features", datatype=datatype, shape=[5, 4])
    getattr(t.contents, CONTENTS_FIELD[datatype]).extend(sent.ravel().tolist())
    resp = stub.ModelInfer(req, timeout=10)
    assert resp.id == "req-7" and resp.model_version == "1"
    assert not resp.raw_output_contents  # contents in, contents out
    out = {o.name: o for o in resp.outputs}
    assert list(out["probability(0)"].shape) == [5]
    got = np.column_stack([out[f"probability({c})"].contents.fp64_contents for c in range(3)])
    ref = sent.astype(np.float32) if datatype == "FP32" else sent
    np.testing.assert_allclose(got, b.est.predict_proba(np.asarray(ref, dtype=np.float64)),
                               rtol=1e-6 if datatype == "FP32" else 1e-9, atol=1e-12)
    assert out["label"].datatype == "INT64"
    assert list(out["label"].contents.int64_contents) == list(
        b.est.predict(np.asarray(ref, dtype=np.float64)))


def test_columns_raw_with_bytes(client: tc.InferenceServerClient, bundles) -> None:
    b = bundles["mixed"]
    df = b.X.iloc[:9]
    inputs = []
    for name, dt, values in (("color", "BYTES", df["color"].to_numpy(dtype=object)),
                             ("size", "FP64", df["size"].to_numpy()),
                             ("count", "INT64", df["count"].to_numpy().astype(np.int64))):
        inp = tc.InferInput(name, [len(df)], dt)
        inp.set_data_from_numpy(values)
        inputs.append(inp)
    result = client.infer("mixed", inputs)
    np.testing.assert_allclose(
        np.column_stack([result.as_numpy("probability(no)"),
                         result.as_numpy("probability(yes)")]),
        b.est.predict_proba(df), rtol=1e-9, atol=1e-12)
    labels = [x.decode() for x in result.as_numpy("label")]
    assert labels == list(b.est.predict(df))


def test_columns_contents_with_bytes_and_column_shape(stub, bundles) -> None:
    b = bundles["mixed"]
    df = b.X.iloc[:4]
    req = service_pb2.ModelInferRequest(model_name="mixed", model_version="1")
    c = req.inputs.add(name="color", datatype="BYTES", shape=[4, 1])
    c.contents.bytes_contents.extend(s.encode() for s in df["color"])
    s = req.inputs.add(name="size", datatype="FP32", shape=[4])
    s.contents.fp32_contents.extend(df["size"].tolist())
    n = req.inputs.add(name="count", datatype="INT32", shape=[4, 1])
    n.contents.int_contents.extend(int(v) for v in df["count"])
    req.outputs.add(name="label")
    req.outputs.add(name="probability(yes)")
    resp = stub.ModelInfer(req, timeout=10)
    assert [o.name for o in resp.outputs] == ["label", "probability(yes)"]
    assert resp.outputs[0].datatype == "BYTES"
    ref = df.assign(size=df["size"].astype(np.float32).astype(np.float64))
    assert [x.decode() for x in resp.outputs[0].contents.bytes_contents] == list(
        b.est.predict(ref))
    np.testing.assert_allclose(resp.outputs[1].contents.fp64_contents,
                               b.est.predict_proba(ref)[:, 1], rtol=1e-9)


def test_bytes_matrix_for_mixed_model(client: tc.InferenceServerClient, bundles) -> None:
    b = bundles["mixed"]
    df = b.X.iloc[:3]
    text = np.array([[str(v) for v in row] for row in df[["color", "size", "count"]]
                     .itertuples(index=False)], dtype=object)
    inp = tc.InferInput("rows", list(text.shape), "BYTES")
    inp.set_data_from_numpy(text)
    result = client.infer("mixed", [inp])
    np.testing.assert_allclose(result.as_numpy("probability(yes)"),
                               b.est.predict_proba(df)[:, 1], rtol=1e-9)


def test_requested_outputs_raw(client: tc.InferenceServerClient, bundles) -> None:
    X = bundles["iris"].X[:2]
    result = infer_matrix(client, "iris", X, outputs=["label", "probability(2)"])
    names = [o.name for o in result.get_response().outputs]
    assert names == ["label", "probability(2)"]
    assert result.as_numpy("probability(0)") is None


def test_regression_value(client: tc.InferenceServerClient, bundles) -> None:
    b = bundles["ridge"]
    X = b.X[:20]
    result = infer_matrix(client, "ridge", X)
    np.testing.assert_allclose(result.as_numpy("value"), b.est.predict(X), rtol=1e-9)
    # per-column tensors by field name, in any order
    inputs = []
    for j in reversed(range(X.shape[1])):
        inp = tc.InferInput(f"x{j}", [len(X)], "FP64")
        inp.set_data_from_numpy(np.ascontiguousarray(X[:, j]))
        inputs.append(inp)
    np.testing.assert_allclose(client.infer("ridge", inputs).as_numpy("value"),
                               b.est.predict(X), rtol=1e-9)


def test_zero_rows(client: tc.InferenceServerClient) -> None:
    result = infer_matrix(client, "iris", np.zeros((0, 4)))
    assert result.as_numpy("probability(0)").shape == (0,)
    assert result.as_numpy("label").shape == (0,)


def test_large_batch_raw(client: tc.InferenceServerClient, bundles) -> None:
    b = bundles["iris"]
    X = np.tile(b.X, (30, 1))[:4500]  # under the test server's 5000-row limit
    result = infer_matrix(client, "iris", X, "FP32")
    np.testing.assert_allclose(_proba(result), b.est.predict_proba(X.astype(np.float32)
                                                                   .astype(np.float64)),
                               rtol=1e-9, atol=1e-12)


def test_missing_labels_on_the_wire():
    """A row without a prediction (label None): the empty string in a BYTES tensor, NaN in
    FP64; an INT64 tensor cannot carry it, so the request is refused, naming the row."""
    import math
    from types import SimpleNamespace

    from protos import inference_pb2 as pb
    from scorer.errors import InputError
    from scorer.server.codec import encode_outputs

    schema = SimpleNamespace(output_dtypes={"k": "BYTES", "n": "INT64", "d": "FP64"})
    resp = pb.ModelInferResponse()
    labels = np.array(["no", None], dtype=object)
    encode_outputs(resp, schema, {"k": labels, "d": np.array([1.0, None], dtype=object)},
                   ["k", "d"], 2, raw=False)
    assert list(resp.outputs[0].contents.bytes_contents) == [b"no", b""]
    assert math.isnan(resp.outputs[1].contents.fp64_contents[1])
    with pytest.raises(InputError, match="row 1: the model gives no prediction"):
        encode_outputs(pb.ModelInferResponse(), schema,
                       {"n": np.array([1, None], dtype=object)}, ["n"], 2, raw=True)


def test_raw_response_equals_the_field_by_field_message(server, bundles) -> None:
    """A raw response is spliced from cached serialized parts: its bytes must be those of the
    message built field by field, for every output selection and row count, first call or
    cached, with and without a request id, with short and long fields; the cached parts never
    take a request's data."""
    from protos import inference_pb2 as pb
    from scorer.server import codec
    from scorer.server.servicer import InferenceServicer

    servicer = InferenceServicer(server.repository, server.config, server.metrics,
                                 server._state)
    lv = server.repository.resolve("iris", "")
    X = bundles["iris"].X
    cases = [(1, [], ""), (1, [], "req-1"), (3, ["label", "probability(2)"], ""),
             (3, ["label", "probability(2)"], "x"), (1, [], ""),
             (40, [], "r" * 200)]  # lengths of 320 and 200 bytes: two-byte varints
    for rows, outputs, rid in cases:
        req = pb.ModelInferRequest(model_name="iris", id=rid)
        req.inputs.add(name="input", datatype="FP64", shape=[rows, 4])
        req.raw_input_contents.append(np.ascontiguousarray(X[:rows]).tobytes())
        for name in outputs:
            req.outputs.add(name=name)
        dec = codec.decode_request(req, lv.schema, max_rows=100)
        assert dec.raw and dec.rows == rows and not dec.inputs.flags.writeable
        np.testing.assert_array_equal(dec.inputs, X[:rows])
        arrays = lv.model.score_arrays(dec.inputs)
        expected = pb.ModelInferResponse(model_name="iris", model_version=lv.version, id=rid)
        for name in outputs or lv.schema.output_names:
            out = expected.outputs.add(name=name, datatype=lv.schema.output_dtypes[name],
                                       shape=[rows])
            assert out.datatype in ("FP64", "INT64")
            expected.raw_output_contents.append(
                np.ascontiguousarray(arrays[name], dtype=codec.RAW_DTYPES[out.datatype])
                .tobytes())
        got = servicer._response(lv, req, dec, arrays)
        assert isinstance(got, bytes)  # spliced: the same bytes as the serialized message
        assert got == expected.SerializeToString()
        assert pb.ModelInferResponse.FromString(got) == expected
    # what is kept per selection and row count holds no request's id or data
    for head, tensors in lv.responses.values():
        assert pb.ModelInferResponse.FromString(head + tensors) == pb.ModelInferResponse(
            model_name="iris", model_version=lv.version,
            outputs=pb.ModelInferResponse.FromString(tensors).outputs)
        assert not pb.ModelInferResponse.FromString(tensors).raw_output_contents


def test_plain_requests_take_the_scan_and_answer_as_the_general_path(server, bundles,
                                                                     monkeypatch) -> None:
    """A plain request (one raw tensor, no requested outputs) is read by the compiled scan,
    not by protobuf; its answer is byte for byte the general path's (the same request with
    every output requested in order goes the general way), for every datatype and row count.
    A plain request that breaks a rule of the model's is parsed again and answered with the
    general path's error."""
    from protos import inference_pb2 as pb
    from scorer.server import codec
    from scorer.server.servicer import InferenceServicer

    servicer = InferenceServicer(server.repository, server.config, server.metrics,
                                 server._state)

    class Ctx:
        def abort(self, code, details):
            raise RuntimeError(f"{code.name}: {details}")

    handler = servicer.handlers()["ModelInfer"]
    general = []
    real = codec.decode_request
    monkeypatch.setattr(codec, "decode_request",
                        lambda *a, **k: general.append(1) or real(*a, **k))
    lv = server.repository.resolve("iris", "")
    X = bundles["iris"].X
    for datatype, dtype in (("FP64", np.float64), ("FP32", np.float32), ("INT32", np.int32)):
        for rows in (1, 5):
            req = pb.ModelInferRequest(model_name="iris", id=f"q{rows}")
            req.inputs.add(name="input", datatype=datatype, shape=[rows, 4])
            req.raw_input_contents.append(X[:rows].astype(dtype).tobytes())
            n = len(general)
            fast = handler(req.SerializeToString(), Ctx())
            assert len(general) == n  # the scan read it
            for name in lv.schema.output_names:
                req.outputs.add(name=name)
            slow = handler(req.SerializeToString(), Ctx())
            assert len(general) == n + 1
            assert fast == slow
            resp = pb.ModelInferResponse.FromString(fast)
            assert resp.id == f"q{rows}" and len(resp.raw_output_contents) == len(
                lv.schema.output_names)
    req = pb.ModelInferRequest(model_name="iris")
    req.inputs.add(name="input", datatype="FP64", shape=[2, 3])
    req.raw_input_contents.append(np.zeros((2, 3)).tobytes())
    with pytest.raises(RuntimeError, match=r"INVALID_ARGUMENT: input 'input': expected shape "
                                           r"\[rows, 4\]"):
        handler(req.SerializeToString(), Ctx())


def test_an_id_column_request_decodes_as_the_general_path_does(server) -> None:
    """A plain request whose one tensor is a stage's INT64 id column (an entity request)
    skips protobuf (codec.decode_plain_ids): the same Request as the general path; anything
    else about it goes to the general path (None)."""
    from protos import inference_pb2 as pb
    from scorer.server import codec, wire

    wire.warm()
    lv = server.repository.resolve("iris", "")
    extras = frozenset({"customer_id"})

    def both(name: str, datatype: str, shape: list[int], raw: bytes):
        req = pb.ModelInferRequest(model_name="iris")
        req.inputs.add(name=name, datatype=datatype, shape=shape)
        req.raw_input_contents.append(raw)
        data = req.SerializeToString()
        plain = wire.parse_plain(data)
        fast = codec.decode_plain_ids(plain, lv.schema, max_rows=100) if plain else None
        return fast, req

    ids = np.array([7, -3, 2 ** 62], dtype=np.int64)
    for shape in ([3], [3, 1]):
        fast, req = both("customer_id", "INT64", shape, ids.tobytes())
        general = codec.decode_request(req, lv.schema, max_rows=100, extras=extras)
        assert fast is not None and fast.inputs is None and general.inputs is None
        assert (fast.rows, fast.outputs, fast.raw) == (general.rows, general.outputs,
                                                        general.raw)
        assert fast.extras.keys() == general.extras.keys() == {"customer_id"}
        assert fast.extras["customer_id"].tolist() == general.extras["customer_id"].tolist()
        assert not fast.extras["customer_id"].flags.writeable
    for name, datatype, shape, raw in [
            ("customer_id", "INT32", [3], ids.astype(np.int32).tobytes()),
            ("customer_id", "INT64", [3, 2], bytes(48)),  # not one column
            ("customer_id", "INT64", [3], bytes(16)),  # too few bytes
            ("customer_id", "INT64", [101], bytes(808)),  # more rows than max_rows
            ("customer_id", "INT64", [0], b""),
            (lv.schema.names[0], "INT64", [3], bytes(24))]:  # a model input
        fast, _ = both(name, datatype, shape, raw)
        assert fast is None, (name, datatype, shape)
