"""Bundle format v1: round trip, integrity, compatibility rules, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import exporters
import scorer
from scorer.bundle import fingerprint_of, read_bundle, write_bundle
from scorer.errors import (
    BundleFormatError,
    IncompatibleBundleError,
    IntegrityError,
    VerificationError,
)


@pytest.fixture()
def bundle_dir(tmp_path, iris_logreg) -> Path:
    model, X = iris_logreg
    exporters.export(model, tmp_path / "iris", sample=X, name="iris", version="7")
    return tmp_path / "iris"


def _rewrite_manifest(path: Path, edit, *, refingerprint: bool = True) -> None:
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    if refingerprint:
        m["fingerprint"] = fingerprint_of(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_manifest_has_the_documented_fields(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["format"] == "tablescore-bundle"
    assert m["schema_version"] == "1.0"
    assert m["model"] == {"name": "iris", "version": "7", "task": "classification"}
    assert m["producer"]["libraries"]["scikit-learn"] == "1.9.0"
    assert [f["name"] for f in m["inputs"]] == ["x0", "x1", "x2", "x3"]
    assert [o["name"] for o in m["outputs"]][-1] == "label"
    assert [s["op"] for s in m["steps"]] == ["affine", "linear", "link"]
    for rel, entry in m["tables"].items():
        assert (bundle_dir / rel).is_file()
        assert len(entry["sha256"]) == 64
    assert m["verification"]["rows"] == 64
    assert m["fingerprint"] == fingerprint_of(m)


def test_round_trip_preserves_every_table(bundle_dir):
    b = read_bundle(bundle_dir)
    again = bundle_dir.parent / "again"
    write_bundle(b, again)
    b2 = read_bundle(again)
    assert b2.fingerprint == b.fingerprint  # same content, same fingerprint (time excluded)
    for s1, s2 in zip(b.steps, b2.steps, strict=True):
        assert (s1.op, s1.op_version, s1.params) == (s2.op, s2.op_version, s2.params)
        for role in s1.tables:
            for col in s1.tables[role]:
                np.testing.assert_array_equal(s1.tables[role][col], s2.tables[role][col])


def test_tampered_table_is_refused(bundle_dir):
    table = next((bundle_dir / "tables").glob("*logistic_regression_coefficients*"))
    b = read_bundle(bundle_dir)
    step = next(s for s in b.steps if s.op == "linear")
    coef = step.tables["coefficients"]["coef_0"].copy()  # tables are read-only views
    coef[0] += 1e-3
    step.tables["coefficients"]["coef_0"] = coef
    # write the perturbed table over the original file, keeping the old manifest
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(step.tables["coefficients"]), table)
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        scorer.load(bundle_dir)


def test_edited_manifest_is_refused(bundle_dir):
    _rewrite_manifest(bundle_dir, lambda m: m["model"].update(version="8"), refingerprint=False)
    with pytest.raises(IntegrityError, match="fingerprint mismatch"):
        scorer.load(bundle_dir)


def test_perturbed_parameter_fails_verification(bundle_dir, tmp_path):
    # An exporter bug that changes outputs, simulated: perturb a coefficient and re-hash
    # everything, so only the verification rows can catch it.
    b = read_bundle(bundle_dir)
    coefs = next(s for s in b.steps if s.op == "linear").tables["coefficients"]
    coefs["coef_1"] = coefs["coef_1"] * 1.01
    write_bundle(b, tmp_path / "drifted")
    with pytest.raises(VerificationError, match=r"row \d+, column '.*'"):
        scorer.load(tmp_path / "drifted")
    scorer.load(tmp_path / "drifted", verify=False)  # explicit opt-out still loads


def test_newer_major_schema_is_refused(bundle_dir):
    _rewrite_manifest(bundle_dir, lambda m: m.update(schema_version="2.0"))
    with pytest.raises(IncompatibleBundleError,
                       match=r"bundle schema 2.0 is newer than this scorer \(reads 1.x\)"):
        scorer.load(bundle_dir)


def test_unknown_minor_additions_are_ignored(bundle_dir):
    def edit(m):
        m["schema_version"] = "1.7"
        m["future_section"] = {"anything": [1, 2, 3]}
        m["steps"][0]["future_key"] = "ignored"

    _rewrite_manifest(bundle_dir, edit)
    model = scorer.load(bundle_dir)
    assert model.bundle.extra == {"future_section": {"anything": [1, 2, 3]}}


def test_unknown_op_version_is_refused(bundle_dir):
    _rewrite_manifest(bundle_dir, lambda m: m["steps"][1].update(op_version=3))
    with pytest.raises(IncompatibleBundleError, match="op 'linear' version 3 unknown"):
        scorer.load(bundle_dir)


def test_unknown_op_is_refused(bundle_dir):
    _rewrite_manifest(bundle_dir, lambda m: m["steps"][1].update(op="quantum_forest"))
    with pytest.raises(IncompatibleBundleError, match="op 'quantum_forest' unknown"):
        scorer.load(bundle_dir)


def test_missing_table_and_bad_json(bundle_dir):
    (bundle_dir / "manifest.json").write_text("{not json")
    with pytest.raises(BundleFormatError, match="not valid JSON"):
        scorer.load(bundle_dir)
    with pytest.raises(BundleFormatError, match=r"no manifest\.json"):
        scorer.load(bundle_dir / "tables")


def test_table_path_cannot_escape(bundle_dir):
    def edit(m):
        rel = m["steps"][0]["tables"]["columns"]
        m["tables"]["../outside.parquet"] = m["tables"][rel]
        m["steps"][0]["tables"]["columns"] = "../outside.parquet"

    _rewrite_manifest(bundle_dir, edit)
    with pytest.raises(BundleFormatError, match="not a plain relative path inside the bundle"):
        scorer.load(bundle_dir)


@pytest.mark.parametrize("phase", ["tables", "manifest"])
def test_crash_during_write_leaves_no_bundle(tmp_path, iris_logreg, phase):
    model, X = iris_logreg
    b = exporters.build_bundle(model, sample=X, name="iris")
    target = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_bundle(b, target, _crash_after=phase)
    assert not target.exists()
    assert os.listdir(tmp_path) == []  # temp directory cleaned up


def test_crash_during_overwrite_keeps_old_bundle(bundle_dir, iris_logreg):
    model, X = iris_logreg
    before = read_bundle(bundle_dir).fingerprint
    b = exporters.build_bundle(model, sample=X, name="other")
    with pytest.raises(RuntimeError):
        write_bundle(b, bundle_dir, overwrite=True, _crash_after="manifest")
    assert read_bundle(bundle_dir).fingerprint == before
    write_bundle(b, bundle_dir, overwrite=True)
    assert read_bundle(bundle_dir).name == "other"
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["iris"]


def test_existing_path_needs_overwrite(bundle_dir, iris_logreg):
    model, X = iris_logreg
    with pytest.raises(FileExistsError, match="overwrite=True"):
        exporters.export(model, bundle_dir, sample=X)


def test_non_finite_params_round_trip(tmp_path):
    from scorer.ir import Bundle, Field, Output, Step

    step = Step(op="impute", op_version=1, name="imp", inputs=["a"], outputs=["a2"],
                params={"missing_value": float("nan")},
                tables={"columns": {"fill": np.array([2.5]), "emit": np.array([True])}})
    b = Bundle(name="m", version="1", task="transform", inputs=[Field("a")], steps=[step],
               outputs=[Output(name="a2", kind="transformed", column="a2")])
    write_bundle(b, tmp_path / "m")
    assert '"NaN"' in (tmp_path / "m" / "manifest.json").read_text()
    m = scorer.load(tmp_path / "m")
    np.testing.assert_array_equal(m.score_arrays({"a": [1.0, np.nan]})["a2"], [1.0, 2.5])


def test_keep_tables_false_frees_the_tables_and_refuses_to_write_them(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    from tests.datasets import sklearn_dataset

    X, y = sklearn_dataset("iris")
    est = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    exporters.export(est, tmp_path / "b", sample=X)
    full = scorer.load(tmp_path / "b")
    lean = scorer.load(tmp_path / "b", keep_tables=False)
    assert lean.tables_released and all(not s.tables for s in lean.bundle.steps)
    np.testing.assert_array_equal(lean.predict_proba(X), full.predict_proba(X))
    np.testing.assert_array_equal(full.predict_proba(X, reference=True), full.predict_proba(X))
    with pytest.raises(RuntimeError, match="keep_tables=True"):
        lean.predict_proba(X, reference=True)
    with pytest.raises(ValueError, match="cannot be written"):
        write_bundle(lean.bundle, tmp_path / "copy")


@pytest.mark.parametrize(("rel", "given", "want"), [
    ("models/churn/3", (None, None), ("churn", "3")),     # a repository's version directory
    ("models/churn/3", ("other", None), ("other", "3")),
    ("models/churn/3", (None, "7"), ("churn", "7")),
    ("bundles/churn", (None, None), ("churn", "1")),
    ("churn-v2", ("c", "2"), ("c", "2")),
])
def test_default_identity_follows_the_repository_layout(tmp_path, rel, given, want):
    from scorer.bundle import default_identity

    assert default_identity(tmp_path / rel, *given) == want


def test_export_into_a_repository_records_its_model_and_version(tmp_path, iris_logreg):
    import exporters
    import scorer

    model, X = iris_logreg
    exporters.export(model, tmp_path / "models" / "churn" / "3", sample=X)
    m = scorer.load(tmp_path / "models" / "churn" / "3")
    assert (m.name, m.version) == ("churn", "3")
