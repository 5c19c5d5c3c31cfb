"""PMML ClusteringModel: hand-written documents scored end to end (kernel == reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer.pmml import PMMLError
from tests.scorer.pmml.test_reader import load, score

CLUSTERS = """<Cluster name="low" id="a"><Array n="2" type="real">0 0</Array></Cluster>
  <Cluster name="high"><Array n="2" type="real">4 3</Array></Cluster>"""


def clustering(measure: str = "<squaredEuclidean/>", fields: str = "", output: str = "",
               extra: str = "", clusters: str = CLUSTERS) -> str:
    fields = fields or '<ClusteringField field="x"/><ClusteringField field="z"/>'
    return f"""<ClusteringModel functionName="clustering" modelClass="centerBased"
      numberOfClusters="2"><MiningSchema><MiningField name="x"/><MiningField name="z"/>
      </MiningSchema>{output}<ComparisonMeasure kind="distance">{measure}</ComparisonMeasure>
      {fields}{extra}{clusters}</ClusteringModel>"""


OUTPUT = """<Output><OutputField name="id" feature="predictedValue"/>
  <OutputField name="name" feature="predictedDisplayValue"/>
  <OutputField name="n" feature="clusterId"/>
  <OutputField name="entity" feature="entityId"/>
  <OutputField name="aff" feature="affinity"/>
  <OutputField name="aff_a" feature="affinity" value="a"/>
  <OutputField name="aff_2" feature="clusterAffinity" value="2"/></Output>"""


def test_outputs_and_missing_value_adjustment():
    x = [1.0, 3.0, math.nan, math.nan]
    z = [1.0, 3.0, 2.0, math.nan]
    got = score(clustering(output=OUTPUT), {"x": x, "z": z})
    d_a = [2.0, 18.0, 4.0 * 2, math.nan]   # one of two fields missing: sum * 2 / 1
    d_2 = [9.0 + 4.0, 1.0 + 0.0, 1.0 * 2, math.nan]
    np.testing.assert_array_equal(got["aff_a"], d_a)
    np.testing.assert_array_equal(got["aff_2"], d_2)
    # ids: the Cluster's id, else its 1-based position (JPMML); names likewise
    assert list(got["id"][:3]) == ["a", "2", "2"]
    assert list(got["entity"][:3]) == ["a", "2", "2"]
    assert list(got["name"][:3]) == ["low", "high", "high"]
    np.testing.assert_array_equal(got["n"][:3], [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(got["aff"], [2.0, 1.0, 2.0, math.nan])


@pytest.mark.parametrize(("measure", "fn"), [
    ("<euclidean/>", lambda dx, dz: math.sqrt(dx * dx + dz * dz)),
    ("<cityBlock/>", lambda dx, dz: abs(dx) + abs(dz)),
    ("<chebychev/>", lambda dx, dz: max(abs(dx), abs(dz))),
    ('<minkowski p-parameter="3"/>', lambda dx, dz: (abs(dx) ** 3 + abs(dz) ** 3) ** (1 / 3)),
])
def test_measures(measure, fn):
    out = '<Output><OutputField name="d" feature="affinity" value="a"/></Output>'
    got = score(clustering(measure, output=out), {"x": [1.0, -2.0], "z": [3.0, 0.5]})
    want = [fn(1.0, 3.0), fn(-2.0, 0.5)]
    np.testing.assert_allclose(got["d"], want, rtol=1e-15)


def test_field_weights_compare_functions_and_missing_value_weights():
    fields = """<ClusteringField field="x" fieldWeight="2" compareFunction="gaussSim"
        similarityScale="2"/><ClusteringField field="z" compareFunction="delta"/>"""
    extra = '<MissingValueWeights><Array n="2" type="real">1 3</Array></MissingValueWeights>'
    out = '<Output><OutputField name="d" feature="affinity" value="a"/></Output>'
    got = score(clustering("<cityBlock/>", fields, out, extra), {"x": [1.0, math.nan],
                                                                 "z": [0.0, 5.0]})
    g = math.exp(-math.log(2) * 1.0 / 4.0)
    np.testing.assert_allclose(got["d"], [2 * g + 0.0, 1.0 * (1 + 3) / 3], rtol=1e-15)


def test_without_output_the_result_is_the_cluster_id():
    m = load(clustering())
    assert m.output_names == ["cluster"]
    assert list(m.predict({"x": np.array([0.1, 3.9]), "z": np.array([0.0, 3.0])})) == ["a", "2"]


@pytest.mark.parametrize(("measure", "extra", "msg"), [
    ("<jaccard/>", "", "similarity measures are not supported"),
    ("<squaredEuclidean/>", "<CenterFields/>", "CenterFields"),
    ('<minkowski p-parameter="0"/>', "", "p-parameter"),
])
def test_refused(measure, extra, msg):
    with pytest.raises(PMMLError, match=msg):
        load(clustering(measure, extra=extra))
    with pytest.raises(PMMLError, match=r"line .*Array.*holds 1 values"):
        load(clustering(clusters='<Cluster><Array n="1" type="real">0</Array></Cluster>'))


def test_cluster_ensemble_weighted_majority_vote():
    def seg(w: float, centers: str) -> str:
        return f'<Segment weight="{w}"><True/>{clustering(clusters=centers)}</Segment>'

    c1 = CLUSTERS
    c2 = """<Cluster id="a"><Array n="2" type="real">10 10</Array></Cluster>
      <Cluster id="b"><Array n="2" type="real">0 0</Array></Cluster>"""
    m = f"""<MiningModel functionName="clustering"><MiningSchema><MiningField name="x"/>
      <MiningField name="z"/></MiningSchema><Output>
      <OutputField name="c" feature="predictedValue" dataType="string"/>
      <OutputField name="n" feature="clusterId"/></Output>
      <Segmentation multipleModelMethod="weightedMajorityVote">
      {seg(1.0, c1)}{seg(2.0, c2)}{seg(0.5, c1)}</Segmentation></MiningModel>"""
    # row 0 (near 0, 0): "a" (1 + 0.5) vs "b" (2); row 1 (near 9, 9): "2" 1.5 vs "a" 2
    got = score(m, {"x": [0.1, 9.0, math.nan], "z": [0.0, 9.0, math.nan]})
    assert list(got["c"][:2]) == ["b", "a"]
    np.testing.assert_array_equal(got["n"], [3.0, 1.0, math.nan])  # ids a, 2, b
