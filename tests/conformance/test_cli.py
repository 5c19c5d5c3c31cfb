"""``tablescore conformance check / vectors`` end to end."""

from __future__ import annotations

import json
import pickle

import pandas as pd

import exporters
from tablescore.cli import main


def test_check_command_passes_then_fails_on_drift(tmp_path, iris_logreg, capsys):
    est, X = iris_logreg
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(est))
    exporters.export(est, tmp_path / "b", sample=X)
    pd.DataFrame(X, columns=[f"x{j}" for j in range(4)]).to_csv(tmp_path / "d.csv", index=False)
    rc = main(["conformance", "check", "--model", str(tmp_path / "m.pkl"), "--bundle",
               str(tmp_path / "b"), "--data", str(tmp_path / "d.csv"), "--report",
               str(tmp_path / "r.json")])
    assert rc == 0
    assert "PASS" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())[0]["passed"] is True
    # the pickled model moves on (retrained) but the bundle does not: drift is reported
    est2 = pickle.loads(pickle.dumps(est))
    est2[-1].coef_ = est2[-1].coef_ * 1.5
    (tmp_path / "m2.pkl").write_bytes(pickle.dumps(est2))
    rc = main(["conformance", "check", "--model", str(tmp_path / "m2.pkl"), "--bundle",
               str(tmp_path / "b")])
    assert rc == 1
    assert "FAIL" in capsys.readouterr().out


def test_vectors_command(tmp_path, iris_logreg, capsys):
    est, X = iris_logreg
    exporters.export(est, tmp_path / "b", sample=X)
    assert main(["conformance", "vectors", str(tmp_path / "b"), "--out",
                 str(tmp_path / "v")]) == 0
    doc = json.loads((tmp_path / "v" / "vectors.json").read_text())
    assert doc["fingerprint"] and len(doc["rows"]) == 64


def test_vectors_command_failures_say_why_and_leave_the_previous_vectors(
        tmp_path, iris_logreg, capsys, monkeypatch):
    est, X = iris_logreg
    exporters.export(est, tmp_path / "b", sample=X)
    exporters.export(est, tmp_path / "bare")  # no verification rows
    out = tmp_path / "v"
    assert main(["conformance", "vectors", str(tmp_path / "b"), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # a bundle without rows to make vectors of: the bundle's lack (exit 3), in one line
    assert main(["conformance", "vectors", str(tmp_path / "bare"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "has no verification rows" in err and "--sample" in err and len(err.splitlines()) == 1
    # --out naming a file: an output error (exit 4), not a traceback or exit 2
    (tmp_path / "f").write_text("x")
    assert main(["conformance", "vectors", str(tmp_path / "b"), "--out",
                 str(tmp_path / "f")]) == 4
    assert "cannot" in capsys.readouterr().err
    # a failure while writing (a full disk in the last file) leaves the previous three files
    import pandas as pd

    real = pd.DataFrame.to_csv

    def full(self, path, *a, **k):
        if ".expected.csv.tablescore-tmp-" in str(path):
            raise OSError(28, "No space left on device")
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    from sklearn.tree import DecisionTreeClassifier

    exporters.export(DecisionTreeClassifier(max_depth=2).fit(X, est.predict(X)),
                     tmp_path / "b2", sample=X)
    assert main(["conformance", "vectors", str(tmp_path / "b2"), "--out", str(out)]) == 4
    assert "no space left on the device (nothing was written)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporaries either


def test_external_corpus_summary_counts_known_failures_separately():
    from conformance.pmml_corpus import run_corpus

    results, md = run_corpus(["jpmml-evaluator/knime", "AssociationRulesShopping"])
    statuses = {r["status"] for r in results}
    assert results and statuses <= {"pass", "known"}
    assert any(r["status"] == "pass" and "knime" in r["case"] for r in results)
    assert any(r["status"] == "known" and "AssociationModel" in r["detail"] for r in results)
    assert "| **all** |" in md


def test_check_data_of_other_columns_is_read_or_refused_in_one_line(tmp_path, capsys):
    """A data file holding the target too, or its columns in another order, is checked on
    the fitted columns; one lacking a column, or without rows, is exit 2 (was 70)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    est = LogisticRegression().fit(df, (df.a + df.b > 0).astype(int))
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(est))
    exporters.export(est, tmp_path / "b", sample=df)
    args = ["conformance", "check", "--model", str(tmp_path / "m.pkl"), "--bundle",
            str(tmp_path / "b"), "--data", str(tmp_path / "d.csv")]
    df.assign(target=1)[["c", "target", "a", "b"]].to_csv(tmp_path / "d.csv", index=False)
    assert main(args) == 0 and "PASS" in capsys.readouterr().out
    df.drop(columns="b").to_csv(tmp_path / "d.csv", index=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lacks the model's input 'b'" in err and "Traceback" not in err
    df.head(0).to_csv(tmp_path / "d.csv", index=False)
    assert main(args) == 2 and "has no rows" in capsys.readouterr().err
