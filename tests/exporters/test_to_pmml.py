"""PMML export via sklearn2pmml: the document carries ModelVerification and scores like the
original in the reference evaluator (pypmml). Needs Java, which CI has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from exporters import to_pmml
from scorer.errors import ExportError
from tests.datasets import sklearn_dataset


@pytest.fixture(scope="module")
def iris_pmml(tmp_path_factory):
    X, y = sklearn_dataset("iris")
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(df, y)
    path = to_pmml(est, tmp_path_factory.mktemp("pmml") / "iris.pmml", sample=df,
                   target_name="species")
    return est, df, path


def test_document_has_verification_and_fields(iris_pmml):
    _, _, path = iris_pmml
    text = path.read_text()
    assert "<ModelVerification" in text
    assert 'name="species"' in text and 'name="pl"' in text
    assert not list(path.parent.glob(".*"))  # no temp file left behind


def test_reference_evaluator_agrees_with_original(iris_pmml):
    from pypmml import Model

    est, df, path = iris_pmml
    ref = Model.fromFile(str(path))
    out = ref.predict(df)
    want = est.predict_proba(df)
    got = out[[f"probability({c})" for c in est.classes_]].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_missing_java_is_reported_clearly(tmp_path, monkeypatch, iris_pmml):
    est, df, _ = iris_pmml
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    with pytest.raises(ExportError, match=r"PMML export needs Java .* Scoring never needs Java"):
        to_pmml(est, tmp_path / "x.pmml", sample=df)
    assert not (tmp_path / "x.pmml").exists()


def test_document_mode_follows_the_umask(iris_pmml):
    # written through mkstemp (0600) and renamed: it must read as open() would have made it
    import stat

    from scorer.fsutil import current_umask

    _, _, path = iris_pmml
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
