"""Fixtures of the registry tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import exporters
from tests.datasets import sklearn_dataset


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three iris bundles with different parameters (so different fingerprints)."""
    root = tmp_path_factory.mktemp("bundles")
    X, y = sklearn_dataset("iris")
    out = []
    for k, c in enumerate((1.0, 0.3, 0.1)):
        est = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        exporters.export(est, root / f"b{k}", sample=X, name="iris")
        out.append(root / f"b{k}")
    return out
