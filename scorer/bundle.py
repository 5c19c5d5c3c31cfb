"""Reading and writing bundle directories (format v1, see docs/bundle-format.md).

A bundle is a directory holding ``manifest.json`` and ``tables/*.parquet``. Writing is atomic:
everything goes into a temporary sibling directory which is renamed into place only when
complete, so a crash leaves either the old bundle, no bundle, or an ignorable temp directory,
never a half-written bundle that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import BundleFormatError, IncompatibleBundleError, IntegrityError
from .files import TMP_INFIX, orphaned_temps
from .fsutil import apply_umask
from .ir import Bundle, Field, Output, Step, Table, Verification
from .schema import validate_manifest

FORMAT = "tablescore-bundle"
SCHEMA_VERSION = "1.0"
READS_MAJOR = 1
MANIFEST = "manifest.json"
TABLES_DIR = "tables"

# Top-level manifest keys of schema 1.0; anything else is a later minor addition, kept in
# ``Bundle.extra`` and otherwise ignored.
_KNOWN_KEYS = {
    "format", "schema_version", "model", "created", "producer", "inputs", "outputs", "steps",
    "tables", "verification", "drift_reference", "fingerprint",
}


# --- JSON helpers ----------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_json(obj: Any) -> Any:
    """Non-finite floats become the strings "NaN", "Infinity", "-Infinity" (JSON has none)."""
    if isinstance(obj, float | np.floating):
        x = float(obj)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite_json(obj.item())
    return obj


def canonical_json(obj: Any) -> bytes:
    """The byte form hashed for the fingerprint: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        _finite_json(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False, default=_json_default,
    ).encode("utf-8")


def fingerprint_of(manifest: dict[str, Any]) -> str:
    """sha256 over the canonical manifest without ``fingerprint`` and ``created``.

    Table contents enter through their sha256 entries, so equal fingerprints mean equal models.
    """
    body = {k: v for k, v in manifest.items() if k not in ("fingerprint", "created")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- tables ----------------------------------------------------------------------------------
def _to_arrow(table: Table) -> pa.Table:
    arrays = {}
    n = None
    for name, col in table.items():
        arr = np.asarray(col)
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            raise BundleFormatError(f"table column '{name}' has {len(arr)} rows, expected {n}")
        if arr.dtype.kind in "OUS":
            arrays[name] = pa.array([None if v is None else str(v) for v in arr], pa.string())
        else:
            arrays[name] = pa.array(arr)
    return pa.table(arrays)


def _from_arrow(t: pa.Table) -> Table:
    out: Table = {}
    for name in t.column_names:
        col = t.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out[name] = np.array(col.to_pylist(), dtype=object)
        else:
            out[name] = col.to_numpy()
    return out


def _column_types(t: pa.Table) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in t.schema]


# --- writing ---------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_table(root: Path, rel: str, table: Table, registry: dict[str, Any]) -> str:
    t = _to_arrow(table)
    path = root / rel
    pq.write_table(t, path, compression="zstd")
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    registry[rel] = {"sha256": _sha256_file(path), "rows": t.num_rows, "columns": _column_types(t)}
    return rel


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


def manifest_of(bundle: Bundle, table_entries: dict[str, Any], step_tables: list[dict[str, str]],
                verification: dict[str, Any] | None) -> dict[str, Any]:
    """Build the manifest dict (without fingerprint) for ``bundle``."""
    steps = []
    for step, tables in zip(bundle.steps, step_tables, strict=True):
        steps.append({
            "op": step.op,
            "op_version": int(step.op_version),
            "name": step.name,
            "inputs": list(step.inputs),
            "outputs": list(step.outputs),
            "params": step.params,
            "tables": tables,
        })
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model": {"name": bundle.name, "version": str(bundle.version), "task": bundle.task},
        "created": bundle.created or datetime.now(UTC).isoformat(timespec="seconds"),
        "producer": bundle.producer,
        "inputs": [f.to_json() for f in bundle.inputs],
        "outputs": [o.to_json() for o in bundle.outputs],
        "steps": steps,
        "tables": table_entries,
        "verification": verification,
        "drift_reference": bundle.drift_reference,
    }
    manifest.update(bundle.extra)
    return manifest


def default_identity(path: str | os.PathLike[str], name: str | None = None,
                     version: str | None = None) -> tuple[str, str]:
    """The model name and version a bundle written to ``path`` records where the caller gives
    none: a version directory of a model repository (``<model>/<integer>``, as
    ``tablescore serve --repository`` reads them) gives its parent's name and its own; any
    other directory (or file) its own name and version ``"1"``.

    Parameters
    ----------
    path : path
        Where the bundle goes.
    name, version : str, optional
        What the caller gave (kept as given).

    Returns
    -------
    (str, str)
        ``(name, version)``.
    """
    p = Path(os.path.abspath(path))
    in_repository = p.name.isdigit() and bool(p.parent.name)
    if name is None:
        name = p.parent.name if in_repository else (p.name or "model")
    if version is None:
        version = p.name if in_repository else "1"
    return name, str(version)


def write_bundle(bundle: Bundle, path: str | os.PathLike[str], *, overwrite: bool = False,
                 _crash_after: str | None = None) -> Path:
    """Write ``bundle`` to directory ``path`` atomically and return the path.

    Parameters
    ----------
    bundle : Bundle
        The model to write.
    path : path-like
        Target directory; must not exist unless ``overwrite``.
    overwrite : bool
        Replace an existing bundle. The old one is moved aside first and removed only after the
        new one is in place.
    _crash_after : str, optional
        Testing hook: raise after the named phase ("tables", "manifest") to simulate a crash.
    """
    target = Path(path)
    if getattr(bundle, "tables_released", False):
        raise ValueError(f"bundle '{bundle.name}' was loaded with keep_tables=False: its "
                         "parameter tables are gone, so it cannot be written")
    if target.exists() and not overwrite:
        raise FileExistsError(f"bundle path '{target}' exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(target)
    # the writer's pid in the name: a directory a killed writer left is recognised as stale
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_INFIX}{os.getpid()}-",
                                dir=target.parent))
    try:
        (tmp / TABLES_DIR).mkdir()
        entries: dict[str, Any] = {}
        step_tables: list[dict[str, str]] = []
        for i, step in enumerate(bundle.steps):
            refs = {}
            for role, table in step.tables.items():
                rel = f"{TABLES_DIR}/{i:03d}_{_safe(step.name)}_{_safe(role)}.parquet"
                refs[role] = _write_table(tmp, rel, table, entries)
            step_tables.append(refs)
        verification = None
        if bundle.verification is not None:
            v = bundle.verification
            vt: Table = {}
            for k, col in v.inputs.items():
                vt[f"input:{k}"] = col
            for k, col in v.expected.items():
                vt[f"expected:{k}"] = col
            rel = _write_table(tmp, f"{TABLES_DIR}/verification.parquet", vt, entries)
            verification = {
                "table": rel,
                "rows": len(next(iter(v.inputs.values()))) if v.inputs else 0,
                "abs_tol": v.abs_tol,
                "rel_tol": v.rel_tol,
            }
            if v.coverage is not None:
                verification["coverage"] = dict(v.coverage)
        if _crash_after == "tables":
            raise RuntimeError("simulated crash after tables")
        manifest = manifest_of(bundle, entries, step_tables, verification)
        manifest["fingerprint"] = fingerprint_of(manifest)
        data = json.dumps(_finite_json(manifest), indent=2, ensure_ascii=False, allow_nan=False,
                          default=_json_default)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp / TABLES_DIR)
        # mkdtemp made it 0700 and the rename keeps that: give it mkdir's mode (the files
        # inside were created by open and already honour the umask)
        apply_umask(tmp, directory=True)
        _fsync_dir(tmp)
        if _crash_after == "manifest":
            raise RuntimeError("simulated crash after manifest")
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        bundle.fingerprint = manifest["fingerprint"]
        return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temp_dirs(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary bundle directories that killed writers of ``target`` left
    behind (``.<name>.tablescore-tmp-<pid>-*``, the pid no longer running).

    :func:`scorer.files.remove_stale_temps` for directories: a writer that dies by SIGKILL
    cannot clean up (SIGTERM and Ctrl-C do, through ``except BaseException``). A directory
    whose pid is this process's or a live process's is left alone (a concurrent writer's).
    Returns the directories removed.
    """
    removed = []
    for c in orphaned_temps(target):
        if not c.is_dir():
            continue
        shutil.rmtree(c, ignore_errors=True)
        if not c.exists():
            removed.append(c)
    return removed


# --- reading ---------------------------------------------------------------------------------
#: manifest.json larger than this is refused before it is read (64 MiB: a manifest holds
#: names, vocabularies and scalar params; the tables hold the bulk)
MAX_MANIFEST_BYTES = 64 << 20
#: deepest nesting of arrays / objects accepted in manifest.json (schema 1.0 needs 5)
MAX_MANIFEST_DEPTH = 64
_SCHEMA_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


def parse_schema_version(text: Any) -> tuple[int, int]:
    """``(major, minor)`` of ``"M.m"``: ASCII digits without sign or leading zeros (``int``
    alone would take ``"-3"``, ``"01"`` and non-ASCII digits)."""
    m = _SCHEMA_VERSION.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise BundleFormatError(f"schema_version {text!r} is not 'major.minor'")
    return int(m.group(1)), int(m.group(2))


def check_schema_version(text: Any) -> None:
    major, minor = parse_schema_version(text)
    if major > READS_MAJOR:
        raise IncompatibleBundleError(
            f"bundle schema {major}.{minor} is newer than this scorer (reads {READS_MAJOR}.x)"
        )
    if major < READS_MAJOR:
        raise IncompatibleBundleError(
            f"bundle schema {major}.{minor} is older than this scorer supports "
            f"(reads {READS_MAJOR}.x)"
        )


def _read_capped(path: Path, cap: int) -> bytes:
    """The bytes of ``path``, refused when over ``cap``: checked with stat before reading,
    and at most ``cap + 1`` bytes are read (the file may grow in between)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = b"" if size > cap else fh.read(cap + 1)
    if size > cap or len(data) > cap:
        raise BundleFormatError(f"{path}: {max(size, len(data))} bytes, over the limit of "
                                f"{cap} bytes for a manifest")
    return data


def _depth_over(obj: Any, limit: int) -> bool:
    """Whether arrays / objects nest deeper than ``limit`` (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            if d > limit:
                return True
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (write it as the string \"{name}\")")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of the bundle at ``path``.

    Refuses (BundleFormatError) a manifest over :data:`MAX_MANIFEST_BYTES` before reading
    it, one that is not UTF-8 JSON or nests deeper than :data:`MAX_MANIFEST_DEPTH`, and one
    that breaks the manifest schema (``scorer/schema/manifest.schema.json``); then checks the
    schema major version (IncompatibleBundleError).
    """
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise BundleFormatError(f"bundle '{root}' is not a directory")
    if not mpath.is_file():
        raise BundleFormatError(f"bundle '{root}' has no {MANIFEST}")
    data = _read_capped(mpath, MAX_MANIFEST_BYTES)
    too_deep = False
    try:
        # NaN / Infinity literals are not JSON (the format writes them as strings, §2)
        manifest = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BundleFormatError(f"{mpath}: not valid JSON ({exc})") from exc
    except RecursionError:  # nested too deep for the parser
        too_deep = True
    if too_deep or _depth_over(manifest, MAX_MANIFEST_DEPTH):
        raise BundleFormatError(f"{mpath}: arrays / objects nested deeper than "
                                f"{MAX_MANIFEST_DEPTH} levels")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleFormatError(f"{mpath}: 'format' is not '{FORMAT}'")
    # the major version first: a newer major may change the schema itself
    check_schema_version(manifest.get("schema_version"))
    validate_manifest(manifest, where=str(mpath))
    return manifest


def check_table_path(rel: object) -> str:
    """``rel`` if it is a plain relative path inside a bundle (``tables/x.parquet``):
    BundleFormatError for an absolute path, a ``..``, ``.`` or empty part, a backslash or a
    NUL (checked as text, before any file is touched: a symlink in the bundle cannot make a
    path that looks inside point outside)."""
    if (not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel
            or "\0" in rel or any(p in ("", ".", "..") for p in rel.split("/"))):
        raise BundleFormatError(f"table path {rel!r} is not a plain relative path inside the "
                                "bundle directory")
    return rel


def _load_table(root: Path, rel: str, entries: dict[str, Any], verify: bool) -> Table:
    if rel not in entries:
        raise BundleFormatError(f"table '{rel}' is referenced but not listed in the manifest")
    check_table_path(rel)
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise BundleFormatError(f"table path '{rel}' escapes the bundle directory")
    if not path.is_file():
        raise BundleFormatError(f"table '{rel}' is missing from the bundle")
    if verify:
        digest = _sha256_file(path)
        if digest != entries[rel].get("sha256"):
            raise IntegrityError(
                f"table '{rel}' does not match its sha256 in the manifest: it was changed "
                "after export"
            )
    try:
        return _from_arrow(pq.read_table(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise BundleFormatError(f"table '{rel}' is not readable Parquet ({exc})") from exc


def read_bundle(path: str | os.PathLike[str], *, verify_hashes: bool = True) -> Bundle:
    """Read and check a bundle directory.

    Checks, in order: the format tag, the schema major version, the fingerprint over the
    manifest, and the sha256 of every table. Op names and versions are checked by the scorer
    when it binds the steps (``scorer.ops``).

    Raises
    ------
    BundleFormatError, IncompatibleBundleError, IntegrityError
    """
    root = Path(path)
    manifest = read_manifest(root)
    try:
        recorded = manifest.get("fingerprint")
        if verify_hashes and recorded != fingerprint_of(manifest):
            raise IntegrityError(
                f"bundle '{root}': manifest fingerprint mismatch (manifest edited after export)"
            )
        entries = manifest.get("tables") or {}
        steps = []
        for s in manifest["steps"]:
            tables = {role: _load_table(root, rel, entries, verify_hashes)
                      for role, rel in (s.get("tables") or {}).items()}
            steps.append(Step(
                op=s["op"], op_version=int(s["op_version"]), name=s["name"],
                inputs=list(s.get("inputs", [])), outputs=list(s.get("outputs", [])),
                params=dict(s.get("params") or {}), tables=tables,
            ))
        verification = None
        v = manifest.get("verification")
        if v:
            vt = _load_table(root, v["table"], entries, verify_hashes)
            verification = Verification(
                inputs={k[len("input:"):]: c for k, c in vt.items() if k.startswith("input:")},
                expected={k[len("expected:"):]: c for k, c in vt.items()
                          if k.startswith("expected:")},
                abs_tol=float(v["abs_tol"]), rel_tol=float(v["rel_tol"]),
                coverage=dict(v["coverage"]) if v.get("coverage") is not None else None,
            )
        model = manifest["model"]
        return Bundle(
            name=model["name"], version=str(model.get("version", "1")),
            task=model.get("task", "regression"),
            inputs=[Field.from_json(f) for f in manifest["inputs"]],
            steps=steps,
            outputs=[Output.from_json(o) for o in manifest["outputs"]],
            producer=manifest.get("producer") or {},
            created=manifest.get("created"),
            verification=verification,
            drift_reference=manifest.get("drift_reference"),
            schema_version=manifest["schema_version"],
            fingerprint=recorded,
            extra={k: v for k, v in manifest.items() if k not in _KNOWN_KEYS},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, IntegrityError | IncompatibleBundleError | BundleFormatError):
            raise
        raise BundleFormatError(f"bundle '{root}': malformed manifest ({exc!r})") from exc
