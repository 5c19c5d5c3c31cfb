from __future__ import annotations

import os

import pytest
from hypothesis import settings
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.datasets import sklearn_dataset

# Property tests draw the same examples on every run, so a CI result is reproducible; set
# TABLESCORE_HYPOTHESIS_RANDOM=1 to explore fresh examples (and fix what they find).
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("TABLESCORE_HYPOTHESIS_RANDOM") else
                      "deterministic")


@pytest.fixture(scope="session")
def iris_logreg():
    """A small scaled logistic regression on iris, shared by tests that need any model."""
    X, y = sklearn_dataset("iris")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return model, X


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A registry URL on an empty store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    from tests.services import fresh_database

    with fresh_database() as url:
        yield url
