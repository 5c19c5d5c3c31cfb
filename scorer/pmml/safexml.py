"""A small, hardened XML reader for PMML documents (untrusted input).

Built on the standard library's expat parser with every dangerous feature refused rather than
processed: any DOCTYPE (hence internal / external entity declarations, "billion laughs"),
external entity references and processing of parameter entities. The document size and the
element nesting depth are capped before and while parsing. Namespace prefixes are dropped:
PMML versions 3.x to 4.4 differ only in their namespace URI. Every element keeps the line it
starts on, for error messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from ..errors import BundleFormatError

#: largest accepted document (bytes)
MAX_BYTES = 64 * 1024 * 1024
#: deepest accepted element nesting (PMML trees nest one element per tree level)
MAX_DEPTH = 2000
#: most elements accepted (each costs ~450 bytes in memory: a 64 MB document of empty
#: elements would have held ~5 GB; a 500-tree forest of 2,000-node trees has ~3M)
MAX_ELEMENTS = 4_000_000


class PMMLSecurityError(BundleFormatError):
    """The document uses an XML feature refused for untrusted input, or exceeds a limit."""


@dataclass(slots=True)
class Element:
    """One XML element: local tag name, attributes, child elements, text, source line."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""
    column: int = 0

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def find(self, tag: str) -> Element | None:
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def findall(self, tag: str) -> list[Element]:
        return [c for c in self.children if c.tag == tag]

    def __repr__(self) -> str:  # short, for error messages
        return f"<{self.tag}> (line {self.line})"


def _local(name: str) -> str:
    # expat without namespace processing hands over "prefix:local" names
    return name.rsplit(":", 1)[-1]


def parse_bytes(data: bytes, *, max_depth: int = MAX_DEPTH) -> Element:
    """Parse ``data`` into an :class:`Element` tree, refusing DTDs and entities.

    Raises
    ------
    PMMLSecurityError
        A DOCTYPE, entity declaration, external entity or too deep nesting.
    BundleFormatError
        The document is not well-formed XML.
    """
    if len(data) > MAX_BYTES:
        raise PMMLSecurityError(f"PMML document is {len(data)} bytes, over the "
                                f"{MAX_BYTES}-byte limit")
    p = expat.ParserCreate()
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True  # one character-data call per text run
    stack: list[Element] = []
    root: list[Element] = []

    def refuse(what: str) -> None:
        raise PMMLSecurityError(f"PMML document line {p.CurrentLineNumber}: {what} refused "
                                "(DTDs and entities are not accepted in untrusted input)")

    def start_doctype(*_a: object) -> None:
        refuse("DOCTYPE declaration")

    def entity_decl(*_a: object) -> None:
        refuse("entity declaration")

    def external_ref(*_a: object) -> int:
        refuse("external entity reference")
        return 0

    names: dict[str, str] = {}  # qualified name -> local name (few distinct names)
    count = [0]  # elements so far

    def local(name: str) -> str:
        loc = names.get(name)
        if loc is None:
            loc = names[name] = _local(name)
        return loc

    def start(name: str, attrs: dict[str, str]) -> None:
        count[0] += 1
        if count[0] > MAX_ELEMENTS:
            raise PMMLSecurityError(f"PMML document line {p.CurrentLineNumber}: more than "
                                    f"{MAX_ELEMENTS:,} elements")
        if len(stack) >= max_depth:
            raise PMMLSecurityError(f"PMML document line {p.CurrentLineNumber}: elements "
                                    f"nest deeper than {max_depth} levels")
        for k in attrs:
            if ":" in k:  # prefixed attributes (rare): drop the prefixes
                attrs = {local(k): v for k, v in attrs.items()}
                break
        el = Element(local(name), attrs, p.CurrentLineNumber, [], "",
                     p.CurrentColumnNumber + 1)
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    p.StartDoctypeDeclHandler = start_doctype
    p.EntityDeclHandler = entity_decl
    p.UnparsedEntityDeclHandler = entity_decl
    p.ExternalEntityRefHandler = external_ref
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    try:
        p.Parse(data, True)
    except expat.ExpatError as exc:
        raise BundleFormatError(f"PMML document is not well-formed XML: {exc}") from None
    if not root:
        raise BundleFormatError("PMML document has no root element")
    return root[0]


def parse_file(path: str | os.PathLike[str]) -> Element:
    """Read and parse a PMML file (size checked before reading it whole)."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise PMMLSecurityError(f"PMML file '{p}' is {size} bytes, over the "
                                f"{MAX_BYTES}-byte limit")
    with open(p, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    return parse_bytes(data)
