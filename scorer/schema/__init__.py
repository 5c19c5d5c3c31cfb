"""The bundle manifest's JSON Schema (``manifest.schema.json``, published with the format
spec, docs/bundle-format.md §2) and the validator the bundle reader applies it with.

The validator interprets the keywords the schema uses (Draft 2020-12 meaning: ``type``,
``enum``, ``const``, ``pattern``, ``minLength``, ``minimum``, ``maximum``, ``items``,
``properties``, ``required``, ``additionalProperties``, ``anyOf``, local ``$ref``), so the
file is the one statement of the rules; it refuses a schema that uses any other keyword
rather than ignore it. One rule is stricter than JSON Schema's: an ``integer`` is a JSON
integer (Python ``int``, not ``bool``), so ``1.0`` and ``true`` are not op versions.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import BundleFormatError

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description"}
_KEYWORDS = {"type", "enum", "const", "pattern", "minLength", "minimum", "maximum", "items",
             "properties", "required", "additionalProperties", "anyOf", "$ref"} | _ANNOTATIONS


@cache
def manifest_schema() -> dict[str, Any]:
    """The parsed schema file."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    # ECMA-262 '$' matches only at the very end; Python's also before a final newline
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _where(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "the manifest"


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _errors(value: Any, schema: dict[str, Any] | bool, path: tuple[Any, ...],
            root: dict[str, Any]) -> str | None:
    """The first violation of ``schema`` by ``value`` at ``path``, or None."""
    if schema is True:
        return None
    if schema is False:
        return f"{_where(path)}: key not allowed"
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise RuntimeError(f"manifest schema uses unsupported keywords {sorted(unknown)}")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise RuntimeError(f"manifest schema: only local $refs are supported ({ref})")
        err = _errors(value, root["$defs"][ref[len("#/$defs/"):]], path, root)
        if err:
            return err
    if "anyOf" in schema:
        errs = [_errors(value, s, path, root) for s in schema["anyOf"]]
        if all(errs):
            # the message of a branch of the value's type, else the list of what is allowed
            typed = [e for s, e in zip(schema["anyOf"], errs, strict=True)
                     if _type_matches(value, s, root)]
            return typed[0] if typed else (
                f"{_where(path)}: {_json(value)} is not allowed here (expected "
                f"{' or '.join(_describe(s, root) for s in schema['anyOf'])})")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return f"{_where(path)}: must be {' or '.join(types)}, not {_json(value)}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"{_where(path)}: must be {_json(schema['const'])}, not {_json(value)}"
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return (f"{_where(path)}: {_json(value)} is not one of "
                f"{', '.join(_json(e) for e in schema['enum'])}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{_where(path)}: must not be empty"
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            return f"{_where(path)}: {_json(value)} does not match {schema['pattern']}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{_where(path)}: {value} is below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{_where(path)}: {value} is above {schema['maximum']}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            err = _errors(item, schema["items"], (*path, i), root)
            if err:
                return err
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{_where(path)}: required key '{key}' is missing"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            err = _errors(item, props.get(key, extra), (*path, key), root)
            if err:
                return err
    return None


def _resolve(schema: dict[str, Any] | bool, root: dict[str, Any]) -> dict[str, Any] | bool:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = root["$defs"][schema["$ref"][len("#/$defs/"):]]
    return schema


def _type_matches(value: Any, schema: dict[str, Any] | bool, root: dict[str, Any]) -> bool:
    """Whether ``value`` has the JSON type ``schema`` (a branch of an anyOf) is about."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or "type" not in schema:
        return False
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return any(_TYPES[t](value) for t in types)


def _describe(schema: dict[str, Any] | bool, root: dict[str, Any]) -> str:
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return "anything" if schema else "nothing"
    if "enum" in schema:
        return " or ".join(_json(e) for e in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_describe(s, root) for s in schema["anyOf"])
    t = schema.get("type", "anything")
    return " or ".join(t) if isinstance(t, list) else t


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) \
        else a == b


def validate_manifest(manifest: Any, *, where: str = "manifest.json") -> None:
    """Refuse ``manifest`` (parsed JSON) unless it satisfies the manifest schema.

    Raises
    ------
    BundleFormatError
        Naming the first offending key, e.g. ``steps[0].op_version: must be integer, not
        1.5``.
    """
    schema = manifest_schema()
    err = _errors(manifest, schema, (), schema)
    if err:
        raise BundleFormatError(f"{where}: {err}")
