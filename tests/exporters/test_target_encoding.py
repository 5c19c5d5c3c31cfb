"""TargetEncoder (binary, continuous, multiclass targets): bundle == transform, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import TargetEncoder

import scorer
from tests.datasets import sklearn_dataset
from tests.parity import assert_parity


def _transform(model: scorer.Model, X, *, reference: bool = False) -> np.ndarray:
    res = model.score_arrays(X, reference=reference)
    return np.column_stack([res[o.name] for o in model.bundle.outputs])


def _strings(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue", "teal"], n).astype(object),
                       "size": rng.choice(["S", "M", "L"], n).astype(object),
                       "grade": rng.integers(0, 6, n).astype(np.float64)})
    df.loc[rng.random(n) < 0.1, "color"] = None  # missing: a category of its own
    df.loc[rng.random(n) < 0.1, "grade"] = np.nan
    return df


def _numbers_from(ds: str) -> np.ndarray:  # a real dataset's columns, binned to categories
    X, y = sklearn_dataset(ds)
    return np.floor(X[:, :4] / X[:, :4].std(axis=0)), y


@pytest.mark.parametrize("target", ["binary", "continuous", "multiclass"])
def test_strings_with_missing(target, tmp_path):
    X = _strings(600, 0)
    rng = np.random.default_rng(1)
    y = {"binary": rng.integers(0, 2, 600), "continuous": rng.normal(size=600),
         "multiclass": rng.choice(["a", "b", "c"], 600)}[target]
    est = TargetEncoder(random_state=0).fit(X, y)
    Z = _strings(200, 5)
    Z.loc[:4, "color"] = "never_seen"
    Z.loc[5:9, "grade"] = 17.0  # an unseen number
    model = assert_parity(est, Z, tmp_path / "m", sample=Z)
    want = est.transform(Z)
    np.testing.assert_array_equal(_transform(model, Z), want)
    np.testing.assert_array_equal(_transform(model, Z, reference=True), want)


@pytest.mark.parametrize("ds", ["wine", "breast_cancer", "diabetes"])
def test_numeric_categories_in_a_pipeline(ds, tmp_path):
    X, y = _numbers_from(ds)
    final = Ridge() if ds == "diabetes" else LogisticRegression(max_iter=2000)
    est = make_pipeline(TargetEncoder(random_state=0), final).fit(X, y)
    model = assert_parity(est, X, tmp_path / "m")
    if ds != "diabetes":
        np.testing.assert_array_equal(model.predict(X), est.predict(X))
    enc = est[0]
    np.testing.assert_array_equal(_transform(scorer.load(_export(enc, X, tmp_path)), X),
                                  enc.transform(X))


def _export(est, X, tmp_path):
    import exporters

    exporters.export(est, tmp_path / "enc", sample=X)
    return tmp_path / "enc"
