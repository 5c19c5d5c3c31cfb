"""A bundle as an installable wheel: ``tablescore package BUNDLE --name NAME --out DIR``.

The wheel (PEP 427, ``py3-none-any``) holds the bundle and a small module named NAME with
dashes as underscores::

    import churn_model
    m = churn_model.load()          # a scorer.Model, verified on load
    m.predict_proba(X)

It requires only ``tablescore`` (``Requires-Dist: tablescore``), whose scoring dependencies
come with it. tablescore is not on an index: install both from files, e.g.
``pip install --no-index --find-links DIR churn-model`` with tablescore's wheel in DIR too.

The wheel is written by hand with :mod:`zipfile` (no setuptools at run time) and is
reproducible: entries sorted, every timestamp 1980-01-01, fixed permissions, so the same
bundle and name give the same bytes (and sha256).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import sys
import zipfile
from pathlib import Path

from .errors import InputError

#: PEP 440's public version, plus an optional local part
_PEP440 = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: the time every zip entry carries (the earliest a zip can hold)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _plain_version(version: str) -> str:
    """``version`` lower case, without surrounding spaces or a leading ``v`` (``v1.2``)."""
    text = str(version).strip().lower()
    return text[1:] if text.startswith("v") and text[1:2].isdigit() else text


def pep440_version(version: str) -> str:
    """A PEP 440 version for a bundle's version: itself when it is one (``3``, ``1.2``,
    ``2.0rc1``; a leading ``v`` dropped), else ``0+<its characters as a local version>``
    (``2024-06-01`` -> ``2024.6.1``, ``blue`` -> ``0+blue``).

    Parameters
    ----------
    version : str
        The bundle's version text.

    Returns
    -------
    str
        A valid PEP 440 version.
    """
    text = _plain_version(version)
    if _PEP440.match(text):
        return text
    parts = [p for p in re.split(r"[^a-z0-9]+", text) if p]
    if parts and all(p.isdigit() for p in parts):  # a date or dotted numbers: 2024-06-01
        return ".".join(str(int(p)) for p in parts)
    return "0+" + ".".join(parts) if parts else "0"


#: import names a packaged model must not take: tablescore's packages and those of what it
#: installs (the wheel's module would replace them in the environment)
_TAKEN = frozenset((
    "scorer", "exporters", "protos", "conformance", "tablescore", "numpy", "numba",
    "llvmlite", "pyarrow", "pandas", "re2", "grpc", "grpc_health", "grpc_reflection",
    "google", "prometheus_client", "psycopg", "psycopg_pool", "psycopg_binary", "redis",
    "hiredis", "tqdm"))


def module_name(name: str) -> str:
    """The import name for a distribution ``name``: dashes as underscores.

    Raises
    ------
    InputError
        ``name`` does not start with a letter or holds other than letters, digits, ``-``
        and ``_``.
    """
    if not _NAME.match(name):
        raise InputError(f"--name {name!r}: use a letter, then letters, digits, '-' or '_' "
                         "(the module is the name with dashes as underscores)")
    module = name.replace("-", "_")
    if module.lower() in _TAKEN or module in sys.stdlib_module_names:
        raise InputError(f"--name {name!r}: a module '{module}' is tablescore's own, one it "
                         "needs or Python's: installing the wheel would replace it; choose "
                         "another name")
    return module


#: what may not stand in a METADATA header's value: line breaks would start a header of the
#: bundle's choosing (a ``Requires-Dist`` pip would install), other controls garble it
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _header_text(text: str, limit: int = 100) -> str:
    """A bundle's text (model name or version: from elsewhere) as one line of a METADATA
    header: controls and line breaks as one space, at most ``limit`` characters."""
    one = _CONTROLS.sub(" ", str(text)).strip()
    return one if len(one) <= limit else one[:limit - 3] + "..."


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# (the bundle's own texts -- model name and version, field names -- enter the module only
# as repr literals, never inside the docstring: a bundle from elsewhere must not be able to
# end a string and write code)
_MODULE = '''"""{name}: a tablescore bundle packaged by ``tablescore package`` (its model:
MODEL, MODEL_VERSION and FINGERPRINT below).

    import {module}
    m = {module}.load()
    m.predict_proba(X)      # X: numpy array, DataFrame, dict of columns or one row (dict)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = {wheel_version!r}
#: the bundle's model name and version
MODEL = {model!r}
MODEL_VERSION = {version!r}
#: the bundle's fingerprint (sha256 of its canonical manifest)
FINGERPRINT = {fingerprint!r}
#: the model's input fields and output columns, in order
INPUTS = {inputs!r}
OUTPUTS = {outputs!r}


def bundle_path() -> Path:
    """The bundle directory inside this package."""
    return Path(__file__).resolve().parent / "bundle"


def load(**options: Any) -> Any:
    """The model, a ``scorer.Model`` (``options`` as ``scorer.load`` takes them): hashes and
    verification rows checked."""
    import scorer

    return scorer.load(bundle_path(), **options)
'''


def build_wheel(bundle: str | os.PathLike[str], name: str, out_dir: str | os.PathLike[str],
                *, version: str | None = None) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` for ``bundle`` into ``out_dir``.

    Parameters
    ----------
    bundle : path
        A bundle directory or PMML document (verified before it is packaged).
    name : str
        The distribution name; the module is ``name`` with dashes as underscores.
    out_dir : path
        Where the wheel goes (created if needed); written atomically.
    version : str, optional
        The wheel's version, a PEP 440 version (a leading ``v`` dropped; anything else is
        refused, not rewritten); default :func:`pep440_version` of the bundle's version.

    Returns
    -------
    Path
        The wheel.
    """
    from . import __version__ as tablescore_version
    from .files import atomic_output
    from .model import load
    from .registry.store import bundle_files

    module = module_name(name)
    if version is not None and not _PEP440.match(_plain_version(version)):
        raise InputError(f"--version {version!r} is not a PEP 440 version (e.g. 1.2, "
                         "2.0rc1, 3.1.post2, 1.0+build.7)")
    fingerprint, files = bundle_files(bundle)  # verified, as published to a registry
    model = load(bundle)
    # (a version given is taken as it is, a bundle's made one: pep440_version)
    wheel_version = (_plain_version(version) if version is not None
                     else pep440_version(model.version))
    dist = re.sub(r"[-_.]+", "_", name)  # PEP 427 escaping of the file name
    info = f"{dist}-{wheel_version}.dist-info"
    source = _MODULE.format(
        name=name, module=module, model=model.name, version=model.version,
        fingerprint=fingerprint, wheel_version=wheel_version,
        inputs=list(model.input_names), outputs=list(model.output_names))
    compile(source, f"{module}/__init__.py", "exec")  # (a SyntaxError here is a bug of ours)
    entries: dict[str, bytes] = {f"{module}/__init__.py": source.encode()}
    for rel, data in files.items():
        entries[f"{module}/bundle/{rel}"] = data
    entries[f"{info}/METADATA"] = (
        "Metadata-Version: 2.1\n"
        f"Name: {name}\n"
        f"Version: {wheel_version}\n"
        f"Summary: tablescore bundle of model {_header_text(model.name)} version "
        f"{_header_text(model.version)} (fingerprint {fingerprint[:16]})\n"
        "Requires-Python: >=3.11\n"
        "Requires-Dist: tablescore\n").encode()
    entries[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\n"
        f"Generator: tablescore {tablescore_version}\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n").encode()
    record = f"{info}/RECORD"
    lines = [f"{path},{_record_hash(data)},{len(data)}" for path, data in sorted(entries.items())]
    entries[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()

    # the package first, then the .dist-info with RECORD last (as pip and wheel write them)
    order = sorted(p for p in entries if not p.startswith(info)) + \
        sorted(p for p in entries if p.startswith(info) and p != record) + [record]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in order:
            zi = zipfile.ZipInfo(path, date_time=_EPOCH)
            zi.external_attr = (0o100644 << 16)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 3  # unix: the same bytes on every OS
            zf.writestr(zi, entries[path], compresslevel=9)
    target = Path(out_dir) / f"{dist}-{wheel_version}-py3-none-any.whl"
    with atomic_output(target) as tmp:
        tmp.write_bytes(buf.getvalue())
    return target
