"""manifest.json is validated against the published schema (scorer/schema) before anything
reads it: exact schema_version syntax, integer op versions, known field types, well-formed
steps, bounded nesting and a size cap checked before reading."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

import exporters
import scorer.bundle as bundle_mod
from scorer.bundle import fingerprint_of, read_bundle
from scorer.errors import BundleFormatError
from scorer.schema import SCHEMA_PATH, manifest_schema, validate_manifest


@pytest.fixture()
def bundle_dir(tmp_path: Path, iris_logreg) -> Path:
    model, X = iris_logreg
    exporters.export(model, tmp_path / "iris", sample=X[:5])
    return tmp_path / "iris"


def _edit(path: Path, edit) -> None:
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    m["fingerprint"] = fingerprint_of(m)  # so only the schema can refuse it
    (path / "manifest.json").write_text(json.dumps(m))


def _set(*keys, value):
    def edit(m):
        for k in keys[:-1]:
            m = m[k]
        m[keys[-1]] = value
    return edit


def test_exported_manifest_satisfies_the_schema(bundle_dir: Path) -> None:
    validate_manifest(json.loads((bundle_dir / "manifest.json").read_text()))
    assert read_bundle(bundle_dir).schema_version == "1.0"


@pytest.mark.parametrize("value", ["1.-3", "01.0", "1.00", "\u0661.0", "1.0\n", " 1.0", "+1.0",
                                   "1", "1.0.0", 1.0, None])
def test_schema_version_must_be_plain_ascii_major_minor(bundle_dir: Path, value) -> None:
    _edit(bundle_dir, _set("schema_version", value=value))
    with pytest.raises(BundleFormatError, match="schema_version"):
        read_bundle(bundle_dir)


def test_schema_version_minor_additions_still_read(bundle_dir: Path) -> None:
    _edit(bundle_dir, _set("schema_version", value="1.12"))
    assert read_bundle(bundle_dir).schema_version == "1.12"


@pytest.mark.parametrize("value", [1.9, 1.0, True, "1", -1, None, 2**31])
def test_op_version_must_be_an_integer(bundle_dir: Path, value) -> None:
    _edit(bundle_dir, _set("steps", 0, "op_version", value=value))
    with pytest.raises(BundleFormatError, match=r"steps\[0\]\.op_version"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("keys,value,where", [
    (("inputs", 0, "type"), "complex", r"inputs\[0\]\.type: \"complex\" is not one of"),
    (("inputs", 0, "missing"), "sometimes", r"inputs\[0\]\.missing"),
    (("inputs", 0, "categories"), "abc", r"inputs\[0\]\.categories"),
    (("outputs", 0, "kind"), "guess", r"outputs\[0\]\.kind"),
    (("steps",), [1, 2], r"steps\[0\]: must be object, not 1"),
    (("steps", 0, "inputs"), [1], r"steps\[0\]\.inputs\[0\]: must be string"),
    (("steps", 0, "params"), [1], r"steps\[0\]\.params"),
    (("steps", 0, "tables"), {"coefficients": 3}, r"steps\[0\]\.tables\.coefficients"),
    (("model",), "iris", r"model: must be object"),
    (("model", "task"), "ranking", r"model\.task"),
    (("verification", "abs_tol"), "tiny", r"verification\.abs_tol"),
    (("tables",), [], r"tables: must be object"),
])
def test_malformed_keys_are_refused_by_name(bundle_dir: Path, keys, value, where) -> None:
    _edit(bundle_dir, _set(*keys, value=value))
    with pytest.raises(BundleFormatError, match=where):
        read_bundle(bundle_dir)


def test_missing_required_key_is_named(bundle_dir: Path) -> None:
    _edit(bundle_dir, lambda m: m["steps"][0].pop("op"))
    with pytest.raises(BundleFormatError, match=r"steps\[0\]: required key 'op' is missing"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("depth", [100, 200_000])
def test_deep_nesting_is_refused_not_a_recursion_error(bundle_dir: Path, depth: int) -> None:
    text = (bundle_dir / "manifest.json").read_text()
    nested = "[" * depth + "]" * depth
    (bundle_dir / "manifest.json").write_text(text[:-1] + f', "x_deep": {nested}}}')
    with pytest.raises(BundleFormatError, match="nested deeper than 64"):
        read_bundle(bundle_dir)


def test_nan_literals_are_not_json(bundle_dir: Path) -> None:
    text = (bundle_dir / "manifest.json").read_text()
    (bundle_dir / "manifest.json").write_text(text[:-1] + ', "x": NaN}')
    with pytest.raises(BundleFormatError, match="NaN is not a JSON value"):
        read_bundle(bundle_dir)


def test_oversized_manifest_is_refused_before_it_is_read(bundle_dir: Path) -> None:
    path = bundle_dir / "manifest.json"
    with open(path, "r+b") as fh:  # 1 GiB, sparse: no disk, and reading it would take 1 GiB
        fh.truncate(1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(BundleFormatError, match="over the limit of 67108864 bytes"):
            read_bundle(bundle_dir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_size_cap_applies_to_the_bytes_read(bundle_dir: Path, monkeypatch) -> None:
    size = (bundle_dir / "manifest.json").stat().st_size
    monkeypatch.setattr(bundle_mod, "MAX_MANIFEST_BYTES", size)
    read_bundle(bundle_dir)  # exactly at the cap: read
    monkeypatch.setattr(bundle_mod, "MAX_MANIFEST_BYTES", size - 1)
    with pytest.raises(BundleFormatError, match="over the limit"):
        read_bundle(bundle_dir)


def test_schema_file_is_valid_draft_2020_12_and_agrees(bundle_dir: Path) -> None:
    """Cross-check with the reference implementation where it is installed."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    m = json.loads((bundle_dir / "manifest.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(m)
    m["inputs"][0]["type"] = "complex"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(m)
    assert SCHEMA_PATH.name == "manifest.schema.json"
