"""The committed stubs are current, and the proto is wire compatible with Triton's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protos import inference_pb2 as pb
from protos.generate import OUTPUTS, ROOT, generate

# lines that name the generator's version, not the proto's content
_STAMPS = [
    re.compile(r"^# Protobuf Python Version: .*$", re.M),
    re.compile(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)", re.S),
    re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M),
]


def _normalise(text: str) -> str:
    for pattern in _STAMPS:
        text = pattern.sub("<stamp>", text)
    return text


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    generate(tmp_path)
    for rel in OUTPUTS:
        fresh = (tmp_path / rel).read_text(encoding="utf-8")
        committed = (ROOT / rel).read_text(encoding="utf-8")
        assert _normalise(fresh) == _normalise(committed), (
            f"{rel} is out of date with protos/inference.proto: run `python -m protos.generate`")


def _fields(desc) -> dict[str, tuple[int, int, str]]:
    return {f.name: (f.number, f.type, f.message_type.name if f.message_type else "")
            for f in desc.fields}


def _compare(ours, theirs, path: str) -> None:
    mine = _fields(ours)
    other = _fields(theirs)
    for name, (number, ftype, mtype) in mine.items():
        assert name in other, f"{path}.{name} is not in Triton's definition"
        assert other[name][:2] == (number, ftype), (
            f"{path}.{name}: ours is field {number} type {ftype}, Triton's {other[name][:2]}")
        assert other[name][2] == mtype or "Entry" in mtype, f"{path}.{name}: message type"
    for nested in ours.nested_types:
        if nested.GetOptions().map_entry:
            continue
        _compare(nested, theirs.nested_types_by_name[nested.name], f"{path}.{nested.name}")


def test_wire_compatible_with_tritonclient() -> None:
    """Every message and field we define has Triton's number and type (tritonclient ships
    Triton's service and model_config descriptors)."""
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    from tritonclient.grpc import model_config_pb2

    theirs = {**model_config_pb2.DESCRIPTOR.message_types_by_name,
              **service_pb2.DESCRIPTOR.message_types_by_name}
    ours = pb.DESCRIPTOR.message_types_by_name
    assert ours, "no messages generated"
    for name, desc in ours.items():
        assert name in theirs, f"message {name} is not in Triton's protocol"
        _compare(desc, theirs[name], name)
    mine = pb.DESCRIPTOR.enum_types_by_name["DataType"]
    other = model_config_pb2.DESCRIPTOR.enum_types_by_name["DataType"]
    assert {v.name: v.number for v in mine.values} == {v.name: v.number for v in other.values}
    svc = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    tsvc = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert pb.DESCRIPTOR.package == "inference"
    for m in svc.methods:
        t = tsvc.methods_by_name[m.name]
        assert (m.input_type.name, m.output_type.name) == (t.input_type.name,
                                                           t.output_type.name)


def test_kserve_core_messages_present() -> None:
    names = set(pb.DESCRIPTOR.message_types_by_name)
    for rpc in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                "ModelInfer", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
                "ModelStatistics"):
        assert f"{rpc}Request" in names and f"{rpc}Response" in names
    meta = pb.ModelMetadataResponse.DESCRIPTOR
    assert "parameters" not in meta.fields_by_name  # KServe has none: provenance is elsewhere
