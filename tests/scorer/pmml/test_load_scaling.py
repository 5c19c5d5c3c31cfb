"""Load cost grows linearly with the number of segments (no timing here: the suite counts
the name look-ups that made it quadratic; benchmarks/pmml_load.py times it)."""

from __future__ import annotations

import random

import pytest

from scorer.build import graph as graph_mod
from scorer.build.graph import Graph
from scorer.ir import Field
from scorer.pmml import read_pmml_bytes


class CountingSet(set):
    """A set that counts membership tests (the probes a fresh-name search makes)."""

    probes = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.probes += 1
        return super().__contains__(item)


def mining_model(n: int) -> bytes:
    """A MiningModel summing ``n`` RegressionModel segments (one step each)."""
    segs = "".join(
        f'<Segment id="{i}"><True/><RegressionModel functionName="regression"><MiningSchema>'
        '<MiningField name="x"/></MiningSchema><RegressionTable intercept="1">'
        f'<NumericPredictor name="x" coefficient="{i % 7}"/></RegressionTable>'
        "</RegressionModel></Segment>" for i in range(n))
    return ('<PMML version="4.4"><Header/><DataDictionary>'
            '<DataField name="x" optype="continuous" dataType="double"/>'
            '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>'
            '<MiningModel functionName="regression"><MiningSchema>'
            '<MiningField name="y" usageType="target"/><MiningField name="x"/></MiningSchema>'
            f'<Segmentation multipleModelMethod="sum">{segs}</Segmentation></MiningModel>'
            "</PMML>").encode()


def _probes_to_read(n: int, monkeypatch: pytest.MonkeyPatch) -> int:
    init = Graph.__init__

    def counting_init(self: Graph, fields: list[Field]) -> None:
        init(self, fields)
        self._used = CountingSet(self._used)
        self._step_names = CountingSet(self._step_names)

    monkeypatch.setattr(graph_mod.Graph, "__init__", counting_init)
    CountingSet.probes = 0
    bundle = read_pmml_bytes(mining_model(n))
    assert len(bundle.steps) >= n  # one step per segment at least: the names are needed
    return CountingSet.probes


def test_segments_cost_a_constant_number_of_name_probes_each(monkeypatch):
    """Reading n segments costs O(n) name probes (it took O(n^2): every segment's
    ``seg.value`` column and ``regression`` step searched ~2, ~3, ... from the start:
    250 segments 62,752 probes, 1,000 segments 1,001,002, a ratio of 16; now 1,000 and
    4,000)."""
    small = _probes_to_read(250, monkeypatch)
    large = _probes_to_read(1000, monkeypatch)
    assert large / small < 4.5, (small, large)
    assert large < 20 * 1000, large


def _first_free(name: str, used: set[str], sep: str) -> str:
    """The naming rule as originally written (first free suffix from 2, searched from 2)."""
    c, k = name, 1
    while c in used:
        k += 1
        c = f"{name}{sep}{k}"
    used.add(c)
    return c


def test_fresh_names_are_the_first_free_names():
    """Remembering where each search stopped gives exactly the names the linear search
    from ~2 gave, including when a suffixed name was taken by another route first."""
    rng = random.Random(7)
    g = Graph([Field("a"), Field("s.x~3")])  # an input named like a generated column
    ref_cols, ref_steps = {"a", "s.x~3"}, set()
    bases = ["s", "t", "s.x", "seg", "seg1"]
    for _ in range(2000):
        base = rng.choice(bases)
        if rng.random() < 0.5:
            names = [rng.choice(["x", "x~2", "y", "x~4"]) for _ in range(rng.randint(1, 3))]
            got = g.new_columns(base, names=names)
            want = [_first_free(f"{base}.{s}", ref_cols, "~") for s in names]
        else:
            got = [g.step_name(base)]
            want = [_first_free(base, ref_steps, "")]
        assert got == want
    assert len(set(g._used)) == len(ref_cols)


def test_a_repeated_name_costs_constant_probes():
    g = Graph([Field("a")])
    g._used = CountingSet(g._used)
    CountingSet.probes = 0
    for _ in range(5000):
        g.new_columns("seg", names=["value"])
    assert CountingSet.probes <= 2 * 5000 + 1, CountingSet.probes
