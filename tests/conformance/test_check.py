"""conformance.check: reports agreement, and catches a perturbed parameter."""

from __future__ import annotations

import json

import numpy as np

import exporters
import scorer
from conformance import check, ulp_distance
from scorer.bundle import read_bundle, write_bundle


def test_ulp_distance():
    a = np.array([1.0, 1.0, -0.0, np.nan, np.nan, 2.0])
    b = np.array([1.0, np.nextafter(1.0, 2.0), 0.0, np.nan, 1.0, np.nextafter(2.0, 0.0)])
    d = ulp_distance(a, b)
    assert d[:3].tolist() == [0.0, 1.0, 0.0]
    assert d[3] == 0.0 and d[4] > 1e18 and d[5] == 1.0


def test_check_passes_and_reports(tmp_path, iris_logreg):
    est, X = iris_logreg
    exporters.export(est, tmp_path / "b", sample=X)
    report = check(est, scorer.load(tmp_path / "b"), X)
    assert report.passed
    assert report.rows == len(X)
    by_name = {c.name: c for c in report.columns}
    assert by_name["label"].mismatches == 0
    assert by_name["probability(0)"].max_abs_error <= 1e-12
    assert json.loads(report.to_json())["passed"] is True
    assert "PASS" in report.to_text()


def test_check_catches_drift(tmp_path, iris_logreg):
    est, X = iris_logreg
    exporters.export(est, tmp_path / "b", sample=X)
    b = read_bundle(tmp_path / "b")
    coefs = next(s for s in b.steps if s.op == "linear").tables["coefficients"]
    coefs["coef_2"] = coefs["coef_2"] * 1.3
    b.verification = None  # a stale exporter would not notice; conformance must
    write_bundle(b, tmp_path / "drifted")
    report = check(est, scorer.load(tmp_path / "drifted"), X)
    assert not report.passed
    failing = [c for c in report.columns if not c.passed]
    assert failing and failing[0].examples
    assert "FAIL" in report.to_text()


def test_golden_vectors_round_trip(tmp_path):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge

    from conformance.vectors import write_vectors
    from tests.datasets import shared_csv

    df = shared_csv("HousingNA.csv")
    X = df.drop(columns=["MEDV"])
    est = ColumnTransformer([("imp", SimpleImputer(), list(X.columns))])
    from sklearn.pipeline import make_pipeline

    est = make_pipeline(est, Ridge()).fit(X, df["MEDV"])
    exporters.export(est, tmp_path / "b", sample=X)
    out = write_vectors(tmp_path / "b", tmp_path / "vectors")
    doc = json.loads((out / "vectors.json").read_text())
    n_edge = len(X.columns)  # one all-but-one-missing row per field
    assert len(doc["rows"]) == 64 + n_edge
    inputs = pd.read_csv(out / "inputs.csv")
    expected = pd.read_csv(out / "expected.csv")
    # a fresh reader of the CSVs reproduces the expected values with the original model
    np.testing.assert_allclose(est.predict(inputs[list(X.columns)]), expected["value"],
                               rtol=1e-12, atol=1e-12)


def test_error_relative_to_tolerance_does_not_grow_with_scale():
    """Outputs of ~1e300 (the matrix's datasets hold +-1e300 inputs) that differ in the last
    bit are an absolute error of ~1e284 but well within a relative tolerance: the matrix
    reports the error as a fraction of the tolerance (docs/conformance.md showed 5.95e+284
    for cells that passed)."""
    from conformance.check import compare_columns
    from conformance.matrix import Cell, summary
    from scorer.tolerances import Tolerance

    want = np.array([1e300, -3e299, 1.0, np.inf, np.nan])
    got = np.array([np.nextafter(1e300, np.inf), -3e299, 1.0 + 1e-15, np.inf, np.nan])
    [col] = compare_columns({"value": got}, {"value": want}, {"value": "value"},
                            Tolerance(1e-9, 1e-9, "test"))
    assert col.passed and col.max_abs_error > 1e283
    assert 0 < col.max_tol_ratio < 1e-5
    [off] = compare_columns({"value": np.array([1.0, np.nan])}, {"value": np.array([1.1, 2.0])},
                            {"value": "value"}, Tolerance(1e-9, 1e-9, "test"))
    assert not off.passed and off.max_tol_ratio == np.inf
    cell = Cell(family="neural_network", model="MLP", dataset="synthetic_regression",
                path="bundle", transport="in-process", status="pass", rows=5,
                max_abs_error=col.max_abs_error, max_tol_ratio=col.max_tol_ratio)
    table = summary([cell])
    assert "max error / tolerance" in table and "e+28" not in table
