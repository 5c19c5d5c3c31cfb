"""Backend URLs (``postgresql://``, ``redis://``, ``sqlite:///``) in messages and logs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


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
