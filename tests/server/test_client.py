"""scorer.server.client: the dependency-light client gives what the in-process scorer gives."""

from __future__ import annotations

import numpy as np

import scorer
from scorer.server.client import RemoteModel, remote_scorer


def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, w in want.items():
        if w.dtype.kind in "fiu":
            np.testing.assert_allclose(got[name], w, rtol=1e-12, atol=0)
        else:
            assert [str(x) for x in got[name]] == [str(x) for x in w]


def test_remote_scorer_matches_in_process(server, main_repo, bundles) -> None:
    iris = scorer.load(main_repo / "iris" / "1")
    X = bundles["iris"].X[:17]
    _same(remote_scorer(server.address, "iris")(X), iris.score_arrays(X))
    mixed = scorer.load(main_repo / "mixed" / "1")
    df = bundles["mixed"].X.iloc[:13]
    remote = RemoteModel(server.address, "mixed", version="1")
    assert remote.inputs == [("color", "BYTES"), ("size", "FP64"), ("count", "INT64")]
    _same(remote.score(df), mixed.score_arrays(df))
    _same(remote.score({c: df[c].to_numpy() for c in df.columns}), mixed.score_arrays(df))
    remote.close()
