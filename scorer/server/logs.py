"""Structured logs: one JSON object (or one key=value line) per event.

The server logs through ``logging.getLogger("tablescore.server")`` with ``extra={"event": ...,
...}``; these formatters put those fields next to the time, level and message, so log pipelines
can filter on ``event`` / ``model`` / ``version`` without parsing prose. The access log
(:class:`AccessLog`, ``--access-log``) writes one such record per request to
``tablescore.access``.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line (non-JSON values are written with ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info msg="model loaded" model=iris version=2`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        exc = fields.pop("exc", None)
        parts = []
        for key, value in fields.items():
            text = str(value)
            if not text or any(c in text for c in ' "=\n'):
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        return f"{line}\n{exc}" if exc else line


#: the access log's logger: a child of ``tablescore``, so it goes where the server's logs go
ACCESS_LOGGER = "tablescore.access"

ACCESS_MODES = ("off", "all", "errors", "sample:RATE")


def parse_access_mode(spec: str) -> tuple[str, float]:
    """``(mode, rate)`` of an ``--access-log`` value: ``off``, ``all``, ``errors`` or
    ``sample:RATE`` with 0 < RATE <= 1.

    Raises
    ------
    ValueError
        Anything else.
    """
    text = (spec or "off").strip().lower()
    if text in ("off", "all", "errors"):
        return text, 1.0 if text == "all" else 0.0
    if text.startswith("sample:"):
        try:
            rate = float(text.split(":", 1)[1])
        except ValueError:
            rate = -1.0
        if 0.0 < rate <= 1.0:
            return "sample", rate
    raise ValueError(f"--access-log {spec!r}: expected one of off, all, errors, sample:RATE "
                     "(0 < RATE <= 1)")


#: longest model name or version an access log line holds (a valid name is at most 255)
MAX_NAME = 256


class AccessLog:
    """One log record per request (``event: "access"``), or per sampled request.

    The servicer's handler wrapper calls :meth:`log` when a call ends; ModelInfer first
    :meth:`note` s the model, the version that answered and the rows, kept per thread until
    the wrapper logs them (a handler runs on one thread from start to end). A server whose
    access log is off holds no AccessLog at all, so the request path does not pay for it.

    Parameters
    ----------
    spec : str
        ``all``: every request; ``errors``: requests answered with a status other than OK;
        ``sample:RATE``: every error and a fraction RATE of the other requests.
    logger : logging.Logger, optional
        Where the records go (default :data:`ACCESS_LOGGER`, level INFO).
    """

    def __init__(self, spec: str, logger: logging.Logger | None = None) -> None:
        self.mode, self.rate = parse_access_mode(spec)
        if self.mode == "off":
            raise ValueError("an AccessLog that is off: use None (see AccessLog.create)")
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self._local = threading.local()
        self._random = random.random

    @classmethod
    def create(cls, spec: str | None) -> AccessLog | None:
        """The access log ``spec`` asks for, or None for ``off``."""
        mode, _ = parse_access_mode(spec or "off")
        return None if mode == "off" else cls(spec or "off")

    def note(self, model: str, version: str, rows: int) -> None:
        """What the current request scored: the model, the version that answered, rows. The
        names are the client's (an unknown model's): cut to :data:`MAX_NAME` characters, so
        a request cannot write megabytes into the log."""
        self._local.note = (model[:MAX_NAME], version[:MAX_NAME], rows)

    def log(self, method: str, code: str, t0: float, context: Any = None) -> None:
        """Log the request that started at ``perf_counter()`` ``t0`` and ended with ``code``
        ("OK" or a status name), if the mode selects it."""
        note = getattr(self._local, "note", None)
        if note is not None:
            self._local.note = None
        if code == "OK" and (self.mode == "errors" or (self.mode == "sample" and
                                                       self._random() >= self.rate)):
            return
        latency_us = round((time.perf_counter() - t0) * 1e6, 1)
        fields: dict[str, Any] = {"event": "access", "method": method, "code": code,
                                  "latency_us": latency_us}
        if note is not None:
            fields["model"], fields["version"], fields["rows"] = note
        try:
            fields["peer"] = context.peer()
        except Exception:  # no context (a direct call) or one without a peer
            pass
        self.logger.info("request", extra=fields)


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Send the ``tablescore`` loggers to stderr in ``fmt`` ("json" or "text").

    Only the command line calls this; an application embedding the server keeps its own
    logging configuration.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    logger = logging.getLogger("tablescore")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
