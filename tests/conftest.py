from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.datasets import sklearn_dataset


@pytest.fixture(scope="session")
def iris_logreg():
    """A small scaled logistic regression on iris, shared by tests that need any model."""
    X, y = sklearn_dataset("iris")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return model, X
