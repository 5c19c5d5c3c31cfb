"""The command line's failures: one line on stderr, no traceback, a documented exit code each
(tablescore.cli), and no temporary output left behind (#19, #18)."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exporters
from scorer import batch, files
from tablescore import cli
from tablescore.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def setup(tmp_path, iris_logreg):
    """``(bundle, data.csv, model.pkl)`` of the iris logistic regression."""
    model, X = iris_logreg
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(model))
    data = tmp_path / "data.csv"
    pd.DataFrame(X, columns=[f"x{j}" for j in range(4)]).to_csv(data, index=False)
    bundle = tmp_path / "bundle"
    exporters.export(model, bundle, sample=X)
    return bundle, data, pkl


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``tablescore argv``; stderr must be one line, no traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("tablescore: ") and err.count("\n") == 1, err
    return code, err


def no_temps(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if files.TMP_INFIX in p.name or
            ".tmp-" in p.name]


@pytest.mark.parametrize("rows", ["-5", "0", "x"])
def test_chunk_rows_must_be_positive(setup, tmp_path, rows, capsys):
    bundle, data, _ = setup
    with pytest.raises(SystemExit) as ex:  # argparse: a usage error
        main(["score", str(bundle), "--data", str(data), "--out", str(tmp_path / "o.csv"),
              "--chunk-rows", rows])
    assert ex.value.code == 2
    assert "--chunk-rows" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "is empty"),
    (b"x0,x1,x2,x3\n\xff\xfe,1,2,3\n", "is not UTF-8 text (byte 0xff at offset 12)"),
    (None, "does not exist"),
])
def test_unreadable_data_is_bad_input(setup, tmp_path, content, expected, capsys):
    bundle, _, _ = setup
    data = tmp_path / "in.csv"
    if content is not None:
        data.write_bytes(content)
    code, err = run(["score", bundle, "--data", data, "--out", tmp_path / "o.csv"], capsys)
    assert code == 2
    assert expected in err


def test_unknown_keep_column_is_bad_input(setup, tmp_path, capsys):
    bundle, data, _ = setup
    code, err = run(["score", bundle, "--data", data, "--out", tmp_path / "o.csv", "--keep",
                     "x0", "nope"], capsys)
    assert code == 2
    assert "--keep: no column 'nope'" in err
    assert not (tmp_path / "o.csv").exists()


def test_output_that_is_a_directory_is_an_io_error(setup, tmp_path, capsys):
    bundle, data, _ = setup
    (tmp_path / "out").mkdir()
    code, err = run(["score", bundle, "--data", data, "--out", tmp_path / "out"], capsys)
    assert code == 4
    assert "is a directory" in err


def test_full_disk_is_an_io_error_and_leaves_nothing(setup, tmp_path, monkeypatch, capsys):
    bundle, data, _ = setup
    out = tmp_path / "scores" / "o.csv"

    def full(fd: int) -> None:  # where a full disk shows at the latest: the flush
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    code, err = run(["score", bundle, "--data", data, "--out", out], capsys)
    assert code == 4
    assert "no space left on the device" in err
    assert list(out.parent.iterdir()) == []


def test_truncated_pickle_is_a_corrupt_model_file(setup, tmp_path, capsys):
    _, data, pkl = setup
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(pkl.read_bytes()[:100])
    code, err = run(["export", cut, "--out", tmp_path / "b2", "--sample", data], capsys)
    assert code == 3
    assert "is not a complete pickle" in err
    assert not (tmp_path / "b2").exists()


BAD_ATTRIBUTE = ('<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4"><Header/>'
                 '<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
                 '</DataDictionary><RegressionModel functionName="regression"><MiningSchema>'
                 '<MiningField name="x"/></MiningSchema><RegressionTable intercept="abc"/>'
                 '</RegressionModel></PMML>')


@pytest.mark.parametrize(("text", "expected"), [
    ("<PMML", "not well-formed XML"),
    ("<foo/>", "root element is not <PMML>"),  # refused by the reader (PMMLError)
    # a number that is not one: the reader's strict xs:double parse names line and attribute
    (BAD_ATTRIBUTE, "intercept='abc' is not a number"),
])
@pytest.mark.parametrize("command", ["verify", "import", "score"])
def test_bad_pmml_is_a_corrupt_model_file(setup, tmp_path, command, text, expected, capsys):
    doc = tmp_path / "bad.pmml"
    doc.write_text(text)
    argv = {"verify": ["verify", doc], "import": ["import", doc, "--out", tmp_path / "b"],
            "score": ["score", doc, "--data", setup[1], "--out", tmp_path / "o.csv"]}[command]
    code, err = run(argv, capsys)
    assert code == 3
    assert expected in err


def test_bad_manifest_is_a_corrupt_bundle(setup, capsys):
    bundle, _, _ = setup
    (bundle / "manifest.json").write_text("{not json")
    code, err = run(["info", bundle], capsys)
    assert code == 3
    assert "not valid JSON" in err


def test_info_shows_a_manifest_without_its_optional_keys(setup, capsys):
    bundle, _, _ = setup
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("created", "producer", "fingerprint"):  # optional in the manifest schema
        manifest.pop(key, None)
    for f in manifest["inputs"]:
        f.pop("type", None)
    path.write_text(json.dumps(manifest))
    assert main(["info", str(bundle)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["created"] is None and info["fingerprint"] is None
    assert info["inputs"][0] == "x0:?"


def test_export_of_string_columns_without_sample_says_to_pass_one(tmp_path, capsys):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = pd.DataFrame({"Employment": ["Private", "Gov", None, "Self"] * 10,
                       "Age": np.arange(40.0)})
    est = make_pipeline(ColumnTransformer([
        ("c", make_pipeline(SimpleImputer(strategy="constant", fill_value="Private"),
                            OneHotEncoder(handle_unknown="ignore")), ["Employment"]),
        ("n", "passthrough", ["Age"])]), LogisticRegression()).fit(df, np.arange(40) % 2)
    pkl = tmp_path / "m.pkl"
    pkl.write_bytes(pickle.dumps(est))
    code, err = run(["export", pkl, "--out", tmp_path / "b"], capsys)
    assert code == 2
    assert "'Employment'" in err and "pass --sample FILE" in err
    df.to_csv(tmp_path / "s.csv", index=False)
    assert main(["export", str(pkl), "--out", str(tmp_path / "b"), "--sample",
                 str(tmp_path / "s.csv")]) == 0


def test_a_bug_is_exit_70_with_its_traceback(setup, tmp_path, monkeypatch, capsys):
    bundle, data, _ = setup

    def broken(*args, **kwargs) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(batch, "_output_batch", broken)  # a bug in the batch writer
    code = main(["score", str(bundle), "--data", str(data), "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL == 70
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_exit_codes_are_documented():
    doc = cli.__doc__ or ""
    readme = (ROOT / "README.md").read_text()
    for code in sorted({c for _, c in cli.EXIT_CODES} | {0, 70, 130, 143}):
        assert f"\n{code} " in doc
        assert f"| {code} |" in readme


def test_stale_temp_of_a_killed_writer_is_removed(setup, tmp_path, capsys):
    bundle, data, _ = setup
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is no longer a process
    out = tmp_path / "o.csv"
    stale = tmp_path / f".o.csv{files.TMP_INFIX}{dead.pid}-abc123"
    stale.write_text("half a table")
    mine = tmp_path / f".o.csv{files.TMP_INFIX}{os.getpid()}-def456"  # a live writer's
    mine.write_text("in progress")
    assert main(["score", str(bundle), "--data", str(data), "--out", str(out)]) == 0
    assert not stale.exists() and mine.exists()
    assert len(pd.read_csv(out)) == 150


def test_sigterm_mid_write_leaves_no_temp(setup, tmp_path):
    bundle, _, _ = setup
    rng = np.random.default_rng(0)
    big = tmp_path / "big.parquet"  # a large CSV output takes seconds to write
    pd.DataFrame(rng.normal(size=(1_500_000, 4)), columns=[f"x{j}" for j in range(4)]) \
        .to_parquet(big)
    out = tmp_path / "out" / "o.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tablescore", "score", str(bundle),
                             "--data", str(big), "--out", str(out)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.parent.exists() and no_temps(out.parent)):
        assert proc.poll() is None, "finished before the test saw its temporary output"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_SIGTERM == 143, err
    assert "tablescore: terminated" in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []
