"""Field bookkeeping for the PMML reader: typed workspace columns, scopes, constants."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import BundleFormatError
from ..xsd import xs_double, xs_integer
from .program import f32
from .safexml import Element

NUMERIC_TYPES = ("integer", "float", "double")
#: PMML dataTypes this reader accepts
DATA_TYPES = (*NUMERIC_TYPES, "string", "boolean")


class PMMLError(BundleFormatError):
    """The PMML document uses something this reader does not support, or is malformed.

    A model file that cannot be read, like a bad bundle (command line exit 3, gRPC
    FAILED_PRECONDITION): not an export failure."""


def fail(el: Element | None, msg: str) -> PMMLError:
    """A :class:`PMMLError` naming the element and its line."""
    if el is None:
        return PMMLError(f"PMML: {msg}")
    where = f"line {el.line}" + (f", column {el.column}" if el.column > 1 else "")
    return PMMLError(f"PMML {where}: <{el.tag}>: {msg}")


@dataclass
class Col:
    """A PMML field bound to a workspace column.

    ``vocab`` is set for columns holding category codes (strings): code ``i`` is
    ``vocab[i]``, -1 an invalid (unknown) value, NaN missing. ``growable``: constants the
    model compares with may be appended (an input field declared without its values).
    """

    column: str
    dtype: str
    vocab: list[str] | None = None
    growable: bool = False
    #: constants outside a fixed vocabulary, coded -2, -3, ... (no value holds those codes,
    #: and two different such constants stay different)
    extra: list[str] = field(default_factory=list)
    #: numbers: every value the column can hold besides missing (an input whose declared
    #: valid Values are enforced, invalidValueTreatment='returnInvalid'), else None
    closed: list[float] | None = None

    #: category -> first position in ``vocab`` / in ``extra``, for the entries indexed so
    #: far (a dictionary: a document of N categories compared N times cost O(N^2) with
    #: ``list.index``, tens of seconds for 80k categories)
    _pos: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _extra_pos: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _indexed: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    def code(self, s: str) -> float:
        """Code of category ``s``."""
        vocab = self.vocab
        assert vocab is not None
        seen_id, n = self._indexed
        if seen_id != id(vocab) or n > len(vocab):  # (another list, or one cut short)
            self._pos, n = {}, 0
        for i in range(n, len(vocab)):  # entries appended since (the first one wins)
            self._pos.setdefault(vocab[i], i)
        self._indexed = (id(vocab), len(vocab))
        i = self._pos.get(s)
        if i is not None:
            return float(i)
        if self.growable:
            vocab.append(s)
            self._pos[s] = len(vocab) - 1
            self._indexed = (id(vocab), len(vocab))
            return float(len(vocab) - 1)
        j = self._extra_pos.get(s)
        if j is None:
            self.extra.append(s)
            j = self._extra_pos[s] = len(self.extra) - 1
        return -2.0 - j


@dataclass
class Pending:
    """A DerivedField not compiled yet (compiled, once, when first referenced)."""

    el: Element
    scope: Scope


@dataclass
class Inline:
    """A DefineFunction parameter: the argument expression, compiled at each use."""

    el: Element
    scope: Scope


@dataclass
class Scope:
    """Names visible to a model: field name -> Col / Pending / Inline."""

    names: dict[str, Col | Pending | Inline] = field(default_factory=dict)
    math32: bool = False

    def child(self) -> Scope:
        return Scope(dict(self.names), self.math32)


def number(text: str | None, el: Element | None, what: str | None = None, *,
           finite: bool = True) -> float:
    """``text`` as a number, or a :class:`PMMLError` naming ``el``'s line and ``what``.

    ``finite``: refuse infinities and NaN. A model parameter (coefficient, weight, score,
    vector entry, ...) that is not finite can only make every row score NaN or inf.
    """
    if text is None:
        raise fail(el, f"has no '{what or 'value'}' attribute")
    shown = f"{what}='{text}'" if what else f"'{text}'"
    try:
        v = xs_double(text)
    except ValueError:
        raise fail(el, f"{shown} is not a number") from None
    if finite and not math.isfinite(v):
        raise fail(el, f"{shown} is not a finite number")
    return v


def integer(text: str | None, el: Element | None, what: str | None = None) -> int:
    """``text`` as an ``xs:integer``, or a :class:`PMMLError` naming ``el`` and ``what``."""
    if text is None:
        raise fail(el, f"has no '{what or 'value'}' attribute")
    try:
        return xs_integer(text)
    except ValueError:
        shown = f"{what}='{text}'" if what else f"'{text}'"
        raise fail(el, f"{shown} is not an integer") from None


def parse_number(text: str, dtype: str, el: Element) -> float:
    """A numeric literal of a field of ``dtype`` (float fields hold float32 values)."""
    t = text.strip()
    if dtype == "boolean":
        low = t.lower()
        if low in ("true", "1"):
            return 1.0
        if low in ("false", "0"):
            return 0.0
    v = number(text, el, finite=False)  # compared with inputs: INF / NaN are values too
    return f32(v) if dtype == "float" else v


def constant_for(col_dtype: str, vocab_col: Col | None, text: str, el: Element) -> float:
    """The workspace value of literal ``text`` compared with a column of that type."""
    if vocab_col is not None and vocab_col.vocab is not None:
        return vocab_col.code(text)
    if text.strip().lower() == "nan" and col_dtype in NUMERIC_TYPES:
        return math.nan
    return parse_number(text, col_dtype, el)


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def declared(df: Element | None, prop: str = "valid") -> list[Element]:
    """DataField ``df``'s Value elements of property ``prop`` (``valid``, the default
    property, ``invalid`` or ``missing``), in document order; none for no field."""
    if df is None:
        return []
    return [v for v in df.findall("Value") if v.get("property", "valid") == prop]


def declared_values(df: Element | None, prop: str = "valid") -> list[str]:
    """The texts of :func:`declared`."""
    return [v.get("value") for v in declared(df, prop)]


def array_values(el: Element) -> list[str]:
    """The entries of a PMML ``<Array>`` (space separated; double quotes group)."""
    out = []
    for m in _TOKEN.finditer(el.text):
        out.append(m.group(1).replace('\\"', '"') if m.group(1) is not None else m.group(2))
    n = el.get("n")
    if n is not None and integer(n, el, "n") != len(out):
        raise fail(el, f"declares n={n} entries but holds {len(out)}")
    return out


def typed_class(value: str, dtype: str) -> object:
    """A class label as the caller sees it (ints for integer targets, ...)."""
    if dtype == "integer":
        try:
            f = xs_double(value)
            return int(f) if f.is_integer() else f
        except ValueError:
            return value
    if dtype in ("float", "double"):
        try:
            return xs_double(value)
        except ValueError:
            return value
    if dtype == "boolean":
        return value.strip().lower() == "true"
    return value


def same_class(a: str, b: str) -> bool:
    """Class values compare as numbers when both are numbers ("1" == "1.0")."""
    if a == b:
        return True
    try:
        return xs_double(a) == xs_double(b)
    except ValueError:
        return False


def attr_number(el: Element, attr: str, default: str | None = None, *,
                missing: float | None = None, required: bool = False,
                finite: bool = True) -> float | None:
    """Attribute ``attr`` of ``el`` as a number (``default`` when absent).

    Absent with no default: an error naming the element if ``required``, else ``missing``.
    A value that is not an ``xs:double`` (or, with ``finite``, not finite) is always an error
    naming the element and the attribute.
    """
    text = el.get(attr, default)
    if text is None:
        if required:
            raise fail(el, f"has no '{attr}' attribute")
        return missing
    return number(text, el, attr, finite=finite)


def numbers(texts: list[str], el: Element, what: str | None = None, *,
            finite: bool = True) -> list[float]:
    """Each of ``texts`` (an Array's entries) as a number; see :func:`number`."""
    return [number(t, el, what, finite=finite) for t in texts]


def children(el: Element, tag: str, *, where: str) -> list[Element]:
    """``el``'s ``tag`` children, in document order; ``Extension`` children are skipped and any
    other child is refused (``<child>: not supported in <where>``)."""
    out = []
    for c in el.children:
        if c.tag == tag:
            out.append(c)
        elif c.tag != "Extension":
            raise fail(c, f"not supported in {where}")
    return out
