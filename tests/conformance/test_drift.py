"""Drift that verification rows alone may miss, caught by the conformance check: a scorer or
exporter that compares tree splits in float64 where scikit-learn compares in float32 (what
TL2cgen and many PMML engines do), and a bundle exported under another library version."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import exporters
import scorer
from conformance import check
from scorer.bundle import read_bundle, write_bundle
from tablescore.cli import main
from tests.datasets import sklearn_dataset


def _thresholds_between_float32s(est) -> tuple[np.ndarray, np.ndarray]:
    """Split thresholds (and features) that are not float32 values: rows exactly at the
    float64 value round to the next float32 above it and so go right in scikit-learn."""
    th, fe = [], []
    for tree in est.estimators_:
        t = tree.tree_
        inner = t.feature >= 0
        th.append(t.threshold[inner])
        fe.append(t.feature[inner])
    th, fe = np.concatenate(th), np.concatenate(fe)
    odd = np.float32(th).astype(np.float64) != th
    return th[odd], fe[odd]


def test_float64_comparison_drift_is_caught(tmp_path):
    X, y = sklearn_dataset("breast_cancer")
    est = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X, y)
    exporters.export(est, tmp_path / "good", sample=X)
    th, fe = _thresholds_between_float32s(est)
    # every row sits just above a float32-rounded threshold: float32 and float64 disagree
    Xt = np.repeat(X[:1], len(th), axis=0)
    Xt[np.arange(len(th)), fe] = np.nextafter(th, np.inf)
    assert check(est, scorer.load(tmp_path / "good"), Xt).passed

    drifted = read_bundle(tmp_path / "good")
    step = next(s for s in drifted.steps if s.op == "tree_ensemble")
    step.params["compare_dtype"] = "float64"  # the classic float32/float64 drift
    drifted.verification = None
    write_bundle(drifted, tmp_path / "drifted")
    report = check(est, scorer.load(tmp_path / "drifted"), Xt)
    assert not report.passed
    assert max(c.max_abs_error or 0.0 for c in report.columns) > 1e-3


def test_verify_warns_when_exported_under_other_library_versions(tmp_path, iris_logreg,
                                                                 capsys):
    est, X = iris_logreg
    exporters.export(est, tmp_path / "b", sample=X)
    b = read_bundle(tmp_path / "b")
    b.producer["libraries"]["scikit-learn"] = "1.5.2"
    write_bundle(b, tmp_path / "old")
    assert main(["verify", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert "exported with scikit-learn 1.5.2" in out and "re-run conformance" in out
