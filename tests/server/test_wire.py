"""scorer.server.wire: the compiled scan of plain ModelInferRequests agrees with protobuf."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import inference_pb2 as pb
from scorer.server import wire
from scorer.server.wire import parse_plain


@pytest.fixture(autouse=True, scope="module")
def _compiled_scan() -> None:
    """The scan compiled (a server compiles it once its models are loaded; until then
    :func:`parse_plain` sends every request the general way)."""
    wire.warm()

text = st.text(max_size=40)
DATATYPES = ["FP64", "FP32", "INT64", "INT32", "BYTES", "", "ÄÖ"]


def request(*, name: str = "m", version: str = "", rid: str = "", tensor: str = "input",
            datatype: str = "FP64", shape: tuple[int, ...] = (1, 3),
            raw: bytes = b"\0" * 24) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=name, model_version=version, id=rid)
    t = req.inputs.add(name=tensor, datatype=datatype)
    t.shape.extend(shape)
    req.raw_input_contents.append(raw)
    return req


def assert_same(got, msg: pb.ModelInferRequest) -> None:
    t = msg.inputs[0]
    assert (got.model_name, got.model_version, got.id) == (msg.model_name, msg.model_version,
                                                          msg.id)
    shape = [got.rows] if got.cols == -1 else [got.rows, got.cols]  # -1: a 1-D shape
    assert (got.tensor, got.datatype, shape) == (t.name, t.datatype, list(t.shape))
    assert got.raw == msg.raw_input_contents[0]


@settings(max_examples=150, deadline=None)
@given(name=text, version=text, rid=text, tensor=text, datatype=st.sampled_from(DATATYPES),
       rows=st.integers(0, (1 << 62) - 1), cols=st.integers(0, 1 << 40),
       raw=st.binary(max_size=400))
def test_plain_requests_read_as_protobuf_reads_them(name, version, rid, tensor, datatype,
                                                   rows, cols, raw) -> None:
    """Every field of any plain request, short and long (one- and multi-byte lengths and
    varints), unicode strings, empty ones (absent on the wire) included."""
    msg = request(name=name, version=version, rid=rid, tensor=tensor, datatype=datatype,
                  shape=(rows, cols), raw=raw)
    data = msg.SerializeToString()
    got = parse_plain(data)
    assert got is not None
    assert_same(got, msg)
    assert got.data is data
    # unknown fields (varint, fixed64, bytes, fixed32) are skipped, as protobuf keeps them
    extra = bytes([0x80 | (100 << 3) & 0x7F, 100 >> 4, 0x96, 0x01,  # field 100, varint
                   (9 << 3) | 1]) + b"\1" * 8 + bytes([(10 << 3) | 2, 2]) + b"xy" + \
        bytes([(11 << 3) | 5]) + b"\2" * 4
    both = extra + data + extra
    got = parse_plain(both)
    assert got is not None
    assert_same(got, msg)
    assert_same(got, pb.ModelInferRequest.FromString(both))


def test_unpacked_shape_reads_too() -> None:
    # a request with its shape as two unpacked varints (field 3, wire type 0)
    t = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP64").SerializeToString() + \
        bytes([3 << 3, 2, 3 << 3, 7])
    data = bytes([0x0A, 1]) + b"m" + bytes([(5 << 3) | 2, len(t)]) + t + \
        bytes([(7 << 3) | 2, 24]) + b"\0" * 24
    parsed = pb.ModelInferRequest.FromString(data)
    assert list(parsed.inputs[0].shape) == [2, 7]
    got = parse_plain(data)
    assert got is not None and (got.rows, got.cols) == (2, 7)
    assert_same(got, parsed)


def _with(change) -> bytes:
    msg = request()
    change(msg)
    return msg.SerializeToString()


@pytest.mark.parametrize("what, data", [
    ("requested outputs", _with(lambda m: m.outputs.add(name="label"))),
    ("contents", _with(lambda m: m.inputs[0].contents.fp64_contents.append(1.0))),
    ("empty contents", _with(lambda m: m.inputs[0].contents.SetInParent())),
    ("request parameters", _with(lambda m: m.parameters["a"].int64_param)),
    ("tensor parameters", _with(lambda m: m.inputs[0].parameters["b"].bool_param)),
    ("two inputs", _with(lambda m: m.inputs.add(name="x", datatype="FP64", shape=[1, 3]))),
    ("two raw contents", _with(lambda m: m.raw_input_contents.append(b"\0" * 24))),
    ("no raw contents", _with(lambda m: m.ClearField("raw_input_contents"))),
    ("no inputs", _with(lambda m: m.ClearField("inputs"))),
    ("3-D shape", _with(lambda m: m.inputs[0].shape.append(1))),
    ("negative dimension", _with(lambda m: m.inputs[0].shape.__setitem__(0, -1))),
    ("model name twice", request(name="a").SerializeToString() + bytes([0x0A, 1]) + b"b"),
    ("not UTF-8", bytes([0x0A, 2, 0xC3, 0x28]) + request(name="").SerializeToString()),
    ("field number 0", bytes([0x00, 0x01]) + request().SerializeToString()),
    ("a group", request().SerializeToString() + bytes([(12 << 3) | 3, (12 << 3) | 4])),
    ("model name as a varint", bytes([0x08, 0x01]) + request(name="").SerializeToString()),
    ("truncated", request().SerializeToString()[:-1]),
    ("empty", b""),
])
def test_anything_else_is_not_plain(what: str, data: bytes) -> None:
    assert parse_plain(data) is None, what


def test_a_1d_tensor_is_plain_with_no_columns() -> None:
    """(An id column, shape [rows]: the entity requests of the features stage.)"""
    msg = request(tensor="customer_id", datatype="INT64", shape=(3,), raw=bytes(24))
    got = parse_plain(msg.SerializeToString())
    assert got is not None and (got.rows, got.cols) == (3, -1)
    assert_same(got, msg)


def test_only_bytes_are_scanned() -> None:
    data = request().SerializeToString()
    assert parse_plain(data) is not None
    assert parse_plain(bytearray(data)) is None
    assert parse_plain(memoryview(data)) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_requests_are_refused_or_read_as_protobuf_reads_them(data) -> None:
    """Cut, flipped and inserted bytes: the scan never reads past the message, and what it
    calls plain, protobuf parses to the same fields (else the general path would word an
    error the scan hid)."""
    msg = request(name=data.draw(text), rid=data.draw(text),
                  shape=(data.draw(st.integers(0, 300)), 3),
                  raw=data.draw(st.binary(max_size=200)))
    buf = bytearray(msg.SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["cut", "flip", "insert"]))
        at = data.draw(st.integers(0, len(buf)))
        if op == "cut":
            del buf[at:]
        elif op == "flip" and at < len(buf):
            buf[at] ^= 1 << data.draw(st.integers(0, 7))
        else:
            buf[at:at] = bytes([data.draw(st.integers(0, 255))])
    damaged = bytes(buf)
    got = parse_plain(damaged)
    if got is None:
        return
    parsed = pb.ModelInferRequest.FromString(damaged)  # must not raise
    assert_same(got, parsed)
    assert not parsed.outputs and not parsed.parameters and len(parsed.inputs) == 1
    assert not parsed.inputs[0].HasField("contents") and not parsed.inputs[0].parameters


def test_many_rows_of_a_real_request_decode_to_the_sent_matrix() -> None:
    X = np.random.default_rng(0).normal(size=(300, 30))
    got = parse_plain(request(shape=X.shape, raw=X.tobytes()).SerializeToString())
    assert got is not None
    np.testing.assert_array_equal(np.frombuffer(got.raw).reshape(got.rows, got.cols), X)


def test_warm_reads_its_own_request() -> None:
    from numba.core import config

    wire.warm()
    assert wire._ENTRY
    if not config.DISABLE_JIT:
        assert wire._ENTRY[0] is not wire.scan_request  # the compiled entry point


def _varint(v: int, n: int) -> bytes:
    """``v`` as a varint of exactly ``n`` bytes (non-minimal: padded with continuation)."""
    out = []
    for k in range(n):
        b = (v >> (7 * k)) & 0x7F
        out.append(b | (0x80 if k < n - 1 else 0))
    return bytes(out)


def _field(num: int, payload: bytes, *, key: int = 1, length: int = 1) -> bytes:
    return _varint((num << 3) | 2, key) + _varint(len(payload), length) + payload


def _request(wide: str, n: int) -> bytes:
    """A plain request with the key or the length prefix ``wide`` written in ``n`` bytes."""
    def f(where: str, num: int, payload: bytes) -> bytes:
        return _field(num, payload, key=n if wide == f"{where} key" else 1,
                      length=n if wide == f"{where} length" else 1)

    tensor = f("tensor name", 1, b"input") + f("datatype", 2, b"FP64") + \
        f("shape", 3, bytes([1, 3]))
    return f("model name", 1, b"m") + f("inputs", 5, tensor) + f("unknown", 99, b"xy") + \
        f("raw", 7, bytes(24))


@pytest.mark.parametrize("where", ["model name", "inputs", "tensor name", "datatype",
                                   "shape", "unknown", "raw"])
@pytest.mark.parametrize("part", ["key", "length"])
def test_keys_and_lengths_of_up_to_five_bytes_only(where: str, part: str) -> None:
    """Protobuf reads a field key or a length prefix written in up to 5 bytes, and refuses a
    longer one: so must the scan (else a request protobuf calls malformed would be scored)."""
    five = _request(f"{where} {part}", 5)
    got = parse_plain(five)
    assert got is not None
    assert_same(got, pb.ModelInferRequest.FromString(five))
    assert (got.model_name, got.tensor, got.rows, got.cols) == ("m", "input", 1, 3)
    six = _request(f"{where} {part}", 6)
    with pytest.raises(DecodeError):
        pb.ModelInferRequest.FromString(six)
    assert parse_plain(six) is None


def test_shape_values_may_take_ten_bytes() -> None:
    shape = _varint(2, 10) + _varint(3, 10)
    tensor = _field(1, b"input") + _field(2, b"FP64") + _field(3, shape)
    data = _field(1, b"m") + _field(5, tensor) + _field(7, bytes(48))
    got = parse_plain(data)
    assert got is not None and (got.rows, got.cols) == (2, 3)
    assert_same(got, pb.ModelInferRequest.FromString(data))


def test_until_the_scan_is_compiled_requests_take_the_general_path(monkeypatch) -> None:
    """With an empty Numba cache the server compiles the scan on the background compile
    thread once its models are loaded, not before them: until then every request is "not
    plain" (protobuf parses it, with the same fields), and the first one queues the
    compile, ahead of other queued compiles, once."""
    queued = []
    monkeypatch.setattr(wire, "_ENTRY", [])
    monkeypatch.setattr(wire, "_LATER", [])
    monkeypatch.setattr(wire, "compile_later",
                        lambda kernel, args, then, *, first=False: queued.append(
                            (kernel, then, first)))
    data = request().SerializeToString()
    assert parse_plain(data) is None
    assert parse_plain(data) is None
    assert [(k, f) for k, _, f in queued] == [(wire.scan_request, True)]
    queued[0][1]()  # the background thread compiled it
    assert_same(parse_plain(data), request())
