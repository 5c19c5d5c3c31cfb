"""``tablescore drift``: PSI per feature, JSON and HTML reports, exit status."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tablescore.cli import main

from .conftest import reference_data


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])


def test_shifted_feature_is_reported_and_exits_1(linear_bundle: Path, tmp_path: Path,
                                                 capsys) -> None:
    X = reference_data(11)
    X[:, 2] += 1.0  # one standard deviation
    _frame(X).to_parquet(tmp_path / "cur.parquet")
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.parquet"),
                 "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html"),
                 "--batch-rows", "1000"])  # several record batches
    assert code == 1
    report = json.loads((tmp_path / "r.json").read_text())
    psi = report["psi"]
    assert psi["x2"] >= 0.2 and max(psi["x0"], psi["x1"], psi["x3"]) < 0.1, psi
    assert report["features"][0]["name"] in ("x2", "value")  # sorted by drift
    assert [f["psi"] for f in report["features"]] == sorted(
        [f["psi"] for f in report["features"]], reverse=True)
    assert report["rows"] == {"reference": 4000, "current": 4000} and report["drifted"]
    x2 = next(f for f in report["features"] if f["name"] == "x2")
    assert sum(x2["current"]) == 4000 and len(x2["bins"]) == len(x2["reference"]) == 13
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == len(report["features"])
    png = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr()
    assert out.out.splitlines()[1].split()[0] in ("x2", "value") and "DRIFT" in out.err


def test_undrifted_csv_exits_0(linear_bundle: Path, tmp_path: Path) -> None:
    _frame(reference_data(12)).to_csv(tmp_path / "cur.csv", index=False)
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.csv"),
                 "--json", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and not report["drifted"] and report["max_psi"] < 0.1


def test_reference_file_instead_of_profile(linear_bundle: Path, tmp_path: Path) -> None:
    ref = reference_data(13)
    cur = reference_data(14)
    cur[:, 0] = cur[:, 0] * 1.0 + 1.0
    _frame(ref).to_parquet(tmp_path / "ref.parquet")
    _frame(cur).to_parquet(tmp_path / "cur.parquet")
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.parquet"),
                 "--reference", str(tmp_path / "ref.parquet"), "--json",
                 str(tmp_path / "r.json")])
    psi = json.loads((tmp_path / "r.json").read_text())["psi"]
    assert code == 1 and psi["x0"] >= 0.2 and psi["x1"] < 0.1


def test_bundle_without_profile_needs_reference(linear_bundle: Path, tmp_path: Path,
                                                capsys) -> None:
    from scorer.bundle import read_bundle, write_bundle

    b = read_bundle(linear_bundle)
    b.drift_reference = None
    write_bundle(b, tmp_path / "plain")
    _frame(reference_data(1, 10)).to_csv(tmp_path / "cur.csv", index=False)
    assert main(["drift", str(tmp_path / "plain"), "--data", str(tmp_path / "cur.csv")]) == 2
    assert "--reference" in capsys.readouterr().err


@pytest.mark.parametrize("args, code", [(["--data", "nope.csv"], 2),
                                        (["--data", "x.csv", "--thresholds", "a"], 2)])
def test_usage_errors(linear_bundle: Path, tmp_path: Path, args: list[str], code: int,
                      monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _frame(reference_data(1, 10)).to_csv(tmp_path / "x.csv", index=False)
    assert main(["drift", str(linear_bundle), *args]) == code


def _categorical_report(tmp_path: Path, column: str, categories: list[str],
                        seed: int) -> tuple[int, dict]:
    """Export a one-hot logistic regression on string ``column`` (3,000 rows drawn from
    ``categories``), write its export sample as CSV and run ``tablescore drift`` on it:
    (exit status, the JSON report). The same data: no drift is the right answer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import exporters

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({column: rng.choice(categories, 3000).astype(object)})
    y = (df[column] == categories[1]).to_numpy().astype(int) ^ (rng.random(3000) < 0.2)
    est = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(df, y)
    exporters.export(est, tmp_path / "m", sample=df, name="m")
    df.to_csv(tmp_path / "same.csv", index=False)
    code = main(["drift", str(tmp_path / "m"), "--data", str(tmp_path / "same.csv"),
                 "--json", str(tmp_path / "r.json")])
    return code, json.loads((tmp_path / "r.json").read_text())


def test_numeric_looking_category_codes_in_a_csv_are_read_as_text(tmp_path: Path) -> None:
    """Zip codes '02134' in a CSV: text, as the model and its profile have them (Arrow's
    guess, the number 2134, showed PSI 11 against identical data)."""
    code, report = _categorical_report(tmp_path, "zip", ["00501", "02134", "10001"], 3)
    assert code == 0 and report["max_psi"] < 1e-9, report


def test_a_file_with_none_of_the_models_inputs_is_refused(linear_bundle: Path, tmp_path: Path,
                                                         capsys) -> None:
    pd.DataFrame({"foo": [1.0, 2.0], "bar": [3.0, 4.0]}).to_csv(tmp_path / "w.csv",
                                                                 index=False)
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "w.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "has none of the model's inputs (x0, x1, x2, x3)" in err


def test_csv_batches_are_batch_rows_long(tmp_path: Path) -> None:
    from scorer.monitoring.report import iter_batches

    _frame(reference_data(5, n=5000)).to_csv(tmp_path / "c.csv", index=False)
    sizes = [len(b["x0"]) for b in iter_batches(tmp_path / "c.csv", 1000,
                                                 types={"x0": "double"})]
    assert sizes == [1000] * 5


def test_an_empty_csv_cell_is_the_empty_category_where_the_model_has_one(
        tmp_path: Path) -> None:
    """A vocabulary holding '': an empty CSV cell is that category, as for the model (it was
    read as missing: PSI 2.9 on the export sample itself); elsewhere it stays missing."""
    code, report = _categorical_report(tmp_path, "color", ["", "red", "blue"], 4)
    assert code == 0 and report["max_psi"] < 1e-9, report
    color = next(f for f in report["features"] if f["name"] == "color")
    assert color["current"][0] == 0  # nothing in the missing bin


def test_a_reference_file_is_read_as_the_data_is(linear_bundle: Path, tmp_path: Path,
                                                 capsys) -> None:
    """Rows the model refuses (a missing value) in --reference: their inputs counted, no
    outputs, as in --data (it was exit 2); a reference without rows says so."""
    ref = reference_data(15)
    ref[::50, 1] = np.nan
    _frame(ref).to_csv(tmp_path / "ref.csv", index=False)
    _frame(reference_data(16)).to_csv(tmp_path / "cur.csv", index=False)
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.csv"),
                 "--reference", str(tmp_path / "ref.csv"), "--json", str(tmp_path / "r.json")])
    assert code in (0, 1), capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows"]["reference"] == len(ref)
    x1 = next(f for f in report["features"] if f["name"] == "x1")
    assert x1["reference"][0] == len(ref[::50])  # the missing bin
    (tmp_path / "empty.csv").write_text("x0,x1,x2,x3\n")
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.csv"),
                 "--reference", str(tmp_path / "empty.csv")])
    assert code == 2 and "has no rows" in capsys.readouterr().err


def test_a_file_lacking_some_of_the_models_inputs_is_refused(linear_bundle: Path,
                                                             tmp_path: Path, capsys) -> None:
    """Without an input the outputs cannot be scored: not "no drift" (exit 0), exit 2."""
    _frame(reference_data(17)).drop(columns="x1").to_csv(tmp_path / "cur.csv", index=False)
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "lacks the model's input 'x1'" in err
