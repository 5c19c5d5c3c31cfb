"""verification.coverage (#18): exporter -> manifest -> reader, and ``tablescore info``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

import exporters
from scorer.bundle import read_bundle, read_manifest, write_bundle
from tablescore.cli import main


def _forest_bundle(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (X["a"] + X["b"] > 0).astype(int)
    est = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    path = tmp_path / "forest"
    bundle = exporters.export(est, path, sample=X, name="forest")
    return bundle, path


def test_coverage_is_written_to_the_verification_section_and_read_back(tmp_path):
    bundle, path = _forest_bundle(tmp_path)
    cov = bundle.verification.coverage
    assert cov["method"] == "leaves" and 0 < cov["share"] <= 1
    assert "verification_coverage" not in bundle.producer
    manifest = read_manifest(path)
    assert manifest["verification"]["coverage"] == cov
    assert "verification_coverage" not in manifest["producer"]
    again = read_bundle(path)
    assert again.verification.coverage == cov
    # and through a second write: the reader's Verification carries it on
    write_bundle(again, tmp_path / "copy")
    assert read_manifest(tmp_path / "copy")["verification"]["coverage"] == cov


def test_a_bundle_without_coverage_reads_as_none(tmp_path):
    bundle, _ = _forest_bundle(tmp_path)
    bundle.verification.coverage = None
    write_bundle(bundle, tmp_path / "bare")
    assert "coverage" not in read_manifest(tmp_path / "bare")["verification"]
    assert read_bundle(tmp_path / "bare").verification.coverage is None


def test_info_prints_the_share_of_leaves_covered(tmp_path, capsys):
    bundle, path = _forest_bundle(tmp_path)
    cov = bundle.verification.coverage
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verification"] == {
        "rows": cov["rows"], "method": "leaves", "leaves_covered": cov["leaves_covered"],
        "leaves_total": cov["leaves_total"], "share": cov["share"]}
