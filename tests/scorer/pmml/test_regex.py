"""PMML regular expressions (``matches``, ``replace``) run by RE2: linear time, whatever the
pattern; constructs that need backtracking or that regex flavours read differently are
refused with the line of the element."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pytest

from scorer.model import Model
from scorer.pmml import PMMLError, read_pmml_bytes

ROOT = Path(__file__).resolve().parents[3]

#: patterns that backtrack exponentially (or polynomially of high degree) in Python's ``re``
#: against a long run of 'a' that does not match in the end
PATHOLOGICAL = [
    r"((a+))+$",
    r"((a)+)+$",
    "a*a*a*a*a*a*a*a*b",
    r"(a+)+$",
    r"(a|aa)+$",
    r"(a|a?)+$",
    r"((a*)*|b)+$",
    r"(?:a+){2,}$",
    r"(.*a){12}b",
    r"^(\w+\s?)*$",
]
#: the category name the patterns run on (the old reader hung on it for each pattern above)
EVIL = "a" * 40 + "!"


def doc(fn: str, pattern: str, *, cats: tuple[str, ...] = ("b", EVIL),
        repl: str = "x") -> bytes:
    """A regression on ``fn(c, pattern)``: 1.0 where it is true / equal to ``"x"``."""
    vals = "".join(f'<Value value={quoteattr(c)}/>' for c in cats)
    pat = escape(pattern)
    args = f'<FieldRef field="c"/><Constant dataType="string">{pat}</Constant>'
    if fn == "replace":
        args += f'<Constant dataType="string">{repl}</Constant>'
    dtype = "boolean" if fn == "matches" else "string"
    pred = ('<NumericPredictor name="d" coefficient="1"/>' if fn == "matches" else
            f'<CategoricalPredictor name="d" value="{repl}" coefficient="1"/>')
    return f"""<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>
<DataDictionary>
  <DataField name="c" optype="categorical" dataType="string">{vals}</DataField>
  <DataField name="y" optype="continuous" dataType="double"/>
</DataDictionary>
<TransformationDictionary>
  <DerivedField name="d" dataType="{dtype}" optype="categorical">
    <Apply function="{fn}">{args}</Apply></DerivedField>
</TransformationDictionary>
<RegressionModel functionName="regression">
  <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="c"/></MiningSchema>
  <RegressionTable intercept="0">{pred}</RegressionTable></RegressionModel></PMML>""".encode()


def scores(data: bytes, cats: list[str]) -> list[float]:
    return list(Model(read_pmml_bytes(data)).score_arrays(
        {"c": np.array(cats, dtype=object)})["y"])


_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tests.scorer.pmml.test_regex import PATHOLOGICAL, doc
from scorer.pmml import PMMLError, read_pmml_bytes
out = []
for fn in ("matches", "replace"):
    for p in PATHOLOGICAL:
        t0 = time.perf_counter()
        try:
            read_pmml_bytes(doc(fn, p))
            res = "loaded"
        except PMMLError as exc:
            res = "refused: " + str(exc)
        out.append([fn, p, res, time.perf_counter() - t0])
print(json.dumps(out))
"""


def test_pathological_patterns_load_in_bounded_time():
    """Every pattern loads (or is refused) at once. In a child process with a timeout: the
    old reader ran Python's ``re`` here and never returned, so a regression must fail the
    test, not hang the suite."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)], capture_output=True,
                              text=True, timeout=90, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("loading a PMML document with a pathological regex did not finish in 90 s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 2 * len(PATHOLOGICAL)
    for fn, p, res, secs in results:
        assert res == "loaded", (fn, p, res)  # RE2 runs them all; none needs refusing
        assert secs < 10, (fn, p, secs)  # generous: a backtracking engine takes forever


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_pathological_patterns_score_as_python_re_does_on_short_texts(pattern):
    """RE2's answers are the regex's answers (checked against Python's ``re`` on texts
    short enough for its backtracking)."""
    import re

    cats = ("b", "aaa", "a" * 10 + "!", "ab", "a a", "")
    got = scores(doc("matches", pattern, cats=cats), list(cats))
    assert got == [1.0 if re.search(pattern, c) else 0.0 for c in cats]


def test_matches_and_replace_agree_with_the_pattern():
    cats = ("Male", "Female", "Bachelor", "HSgrad")
    assert scores(doc("matches", "^Male$", cats=cats), list(cats)) == [1.0, 0.0, 0.0, 0.0]
    # replace: every match replaced by the literal text ('\' and '$' stay text)
    assert scores(doc("replace", "[aeiou]", cats=("xx", "ax", "b"), repl="x"),
                  ["xx", "ax", "b"]) == [0.0, 0.0, 0.0]
    assert scores(doc("replace", "[aeiou]+", cats=("a", "ea", "b"), repl="x"),
                  ["a", "ea", "b"]) == [1.0, 1.0, 0.0]
    # Java's \\uXXXX escape
    assert scores(doc("matches", r"^\u00e9", cats=("\u00e9t\u00e9", "ete")),
                  ["\u00e9t\u00e9", "ete"]) == [1.0, 0.0]


@pytest.mark.parametrize("pattern,msg", [
    (r"(a)\1", "backreferences"),
    (r"(?<n>a)\k<n>", "backreferences"),
    (r"(?P<n>a)(?P=n)", "backreferences"),
    (r"a(?=b)", "look-around"),
    (r"a(?!b)", "look-around"),
    (r"(?<=a)b", "look-around"),
    (r"(?<!a)b", "look-around"),
    (r"(?>a+)b", "invalid perl operator"),  # atomic group
    (r"a*+b", "bad repetition operator"),  # possessive quantifier
    (r"[a-z&&[^b]]", "intersection"),
    (r"[a-z-[aeiou]]", "inside a character class"),
    (r"[[:alpha:]]", "inside a character class"),
    (r"[a&&b]", "intersection"),
    (r"(a{1000}){1000}", "invalid repetition size"),
    (r"a\Z", "invalid escape sequence"),
    ("a(", "missing"),
    ("a\\", "ends with a backslash"),
])
@pytest.mark.parametrize("fn", ["matches", "replace"])
def test_unsupported_constructs_are_refused_with_the_line(fn, pattern, msg):
    with pytest.raises(PMMLError, match=r"PMML line 8, column 5: <Apply>: regular expression"
                       ) as exc:
        read_pmml_bytes(doc(fn, pattern))
    assert msg in str(exc.value)


def test_escaped_brackets_and_quoted_runs_are_not_classes():
    cats = ("a[b", "a&&b", "ab")
    assert scores(doc("matches", r"[\[]", cats=cats), list(cats)) == [1.0, 0.0, 0.0]
    assert scores(doc("matches", r"\Q&&[\E", cats=cats), list(cats)) == [0.0, 0.0, 0.0]
    assert scores(doc("matches", r"^a&&b$", cats=cats), list(cats)) == [0.0, 1.0, 0.0]
    assert scores(doc("matches", r"[]a]b", cats=cats), list(cats)) == [0.0, 0.0, 1.0]


def test_missing_category_stays_missing():
    got = scores(doc("matches", "a"), ["b", None])  # type: ignore[list-item]
    assert got[0] == 0.0 and math.isnan(got[1])
