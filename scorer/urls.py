"""Backend URLs (``postgresql://``, ``redis://``, ``sqlite:///``) in messages and logs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urlsplit can read (a bad IPv6 host): the pattern alone
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    if not password:
        return url
    # (the last "@" ends the user info: a password may hold "@" itself)
    netloc = parts.netloc.replace(f":{password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def without_options(url: str, names: tuple[str, ...]) -> str:
    """``url`` without the query options ``names`` (a stage's own, e.g. ``timeout``): what
    is left (``db``, ``ssl_cert_reqs``, ...) is for the client library the URL is passed to."""
    base, _, query = url.partition("?")  # (not urlunsplit: it writes unix:/// as unix:/)
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in names]
    return f"{base}?{urlencode(kept)}" if kept else base


def sqlite_path(url: str) -> str:
    """The database file of a ``sqlite:///`` URL, by SQLAlchemy's rule: ``sqlite:///a/b.db``
    is relative (to the working directory), ``sqlite:////a/b.db`` absolute; anything else is
    a plain path, returned as it is. Query options are the caller's (see
    :func:`without_options`)."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
