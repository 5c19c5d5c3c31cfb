"""The one table that maps tablescore's errors to gRPC status codes.

Every handler of the service funnels its exceptions through :func:`to_status`; nothing else
in the server picks a status code. Deliberate errors (:mod:`scorer.errors`) carry messages in
the caller's terms and are sent as they are. Anything else is a bug: its stack trace goes to
the server log under a short reference, and the client gets INTERNAL with that reference
only, never the trace.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from ..errors import (
    BundleError,
    EntityNotFoundError,
    InputError,
    ModelNotFoundError,
    NotReadyError,
    ResourceLimitError,
    TablescoreError,
    UnavailableError,
)

log = logging.getLogger("tablescore.server")

#: First match wins, so subclasses come before their bases.
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (EntityNotFoundError, grpc.StatusCode.NOT_FOUND),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ResourceLimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    # a bundle on disk that does not load (RepositoryModelLoad): not the request's fault, and
    # retrying does not help until the bundle is replaced
    (BundleError, grpc.StatusCode.FAILED_PRECONDITION),
    (TablescoreError, grpc.StatusCode.FAILED_PRECONDITION),
)


#: longest error detail sent back, in bytes as gRPC sends it (percent-encoded); see
#: :func:`to_status`
MAX_DETAILS = 2000


def _wire_bytes(ch: str) -> int:
    """Bytes of ``ch`` in the grpc-message trailer: printable ASCII but ``%`` as it is,
    every other UTF-8 byte percent-encoded (3 bytes)."""
    o = ord(ch)
    return 1 if 0x20 <= o <= 0x7E and ch != "%" else 3 * len(ch.encode("utf-8", "replace"))


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes on the wire (see :func:`_wire_bytes`)."""
    n = 0
    for i, ch in enumerate(text):
        n += _wire_bytes(ch)
        if n > limit:
            return text[:i] + f"... ({len(text)} characters)"
    return text


def code_for(exc: BaseException) -> grpc.StatusCode:
    """The status code for a deliberate error; INTERNAL for anything else."""
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(exc: BaseException, *, method: str) -> tuple[grpc.StatusCode, str]:
    """``(code, details)`` to send for ``exc`` raised while serving ``method``.

    Unexpected exceptions are logged here with their traceback.
    """
    code = code_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        ref = uuid.uuid4().hex[:12]
        log.error("internal error", exc_info=exc,
                  extra={"event": "internal_error", "method": method, "ref": ref})
        return code, f"internal error in {method} (reference {ref}; details in the server log)"
    # every message may echo client strings (tensor names, parameter keys, categories);
    # clients cap the trailers that carry details (8 KiB soft, 16 KiB hard in grpc-core) and
    # would report RESOURCE_EXHAUSTED instead of the real error: the cap is on the encoded
    # size (2,000 characters of emoji were 24 KB)
    return code, _clip(str(exc), MAX_DETAILS)
