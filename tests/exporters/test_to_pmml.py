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


def test_a_refused_conversion_is_an_export_error_with_the_converter_output(
        tmp_path, monkeypatch, iris_pmml):
    # the converter's printed output was read from a file already closed: ValueError
    import sklearn2pmml

    def refuse(pipeline, path):
        import os

        os.write(2, b"SEVERE: Class sklearn.calibration.CalibratedClassifierCV is not supported")
        raise RuntimeError("The JPMML-SkLearn conversion application has failed")

    monkeypatch.setattr(sklearn2pmml, "sklearn2pmml", refuse)
    est, df, _ = iris_pmml
    with pytest.raises(ExportError, match=r"(?s)could not convert.*CalibratedClassifierCV is not"):
        to_pmml(est, tmp_path / "x.pmml", sample=df)
    assert list(tmp_path.iterdir()) == []  # no temporary left


def test_document_mode_follows_the_umask(iris_pmml):
    # written through mkstemp (0600) and renamed: it must read as open() would have made it
    import stat

    from scorer.fsutil import current_umask

    _, _, path = iris_pmml
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()


def _attr(line: str, name: str, default: str | None = None) -> float:
    """A numeric attribute of one XML element's line (PMML's default when absent)."""
    import re

    m = re.search(rf'{name}="([^"]*)"', line)
    assert m is not None or default is not None, line
    return float(m.group(1) if m else default)


# --- XGBoost: verification written so that a reader can honour it --------------------------------
def _xgb_model(dataset: str, kind: str) -> tuple[object, pd.DataFrame]:
    xgb = pytest.importorskip("xgboost")
    X, y = sklearn_dataset(dataset)
    df = pd.DataFrame(X, columns=[f"f {i}" for i in range(X.shape[1])])
    cls = xgb.XGBClassifier if kind == "classifier" else xgb.XGBRegressor
    return cls(n_estimators=30, max_depth=4, n_jobs=1, random_state=0).fit(df, y), df


@pytest.mark.parametrize(("dataset", "kind"), [("wine", "classifier"),
                                               ("breast_cancer", "regressor")])
def test_xgboost_document_loads_with_its_verification(dataset, kind, tmp_path):
    """XGBoost's outputs are float32 (recorded as float32 numbers, from float32 sums): the
    document's verification tolerance is XGBoost's, not sklearn2pmml's 1e-13 default, and
    ``scorer.load`` (which re-checks it) accepts the document."""
    import scorer
    from scorer.tolerances import TOLERANCES

    est, df = _xgb_model(dataset, kind)
    path = to_pmml(est, tmp_path / "m.pmml", sample=df)
    text = path.read_text()
    tol = TOLERANCES["xgboost"]
    outs = [line for line in text.splitlines()
            if "<VerificationField" in line and ("probability(" in line or 'field="y"' in line)]
    assert outs and all(_attr(line, "zeroThreshold") == tol.abs
                        and _attr(line, "precision", "1E-6") == tol.rel for line in outs)
    model = scorer.load(path)  # raised VerificationError before
    assert model.verify() == 32
    got = model.predict_proba(df) if kind == "classifier" else model.predict(df)
    want = est.predict_proba(df) if kind == "classifier" else est.predict(df)
    np.testing.assert_allclose(got, want, rtol=tol.rel, atol=tol.abs)


def test_cli_export_pmml_of_xgboost_loads(tmp_path):
    import pickle

    import scorer
    from tablescore.cli import main

    est, df = _xgb_model("breast_cancer", "regressor")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(est))
    df.to_csv(tmp_path / "s.csv", index=False)
    assert main(["export", str(tmp_path / "m.pkl"), "--format", "pmml", "--out",
                 str(tmp_path / "m.pmml"), "--sample", str(tmp_path / "s.csv")]) == 0
    assert scorer.load(tmp_path / "m.pmml").verify() == 32


def test_float64_models_keep_a_float64_tolerance(iris_pmml):
    _, _, path = iris_pmml
    lines = [line for line in path.read_text().splitlines()
             if "<VerificationField" in line and "probability(" in line]
    assert lines and all(_attr(line, "precision") == 1e-12
                         and _attr(line, "zeroThreshold") == 1e-12 for line in lines)
