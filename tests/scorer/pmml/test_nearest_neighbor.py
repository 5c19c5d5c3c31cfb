"""PMML NearestNeighborModel: hand-written documents scored end to end (kernel == reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer.pmml import PMMLError
from tests.scorer.pmml.test_reader import load, schema, score

#            x    z    y     k
ROWS = [(0.0, 0.0, 1.0, "no"), (1.0, 0.0, 2.0, "yes"), (0.0, 2.0, 4.0, "yes"),
        (5.0, 5.0, 8.0, "no"), (6.0, 5.0, 16.0, "no")]


def knn(function: str, target: str, attrs: str = "", output: str = "", k: int = 3,
        measure: str = "<euclidean/>", id_var: bool = False) -> str:
    rows = "".join(f"<row><a>{x}</a><b>{z}</b><t>{y if target == 'y' else c}</t>"
                   f"<id>r{i}</id></row>" for i, (x, z, y, c) in enumerate(ROWS))
    ms = schema(target, "x", "z") if target else (
        '<MiningSchema><MiningField name="x"/><MiningField name="z"/></MiningSchema>')
    tfield = f'<InstanceField field="{target}" column="t"/>' if target else ""
    idv = ' instanceIdVariable="id"' if id_var else ""
    return f"""<NearestNeighborModel functionName="{function}" numberOfNeighbors="{k}"
      {attrs}{idv}>{ms}{output}
      <TrainingInstances isTransformed="true"><InstanceFields>
        <InstanceField field="x" column="a"/><InstanceField field="z" column="b"/>{tfield}
        <InstanceField field="id" column="id"/></InstanceFields>
        <InlineTable>{rows}</InlineTable></TrainingInstances>
      <ComparisonMeasure kind="distance">{measure}</ComparisonMeasure>
      <KNNInputs><KNNInput field="x"/><KNNInput field="z"/></KNNInputs>
    </NearestNeighborModel>"""


NEIGHBORS = "".join(f'<OutputField name="n{r}" feature="entityId" rank="{r}"/>'
                    for r in (1, 2, 3))


def test_regression_average_median_weighted_and_neighbour_ids():
    X = {"x": [0.1, 5.6, math.nan], "z": [0.0, 5.0, 1.0]}
    out = f"<Output>{NEIGHBORS}</Output>"
    got = score(knn("regression", "y", output=out), X)
    # ids are 1-based rows. Row 2 misses x: distances from z alone (adjusted), rows 1, 2
    # and 3 tie and come in instance order
    np.testing.assert_array_equal(got["n1"], [1.0, 5.0, 1.0])
    np.testing.assert_array_equal(got["n2"], [2.0, 4.0, 2.0])
    np.testing.assert_array_equal(got["n3"], [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(got["y"], [(1 + 2 + 4) / 3, (16 + 8 + 4) / 3,
                                             (1 + 2 + 4) / 3])
    got = score(knn("regression", "y", 'continuousScoringMethod="median"', k=2), X)
    np.testing.assert_array_equal(got["y"], [1.5, 12.0, 1.5])
    got = score(knn("regression", "y", 'continuousScoringMethod="weightedAverage" '
                    'threshold="0.5"', k=2), X)
    w = 1 / (np.array([0.1, 0.9]) + 0.5)
    assert got["y"][0] == pytest.approx((w[0] * 1 + w[1] * 2) / w.sum(), rel=1e-15)


def test_classification_votes_and_pmml_tie_rule():
    # k=2 at (0.5, 0): rows 1 ("no") and 2 ("yes") tie 1:1 -> the class with more
    # training instances ("no": 3 of 5) wins
    got = score(knn("classification", "k", k=2), {"x": [0.5], "z": [0.0]})
    assert list(got["k"]) == ["no"]
    got = score(knn("classification", "k", k=3), {"x": [0.0], "z": [1.9]})
    assert list(got["k"]) == ["yes"]  # rows 3, 1, 2: two "yes"
    got = score(knn("classification", "k", 'categoricalScoringMethod="weightedMajorityVote"',
                    k=3), {"x": [0.9], "z": [0.0]})
    assert list(got["k"]) == ["yes"]  # 1/(0.1+t) for "yes" beats 1/(0.9+t) for "no"


def test_clustering_function_ids_from_the_instance_id_variable():
    out = f"<Output>{NEIGHBORS}</Output>"
    m = load(knn("clustering", "", output=out, id_var=True))
    got = m.score_arrays({"x": np.array([5.9]), "z": np.array([5.0])})
    assert [got[f"n{r}"][0] for r in (1, 2, 3)] == ["r4", "r3", "r2"]


@pytest.mark.parametrize(("kw", "msg"), [
    ({"measure": "<tanimoto/>"}, "similarity measures"),
    ({"attrs": 'continuousScoringMethod="mode"'}, "continuousScoringMethod"),
    ({"output": '<Output><OutputField name="n" feature="entityId" rank="4"/></Output>'},
     "rank=4"),
])
def test_refused(kw, msg):
    with pytest.raises(PMMLError, match=msg):
        load(knn("regression", "y", **kw))


def test_two_continuous_targets_and_target_field_outputs():
    doc = knn("regression", "y", output='<Output><OutputField name="n1" feature="entityId" '
              'targetField="y"/></Output>', k=2)
    doc = doc.replace('<MiningField name="y" usageType="target"/>',
                      '<MiningField name="y" usageType="target"/>'
                      '<MiningField name="z" usageType="target"/>').replace(
        '<MiningField name="z"/>', "").replace('<KNNInput field="z"/>', "")
    got = score(doc, {"x": [0.9, 5.4]})
    # x alone: row 0 -> rows 2, 1; row 1 -> rows 4, 5 (z is now a target, averaged too)
    np.testing.assert_array_equal(got["n1"], [2.0, 4.0])
    np.testing.assert_array_equal(got["y"], [(2 + 1) / 2, (8 + 16) / 2])
    np.testing.assert_array_equal(got["z"], [0.0, 5.0])
