"""The CI subset of the conformance matrix: every family on both export paths (bundle and
sklearn2pmml -> native PMML reader) and both transports (in process and gRPC) must pass."""

from __future__ import annotations

import pytest

from conformance.matrix import run_matrix, summary


@pytest.fixture(scope="module")
def cells():
    return run_matrix(subset="ci")


def test_every_cell_passes(cells):
    bad = [c for c in cells if c.status != "pass"]
    assert not bad, summary(cells)


def test_every_family_on_every_path_and_transport(cells):
    covered = {(c.family, c.path, c.transport) for c in cells if c.status == "pass"}
    for family in ("linear", "tree_ensemble", "xgboost", "lightgbm"):
        for combo in (("bundle", "in-process"), ("bundle", "grpc"), ("pmml", "in-process")):
            assert (family, *combo) in covered, (family, combo)
    datasets = {c.dataset for c in cells}
    assert {"synthetic_binary", "synthetic_regression", "AuditNA", "iris"} <= datasets
