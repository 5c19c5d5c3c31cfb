"""Fixtures of the drift monitoring tests: small exported models with reference profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import exporters

#: rows of the reference sample and of each "current" batch
N = 4000


def reference_data(seed: int = 0, n: int = N) -> np.ndarray:
    """float64 (n, 4): independent standard normal features x0..x3."""
    return np.random.default_rng(seed).normal(size=(n, 4))


@pytest.fixture(scope="session")
def linear_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression on x0..x3 (output ``value``) exported with a 4000-row sample."""
    X = reference_data()
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1
    est = LinearRegression().fit(X, y)
    path = tmp_path_factory.mktemp("drift") / "linear"
    exporters.export(est, path, sample=X, name="linear")
    return path


@pytest.fixture(scope="session")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A classifier on string ``color``, double ``size`` (labels ``no`` / ``yes``)."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 600).astype(object),
                       "size": rng.normal(size=600)})
    y = np.where((df["color"] == "red") ^ (df["size"] > 0), "yes", "no")
    est = make_pipeline(ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"),
                                            ["color"]), ("n", StandardScaler(), ["size"])]),
                        LogisticRegression()).fit(df, y)
    path = tmp_path_factory.mktemp("drift") / "mixed"
    exporters.export(est, path, sample=df, name="mixed")
    return path, df
