"""Datasets for parity tests: scikit-learn's bundled sets, ``../shared/data`` tables and
synthetic data with the values that break scorers (NaN, +/-inf, huge, tiny, exact ties)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """``../shared/data`` beside the checkout (override with TABLESCORE_SHARED_DATA)."""
    env = os.environ.get("TABLESCORE_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared test data not found at {path}: the repository expects ../shared/data "
            "beside it (or set TABLESCORE_SHARED_DATA)")
    return path


@cache
def shared_csv(name: str) -> pd.DataFrame:
    """A table from ``shared/data/datasets`` with ``N/A`` / empty cells as missing."""
    return pd.read_csv(shared_data() / "datasets" / name, na_values=["N/A", "NA", ""],
                       keep_default_na=False)


@cache
def sklearn_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    X, y = loader(return_X_y=True)
    return X.astype(np.float64), y


def synthetic(n: int = 500, n_features: int = 8, *, seed: int = 0,
              nan: bool = False, inf: bool = False) -> np.ndarray:
    """Random features with hostile values mixed in.

    Columns mix scales (1e-300 .. 1e300), integer-valued columns (which create exact ties
    with split thresholds at x.5 midpoints and at the integers themselves), and optionally
    NaN and +/-inf cells.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    X[:, 0] = rng.integers(0, 5, size=n)            # integer-valued: ties
    if n_features > 1:
        X[:, 1] = np.round(X[:, 1], 1)              # one decimal: many ties
    if n_features > 2:
        X[:, 2] *= 1e6
    if n_features > 3:
        X[: n // 20, 3] = rng.choice([1e300, -1e300, 1e-300, -1e-300, 0.0, -0.0], n // 20)
    if nan:
        mask = rng.random(X.shape) < 0.05
        X[mask] = np.nan
    if inf:
        rows = rng.choice(n, size=max(1, n // 50), replace=False)
        X[rows, rng.integers(0, n_features, size=len(rows))] = rng.choice(
            [np.inf, -np.inf], size=len(rows))
    return X


def with_ties(X: np.ndarray, thresholds: np.ndarray, features: np.ndarray,
              seed: int = 0) -> np.ndarray:
    """Copy of ``X`` whose rows hit split thresholds exactly (as float64 and as float32)."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    k = min(len(thresholds), len(X))
    idx = rng.choice(len(thresholds), size=k, replace=False)
    for r, t in enumerate(idx):
        value = thresholds[t]
        if r % 2:
            value = float(np.float32(value))
        X[r, features[t]] = value
    return X


def audit_categorical(na: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Audit(NA) with string columns as pandas categories and Deductions as 0/1/NaN: the
    shape XGBoost's and LightGBM's native categorical support expect."""
    df = shared_csv("AuditNA.csv" if na else "Audit.csv").copy()
    y = df.pop("Adjusted").to_numpy()
    for c in df.columns:
        if c == "Deductions":
            df[c] = df[c].map({True: 1.0, False: 0.0, "TRUE": 1.0, "FALSE": 0.0}).astype(float)
        elif not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("category")
    return df, y


def hostile_blocks(X: np.ndarray) -> np.ndarray:
    """``X`` with whole blocks of rows set to +inf, -inf, 1e300, -1e300, NaN, 1e-300, -0.0 and
    -1e-300 (rows 0-79, ten each): every feature at once, so every split sees them."""
    X = X.copy()
    for i, v in enumerate((np.inf, -np.inf, 1e300, -1e300, np.nan, 1e-300, -0.0, -1e-300)):
        X[10 * i : 10 * (i + 1)] = v
    return X
