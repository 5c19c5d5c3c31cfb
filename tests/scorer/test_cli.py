"""The command line: export, verify, info, score (atomic output), exit codes."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from tablescore.cli import main


@pytest.fixture()
def pickled(tmp_path, iris_logreg):
    model, X = iris_logreg
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    return model, X, path, data


def test_export_verify_info_score(tmp_path, pickled, capsys):
    model, X, pkl, data = pickled
    bundle = tmp_path / "bundle"
    assert main(["export", str(pkl), "--out", str(bundle), "--sample", str(data),
                 "--name", "iris"]) == 0
    assert "wrote bundle" in capsys.readouterr().out
    assert main(["verify", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "64 rows reproduce the original model" in out
    assert main(["info", str(bundle)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"]["name"] == "iris"
    out_file = tmp_path / "scores" / "out.parquet"
    assert main(["score", str(bundle), "--data", str(data), "--out", str(out_file),
                 "--chunk-rows", "40"]) == 0
    scored = pd.read_parquet(out_file)
    np.testing.assert_allclose(scored[["probability(0)", "probability(1)", "probability(2)"]],
                               model.predict_proba(X), rtol=1e-12, atol=1e-12)
    assert (scored["label"].to_numpy() == model.predict(X)).all()
    assert [p.name for p in out_file.parent.iterdir()] == ["out.parquet"]  # no temp files


def test_exit_codes_and_messages(tmp_path, pickled, capsys):
    _, _, pkl, data = pickled
    bundle = tmp_path / "b"
    assert main(["export", str(pkl), "--out", str(bundle), "--sample", str(data)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema_version"] = "2.0"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 3
    assert "newer than this scorer" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"x0": [1.0]}).to_csv(bad, index=False)
    bundle2 = tmp_path / "b2"
    main(["export", str(pkl), "--out", str(bundle2), "--sample", str(data)])
    capsys.readouterr()
    assert main(["score", str(bundle2), "--data", str(bad), "--out",
                 str(tmp_path / "o.csv")]) == 2
    assert "missing input fields 'x1', 'x2', 'x3'" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
