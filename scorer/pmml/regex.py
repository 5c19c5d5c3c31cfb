"""Regular expressions from PMML documents (``matches``, ``replace``), run by RE2.

A document is untrusted input, and Python's ``re`` backtracks: one pattern such as
``((a+))+$`` against a 30-character category name never finishes, and holds the GIL while
it runs, so a single document could freeze a whole server. Spotting such patterns by their
shape does not work (there are too many: nested groups, repeated stars, alternations that
overlap), so patterns are compiled by RE2 instead, whose matching time is linear in the
text and whose compiled program is bounded in memory (``MAX_MEM``).

PMML's patterns follow the Java / XML Schema / PCRE family. RE2 shares that syntax except
for constructs that need backtracking (backreferences, look-around, atomic groups,
possessive quantifiers), which are refused, and a few that the flavours read differently,
which are refused rather than silently read one way:

- a ``[`` inside a character class (Java's union ``[a[b]]`` and intersection ``[a&&[b]]``,
  XML Schema's subtraction ``[a-z-[aeiou]]``, POSIX ``[[:alpha:]]`` in RE2) and ``&&``;
- Java's ``\\uXXXX`` escapes are rewritten to RE2's ``\\x{XXXX}``.

Known differences that remain (documented in docs/pmml.md): ``\\d``, ``\\w``, ``\\s`` and
``\\b`` are ASCII (as in Java and PCRE; Python's ``re`` reads them as Unicode), and ``$``
matches only at the very end of the text (not also before a final newline).
"""

from __future__ import annotations

import re2

from .fields import fail
from .safexml import Element

#: memory RE2 may use for one compiled pattern (bounds compile time and the program size)
MAX_MEM = 8 << 20
_HEX = frozenset("0123456789abcdefABCDEF")


def _options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # errors become PMMLError; RE2 would also print them to stderr
    opts.max_mem = MAX_MEM
    return opts


def translate(pattern: str, el: Element) -> str:
    """``pattern`` (PMML / Java syntax) in RE2 syntax; a construct RE2 cannot run in linear
    time, or that the flavours read differently, raises :class:`PMMLError` naming ``el``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0  # index of the first character of the current class's body

    def refuse(what: str) -> Exception:
        return fail(el, f"regular expression {pattern!r}: {what} not supported")

    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise fail(el, f"regular expression {pattern!r} ends with a backslash")
            d = pattern[i + 1]
            if d == "Q":  # \Q...\E: a literal run, copied as is (RE2 reads it the same way)
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            if not in_class and (d in "123456789" or d == "k"):
                raise refuse("backreferences (they need a backtracking engine)")
            if d == "u" and i + 6 <= n and set(pattern[i + 2:i + 6]) <= _HEX:
                out.append(f"\\x{{{pattern[i + 2:i + 6]}}}")
                i += 6
                continue
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and i > class_start:
                in_class = False
            elif c == "[":
                raise refuse("'[' inside a character class (union, subtraction and POSIX "
                              "classes differ between regex flavours)")
            elif c == "&" and pattern.startswith("&&", i):
                raise refuse("character class intersection '&&'")
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            class_start = i + 1
            if pattern.startswith("^", class_start):
                class_start += 1
            out.append(c)
            i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                raise refuse("look-around (it needs a backtracking engine)")
            if pattern.startswith("(?P=", i):
                raise refuse("backreferences (they need a backtracking engine)")
        out.append(c)
        i += 1
    return "".join(out)


def compile_regex(el: Element, pattern: str) -> re2._Regexp:
    """Compile a PMML pattern with RE2 (linear-time matching); refuse it with the line of
    ``el`` if it cannot be."""
    rx = translate(pattern, el)
    try:
        return re2.compile(rx, _options())
    except re2.error as exc:
        msg = exc.args[0].decode(errors="replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        raise fail(el, f"regular expression {pattern!r}: {msg}") from None
