"""A PMML document's identity (#18): creation time from Header/Timestamp, fingerprint from the
bytes parsed, and PMMLError a bad model file (BundleFormatError), not an export failure."""

from __future__ import annotations

import hashlib
import os

import pytest

import scorer
from scorer.errors import BundleError, BundleFormatError, ExportError
from scorer.pmml import PMMLError, read_pmml, read_pmml_bytes
from tablescore.cli import exit_code, main

DD = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
      '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>')


def regression(header: str = "<Header/>", coefficient: str = "1") -> bytes:
    return (f'<PMML version="4.4">{header}{DD}<RegressionModel functionName="regression">'
            '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x"/>'
            '</MiningSchema><RegressionTable intercept="0"><NumericPredictor name="x" '
            f'coefficient="{coefficient}"/></RegressionTable></RegressionModel></PMML>').encode()


@pytest.mark.parametrize(("stamp", "created"), [
    ("2024-03-05T10:11:12Z", "2024-03-05T10:11:12+00:00"),
    (" 2024-03-05T12:11:12+02:00 ", "2024-03-05T10:11:12+00:00"),
    ("2024-03-05T10:11:12.75", "2024-03-05T10:11:12+00:00"),  # no offset: UTC
    ("2024-03-05", "2024-03-05T00:00:00+00:00"),
])
def test_created_comes_from_the_header_timestamp(stamp, created):
    b = read_pmml_bytes(regression(f"<Header><Timestamp>{stamp}</Timestamp></Header>"))
    assert b.created == created


def test_a_timestamp_that_is_not_iso_8601_falls_back_to_the_file_mtime(tmp_path):
    doc = tmp_path / "m.pmml"
    doc.write_bytes(regression("<Header><Timestamp>last Tuesday</Timestamp></Header>"))
    assert read_pmml(doc).created is None
    os.utime(doc, (1_700_000_000, 1_700_000_000))
    assert scorer.load(doc).bundle.created == "2023-11-14T22:13:20+00:00"
    stamped = tmp_path / "s.pmml"
    stamped.write_bytes(regression("<Header><Timestamp>2024-03-05T10:11:12Z</Timestamp>"
                                   "</Header>"))
    os.utime(stamped, (1_700_000_000, 1_700_000_000))
    assert scorer.load(stamped).bundle.created == "2024-03-05T10:11:12+00:00"


def test_fingerprint_is_the_sha256_of_the_bytes_parsed(tmp_path):
    data = regression()
    assert read_pmml_bytes(data).fingerprint == hashlib.sha256(data).hexdigest()
    doc = tmp_path / "m.pmml"
    doc.write_bytes(data)
    assert read_pmml(doc).fingerprint == hashlib.sha256(data).hexdigest()
    assert scorer.load(doc).fingerprint == hashlib.sha256(data).hexdigest()
    other = regression(coefficient="2")
    assert read_pmml_bytes(other).fingerprint != read_pmml_bytes(data).fingerprint


def test_pmml_error_is_a_bad_model_file_not_an_export_failure(tmp_path, capsys):
    assert issubclass(PMMLError, BundleFormatError)
    assert not issubclass(PMMLError, ExportError)
    with pytest.raises(BundleError):
        read_pmml_bytes(regression(coefficient="abc"))
    assert exit_code(PMMLError("x")) == 3
    doc = tmp_path / "bad.pmml"
    doc.write_bytes(regression(coefficient="abc"))
    assert main(["verify", str(doc)]) == 3
    assert capsys.readouterr().err.startswith("tablescore: ")
