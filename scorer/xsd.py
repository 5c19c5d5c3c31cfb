"""The one number syntax for text: XML Schema's ``xs:double`` and ``xs:integer``.

Used by the PMML reader for every number in a document and by the input encoder for numbers
sent as text (a BYTES tensor, a string in an object column). Python's ``float()`` is more
lenient than XML Schema: it also reads ``1_000``, Arabic-Indic or full-width digits,
``infinity`` and whitespace-padded text with non-breaking spaces, none of which a PMML
document or a request should be able to pass off as a number.
"""

from __future__ import annotations

import math
import re

#: xs:double's lexical space (ASCII digits; no '_', no inner spaces, no hex); XML Schema
#: collapses the whitespace around it. Python's float() also takes '1_000', Arabic-Indic
#: digits, ' 1 ', 'infinity' and 'nan': a document or a request must not.
_XS_DOUBLE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_XS_INTEGER = re.compile(r"[+-]?[0-9]+")
#: xs:double's special values, and Java's spellings of them (JPMML writes Double.toString)
_XS_SPECIAL = {"INF": math.inf, "+INF": math.inf, "-INF": -math.inf, "Infinity": math.inf,
               "+Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
_XML_SPACE = " \t\n\r"


def xs_double(text: str) -> float:
    """``text`` read as an XML Schema ``xs:double`` (raises ``ValueError`` otherwise).

    The one number syntax of the PMML reader and of string inputs for numeric fields:
    ``[+-]digits[.digits][(e|E)[+-]digits]`` in ASCII, ``INF``/``-INF``/``NaN`` (and Java's
    ``Infinity``), surrounded by nothing but XML whitespace. Out-of-range magnitudes
    (``1e309``) read as infinite, as in XML Schema.
    """
    t = text.strip(_XML_SPACE)
    if _XS_DOUBLE.fullmatch(t):
        return float(t)
    v = _XS_SPECIAL.get(t)
    if v is None:
        raise ValueError(f"{text!r} is not a number")
    return v


def xs_integer(text: str) -> int:
    """``text`` read as an XML Schema ``xs:integer`` (raises ``ValueError`` otherwise)."""
    t = text.strip(_XML_SPACE)
    if not _XS_INTEGER.fullmatch(t):
        raise ValueError(f"{text!r} is not an integer")
    return int(t)


def is_number(text: str | None) -> bool:
    """Whether ``text`` is an ``xs:double``."""
    if text is None:
        return False
    try:
        xs_double(text)
    except ValueError:
        return False
    return True
