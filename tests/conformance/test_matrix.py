"""The CI subset of the conformance matrix: every family, every dataset kind, must pass."""

from __future__ import annotations

import pytest

from conformance.matrix import run_matrix, summary


@pytest.fixture(scope="module")
def cells():
    return run_matrix(subset="ci")


def test_every_cell_passes(cells):
    bad = [c for c in cells if c.status != "pass"]
    assert not bad, summary(cells)


def test_every_family_is_covered(cells):
    families = {c.family for c in cells if c.status == "pass"}
    assert {"linear", "tree_ensemble", "xgboost", "lightgbm"} <= families
    datasets = {c.dataset for c in cells}
    assert {"synthetic_binary", "synthetic_regression", "AuditNA", "iris"} <= datasets
