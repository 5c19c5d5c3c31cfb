"""Drift reference profiles from a sample for bundles not exported with one:
``tablescore import --sample`` (PMML) and ``tablescore registry publish --sample``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scorer.bundle import read_bundle, write_bundle
from scorer.errors import InputError
from scorer.monitoring import Profile
from scorer.monitoring.profile import reference_profile, sample_profile
from scorer.pmml import read_pmml
from scorer.registry import open_store
from tablescore.cli import main

PMML = """<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
 <Header/>
 <DataDictionary numberOfFields="3">
  <DataField name="color" optype="categorical" dataType="string">
   <Value value="red"/><Value value="green"/><Value value="blue"/>
  </DataField>
  <DataField name="size" optype="continuous" dataType="double"/>
  <DataField name="y" optype="continuous" dataType="double"/>
 </DataDictionary>
 <RegressionModel functionName="regression">
  <MiningSchema>
   <MiningField name="color"/><MiningField name="size"/>
   <MiningField name="y" usageType="target"/>
  </MiningSchema>
  <RegressionTable intercept="0.5">
   <NumericPredictor name="size" coefficient="2"/>
   <CategoricalPredictor name="color" value="red" coefficient="1"/>
   <CategoricalPredictor name="color" value="green" coefficient="-1"/>
  </RegressionTable>
 </RegressionModel>
</PMML>
"""


def _sample(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object)
    colors[:7] = None  # missing
    # an extra column the model does not take, before the inputs
    return pd.DataFrame({"id": np.arange(n), "size": rng.normal(size=n), "color": colors})


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "m.pmml").write_text(PMML)
    _sample(0).to_csv(tmp_path / "sample.csv", index=False)
    return tmp_path / "m.pmml", tmp_path / "sample.csv"


def test_sample_profile_counts_the_sample(files) -> None:
    pmml, _ = files
    b = read_pmml(pmml)
    df = _sample(0)
    p = sample_profile(b, df, bins=12)
    assert p.rows == len(df)
    color, size = p.inputs
    assert color.kind == "categorical" and color.categories == ["red", "green", "blue"]
    # missing, red, green, blue, unseen: counted from the sample exactly
    c = df["color"]
    assert color.counts.tolist() == [7, int((c == "red").sum()), int((c == "green").sum()),
                                     int((c == "blue").sum()), 0]
    assert size.kind == "numeric" and len(size.edges) == 13 and size.rows == len(df)
    assert [o.name for o in p.outputs] == ["y"] and p.outputs[0].rows == len(df)
    # the same profile as the exporters' path (reference_profile on the input columns)
    cols = {"color": np.array([None if pd.isna(v) else str(v) for v in c], dtype=object),
            "size": df["size"].to_numpy()}
    assert p.to_json() == reference_profile(b, cols, bins=12).to_json()


def test_sample_profile_refuses_a_sample_without_the_inputs(files) -> None:
    b = read_pmml(files[0])
    with pytest.raises(InputError, match="lacks the model's input field 'color'"):
        sample_profile(b, _sample(0).drop(columns="color"))
    with pytest.raises(InputError, match="no rows"):
        sample_profile(b, _sample(0).iloc[:0])


def test_import_sample_stores_a_profile_that_round_trips(files, tmp_path: Path,
                                                         capsys) -> None:
    pmml, sample = files
    assert main(["import", str(pmml), "--out", str(tmp_path / "b"), "--sample", str(sample),
                 "--drift-bins", "15"]) == 0
    assert "drift reference of 2000 sample rows" in capsys.readouterr().out
    b = read_bundle(tmp_path / "b")  # fingerprint checked: the profile is part of it
    assert b.drift_reference is not None
    expected = sample_profile(read_pmml(pmml), pd.read_csv(sample), bins=15)
    p = Profile.from_json(b.drift_reference)
    assert p.to_json() == expected.to_json() and p.same_layout(expected)
    assert len(p.inputs[1].edges) == 16
    # written again, read again: unchanged
    write_bundle(b, tmp_path / "again")
    assert read_bundle(tmp_path / "again").drift_reference == b.drift_reference
    # the bundle's own sample against its profile: no drift at all
    assert main(["drift", str(tmp_path / "b"), "--data", str(sample), "--json",
                 str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["max_psi"] == 0.0 and set(report["psi"]) == {"color", "size", "output:y"}
    # a shifted sample drifts in `size` (and the output), not in `color`
    shifted = _sample(1)
    shifted["size"] += 1.0
    shifted.to_csv(tmp_path / "cur.csv", index=False)
    assert main(["drift", str(tmp_path / "b"), "--data", str(tmp_path / "cur.csv"),
                 "--json", str(tmp_path / "r.json")]) == 1
    psi = json.loads((tmp_path / "r.json").read_text())["psi"]
    assert psi["size"] >= 0.2 and psi["output:y"] >= 0.2 and psi["color"] < 0.1, psi


def test_import_without_sample_has_no_profile(files, tmp_path: Path) -> None:
    assert main(["import", str(files[0]), "--out", str(tmp_path / "b")]) == 0
    assert read_bundle(tmp_path / "b").drift_reference is None


def test_import_sample_usage_errors(files, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:  # argparse: usage error
        main(["import", str(files[0]), "--out", "b", "--sample", str(files[1]),
              "--drift-bins", "9"])
    assert exc.value.code == 2 and "must be in 10..20, got 9" in capsys.readouterr().err
    assert main(["import", str(files[0]), "--out", "b", "--sample", "nope.csv"]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_import_sample_missing_input_writes_nothing(files, tmp_path: Path, capsys) -> None:
    _sample(0).drop(columns="size").to_csv(tmp_path / "bad.csv", index=False)
    assert main(["import", str(files[0]), "--out", str(tmp_path / "b"), "--sample",
                 str(tmp_path / "bad.csv")]) == 2
    assert "'size'" in capsys.readouterr().err and not (tmp_path / "b").exists()


def _published_manifest(url: str, model: str) -> dict:
    s = open_store(url)
    try:
        fp = s.versions(model)[-1]["fingerprint"]
        return json.loads(s.fetch(fp)["manifest.json"])
    finally:
        s.close()


def test_registry_publish_sample(files, tmp_path: Path) -> None:
    pmml, sample = files
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    expected = sample_profile(read_pmml(pmml), pd.read_csv(sample)).to_json()
    # a PMML document
    assert main(["registry", "publish", str(pmml), "--model", "m", "--store", url,
                 "--sample", str(sample)]) == 0
    assert _published_manifest(url, "m")["drift_reference"] == expected
    # a bundle without a profile: rewritten with one (a new fingerprint)
    assert main(["import", str(pmml), "--out", str(tmp_path / "plain")]) == 0
    plain = read_bundle(tmp_path / "plain")
    assert main(["registry", "publish", str(tmp_path / "plain"), "--model", "b", "--store",
                 url]) == 0
    assert _published_manifest(url, "b")["drift_reference"] is None
    assert main(["registry", "publish", str(tmp_path / "plain"), "--model", "b", "--store",
                 url, "--sample", str(sample)]) == 0
    s = open_store(url)
    try:
        versions = s.versions("b")
    finally:
        s.close()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["fingerprint"] == plain.fingerprint != versions[1]["fingerprint"]
    assert _published_manifest(url, "b")["drift_reference"] == expected
