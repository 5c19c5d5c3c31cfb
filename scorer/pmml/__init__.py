"""Native PMML reader: a PMML document -> the tablescore bundle IR (no JVM).

>>> from scorer.pmml import read_pmml
>>> bundle = read_pmml("model.pmml")          # doctest: +SKIP
>>> scorer.load("model.pmml").score(df)        # doctest: +SKIP

The document is untrusted input: it is parsed by :mod:`scorer.pmml.safexml` (DTDs and
entities refused, size and depth capped) and only ever interpreted as data. See docs/pmml.md
for what is supported.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..ir import Bundle

# PMML model families beyond the built-in ones (RegressionModel, TreeModel, MiningModel,
# GeneralRegressionModel, in .reader): each module registers itself with ``register_model``.
from . import (  # noqa: F401  (imported for their registrations)
    clustering,
    naive_bayes,
    nearest_neighbor,
    neural_network,
    ruleset,
    scorecard,
    svm,
)
from .fields import PMMLError
from .reader import MODEL_FAMILIES, build, register_model
from .safexml import MAX_BYTES, PMMLSecurityError, parse_bytes

__all__ = ["MODEL_FAMILIES", "PMMLError", "PMMLSecurityError", "read_pmml", "read_pmml_bytes",
           "register_model"]


#: Python frames the compiler may use: nested elements are compiled recursively, and the XML
#: reader already caps nesting at ``safexml.MAX_DEPTH`` levels (a few frames per level)
_RECURSION_LIMIT = 20_000


@contextmanager
def _no_gc() -> Iterator[None]:
    """Parsing and compiling allocate hundreds of thousands of long-lived objects (elements,
    nodes) and no cycles worth collecting: the cyclic collector would re-scan the growing heap
    over and over (most of a large document's load time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(data: bytes, name: str) -> Bundle:
    """Parse and compile ``data``; the bundle's fingerprint is the sha256 of exactly these
    bytes (equal documents fingerprint equal, and a file replaced while it was read cannot
    lend the model another document's identity), its creation time the document's
    ``Header/Timestamp`` when that is an ISO 8601 date-time."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _RECURSION_LIMIT))
    try:
        with _no_gc():
            bundle = build(parse_bytes(data), name=name)
    except RecursionError:
        raise PMMLError("PMML: the document nests too deeply to compile") from None
    finally:
        sys.setrecursionlimit(old)
    bundle.fingerprint = hashlib.sha256(data).hexdigest()
    return bundle


def read_pmml(path: str | os.PathLike[str]) -> Bundle:
    """Read a PMML file into a :class:`~scorer.ir.Bundle` (not written to disk).

    Raises
    ------
    PMMLSecurityError
        DTD / entity / size / depth limits.
    PMMLError
        An element this reader does not support, named with its line number.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise PMMLSecurityError(f"PMML file '{p}' is {size} bytes, over the "
                                f"{MAX_BYTES}-byte limit")
    with open(p, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)  # (parse_bytes refuses it if it grew meanwhile)
    return _build(data, p.stem)


def read_pmml_bytes(data: bytes, *, name: str = "model") -> Bundle:
    """Like :func:`read_pmml`, from the document's bytes."""
    return _build(data, name)
