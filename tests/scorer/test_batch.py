"""``tablescore score`` on files of any size (#25): streamed record batches, the same outputs
as in-process scoring, row-level refusals (fail / skip), atomic output, --keep, formats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import exporters
import scorer
from scorer import batch, files
from tablescore.cli import main

ROOT = Path(__file__).resolve().parents[2]
NUM = ["age", "income", "tenure"]


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: an id, three numbers, a city."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n, dtype=np.int64),
        "age": rng.integers(18, 90, n).astype(np.float64),
        "income": rng.lognormal(10, 1, n),
        "tenure": rng.normal(5, 2, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """``{"imputed": bundle accepting missing numbers, "strict": a logistic regression that
    refuses them, "city": one that refuses unknown cities}``."""
    df = frame(400)
    y = (df["age"] + np.log(df["income"]) * 3 + df["tenure"] > 80).astype(int)
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    imputed = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(
        df[NUM], y)
    out["imputed"] = root / "imputed"
    exporters.export(imputed, out["imputed"], sample=df[NUM])
    strict = make_pipeline(StandardScaler(), LogisticRegression()).fit(df[NUM], y)
    out["strict"] = root / "strict"
    exporters.export(strict, out["strict"], sample=df[NUM])
    city = make_pipeline(ColumnTransformer([
        ("num", StandardScaler(), NUM),
        ("cat", OneHotEncoder(handle_unknown="error"), ["city"])]),
        LogisticRegression()).fit(df[[*NUM, "city"]], y)
    out["city"] = root / "city"
    exporters.export(city, out["city"], sample=df[[*NUM, "city"]])
    return out


def expected(bundle: Path, df: pd.DataFrame) -> pd.DataFrame:
    """In-process scoring of the whole frame at once."""
    return pd.DataFrame(scorer.load(bundle).score_arrays(df))


def run(argv: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return code, cap.out, cap.err


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Bit for bit: every column equal, NaN where NaN."""
    assert list(got.columns) == list(want.columns)
    for c in want.columns:
        g, w = got[c].to_numpy(), want[c].to_numpy()
        if w.dtype.kind == "f":
            assert np.array_equal(g.view(np.int64), w.view(np.int64)), c
        else:
            assert (g == w).all(), c


# --- outputs equal in-process scoring -------------------------------------------------------
def test_parquet_in_parquet_out_equals_in_process_scoring(bundles, tmp_path, capsys):
    df = frame(1000, seed=1)
    data = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), data, row_group_size=300)
    out = tmp_path / "o" / "scores.parquet"
    code, stdout, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                             "--keep", "customer_id", "--chunk-rows", "128"], capsys)
    assert code == 0, err
    assert "scored 1000 rows" in stdout
    assert err == ""  # not a terminal: no progress bar
    got = pq.read_table(out)
    assert got.schema.field("customer_id").type == pa.int64()  # Parquet types carried through
    got = got.to_pandas()
    assert (got["customer_id"] == df["customer_id"]).all()
    assert_same(got.drop(columns="customer_id"), expected(bundles["imputed"], df))
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.parquet"]


def test_csv_in_csv_out_with_strings_equals_in_process_scoring(bundles, tmp_path, capsys):
    df = frame(700, seed=2)
    data = tmp_path / "in.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    code, _, err = run(["score", bundles["city"], "--data", data, "--out", out,
                        "--chunk-rows", "100", "--keep", "city"], capsys)
    assert code == 0, err
    got = pd.read_csv(out)
    assert (got["city"] == df["city"]).all()
    assert_same(got.drop(columns="city"), expected(bundles["city"], df))


def test_directory_and_glob_of_files_are_one_input(bundles, tmp_path, capsys):
    df = frame(900, seed=3)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k in range(3):  # Spark's layout: part files and a _SUCCESS marker
        df.iloc[k * 300:(k + 1) * 300].to_parquet(parts / f"part-{k:05d}.parquet")
    (parts / "_SUCCESS").write_text("")
    (parts / ".part-00000.parquet.crc").write_text("")
    want = expected(bundles["imputed"], df)
    for data in (parts, parts / "part-*.parquet", parts / "*"):  # a glob: data files only
        out = tmp_path / "o.parquet"
        code, out_text, err = run(["score", bundles["imputed"], "--data", data, "--out", out],
                                  capsys)
        assert code == 0, err
        assert "scored 900 rows" in out_text
        assert_same(pd.read_parquet(out), want)


def test_keep_before_the_bundle_and_repeated(bundles, tmp_path, capsys):
    df = frame(50)
    data = tmp_path / "in.parquet"
    df.to_parquet(data)
    out = tmp_path / "o.parquet"
    # `--keep customer_id BUNDLE`: the bundle is not swallowed as a second column
    code, _, err = run(["score", "--keep", "customer_id", bundles["imputed"], "--data", data,
                        "--out", out], capsys)
    assert code == 0, err
    assert pd.read_parquet(out).columns[0] == "customer_id"
    code, _, err = run(["score", bundles["imputed"], "--keep", "customer_id", "--keep", "city",
                        "--data", data, "--out", out], capsys)
    assert code == 0, err
    assert list(pd.read_parquet(out).columns)[:2] == ["customer_id", "city"]
    # the list form of before still works
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                        "--keep", "customer_id", "city"], capsys)
    assert code == 0, err
    assert list(pd.read_parquet(out).columns)[:2] == ["customer_id", "city"]


def test_a_kept_column_of_another_kind_in_a_later_file_is_refused(bundles, tmp_path,
                                                                   capsys):
    df = frame(40)
    parts = tmp_path / "parts"
    parts.mkdir()
    df.iloc[:20].to_parquet(parts / "a.parquet")  # ids as integers
    text = df.iloc[20:].astype({"customer_id": str})
    text.loc[text.index[3], "customer_id"] = "00123"
    text.to_parquet(parts / "b.parquet")  # ids as text: never cast to 123
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", parts, "--out", out,
                        "--keep", "customer_id"], capsys)
    assert code == 2
    assert "--keep column 'customer_id' is " in err and "string in" in err and "b.parquet" in err
    assert not out.exists()
    # the same kind in another width (int32, int64): carried, as the first file's type
    df.iloc[20:].astype({"customer_id": np.int32}).to_parquet(parts / "b.parquet")
    code, _, err = run(["score", bundles["imputed"], "--data", parts, "--out", out,
                        "--keep", "customer_id"], capsys)
    assert code == 0, err
    assert pd.read_parquet(out)["customer_id"].tolist() == df["customer_id"].tolist()


def _a_skip_pair_then_other_rows(bundles, tmp_path, capsys) -> tuple[list, Path, tuple]:
    """A --on-error skip run (an output and its sidecar), then other rows, no refusals, in
    its data file: ``(the run's arguments, the output, the pair's bytes)``."""
    data = tmp_path / "in.csv"
    bad_csv(data, "abc")
    out = tmp_path / "o.parquet"
    args = ["score", bundles["imputed"], "--data", data, "--out", out, "--on-error", "skip"]
    assert run(args, capsys)[0] == 0
    before = (out.read_bytes(), (tmp_path / "o.parquet.rejected.csv").read_bytes())
    frame(30).to_csv(data, index=False)  # a second run with other rows, no refusals
    return args, out, before


def test_an_output_that_cannot_be_finished_leaves_the_previous_pair(bundles, tmp_path,
                                                                     capsys, monkeypatch):
    """With --on-error skip, the output and its sidecar of refused rows are a pair: when the
    output cannot be put in place, the previous run's sidecar stays too."""
    args, out, before = _a_skip_pair_then_other_rows(bundles, tmp_path, capsys)
    real = os.replace

    def failing(src, dst, *a, **k):  # the output's rename fails (a full disk, say)
        if Path(dst) == out:
            raise OSError(28, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing)
    code, _, err = run(args, capsys)
    assert code == 4, err
    assert (out.read_bytes(), (tmp_path / "o.parquet.rejected.csv").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "o.parquet",
                                                           "o.parquet.rejected.csv"]


@pytest.mark.parametrize("name", ["x.json", "x", "x.parquet.gz"])
def test_unknown_output_extension_is_refused_before_any_work(bundles, tmp_path, name,
                                                             capsys):
    code, _, err = run(["score", bundles["imputed"], "--data", tmp_path / "absent.csv",
                        "--out", tmp_path / name], capsys)
    assert code == 2
    assert "unknown format" in err and "use .csv, .parquet or .pq" in err
    assert list(tmp_path.iterdir()) == []  # (the missing input was not even looked at)


def test_zero_rows_write_the_header(bundles, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text("customer_id,age,income,tenure\n")
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out, "--keep",
                        "customer_id"], capsys)
    assert code == 0, err
    got = pd.read_parquet(out)
    assert len(got) == 0
    assert list(got.columns) == ["customer_id", *scorer.load(bundles["imputed"]).output_names]


# --- bad rows ------------------------------------------------------------------------------
BAD_CSV = [
    # (cell text of row 3's age, or a whole line, the message expected)
    ("abc", "row 3 of '{data}': field 'age' expects numbers (double), got 'abc'"),
    ("NULL", "row 3 of '{data}': field 'age' expects numbers (double), got 'NULL'"),
    ("?", "row 3 of '{data}': field 'age' expects numbers (double), got '?'"),
    (None, "row 3 of '{data}': ragged line: 5 fields where the header has 4"),
]


def bad_csv(path: Path, cell: str | None, n: int = 500) -> pd.DataFrame:
    """``n`` rows of CSV whose row 3 has ``cell`` as its age (None: a ragged line), and the
    frame of the rows that are good."""
    df = frame(n)[["customer_id", *NUM]]
    lines = [",".join(df.columns)]
    for i, r in enumerate(df.itertuples(index=False)):
        cells = [str(r.customer_id), repr(r.age), repr(r.income), repr(r.tenure)]
        if i == 2:
            if cell is None:
                cells.append("extra")
            else:
                cells[1] = cell
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return df.drop(index=2).reset_index(drop=True)


@pytest.mark.parametrize(("cell", "message"), BAD_CSV)
def test_a_bad_row_fails_with_its_row_number_and_writes_nothing(bundles, tmp_path, cell,
                                                                message, capsys):
    data = tmp_path / "in.csv"
    bad_csv(data, cell)
    out = tmp_path / "out" / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                        "--chunk-rows", "64"], capsys)
    assert code == 2
    assert err.startswith("tablescore: " + message.format(data=data)), err
    assert err.count("\n") == 1
    assert list(out.parent.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(("cell", "message"), BAD_CSV)
def test_skip_scores_the_rest_and_lists_the_refused_rows(bundles, tmp_path, cell, message,
                                                         capsys):
    data = tmp_path / "in.csv"
    good = bad_csv(data, cell)
    out = tmp_path / "o.parquet"
    code, stdout, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                             "--on-error", "skip", "--keep", "customer_id",
                             "--chunk-rows", "64"], capsys)
    assert code == 0, err
    assert "scored 499 rows" in stdout
    assert f"refused 1 row -> {out}.rejected.csv" in stdout
    got = pd.read_parquet(out)
    assert (got["customer_id"].astype(np.int64) == good["customer_id"]).all()
    assert_same(got.drop(columns="customer_id"), expected(bundles["imputed"], good[NUM]))
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected["row"].tolist() == [3]
    reason = message.format(data=data).split(": ", 1)[1]
    assert rejected["reason"][0].startswith(reason)


def test_na_values_make_markers_missing(bundles, tmp_path, capsys):
    data = tmp_path / "in.csv"
    bad_csv(data, "NULL")
    out = tmp_path / "o.csv"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                        "--na-values", "NULL", "--na-values", "?,-"], capsys)
    assert code == 0, err
    df = frame(500)[NUM].copy()
    df.loc[2, "age"] = np.nan  # what the imputer then fills in
    assert_same(pd.read_csv(out),
                expected(bundles["imputed"], df))


def test_rows_the_model_refuses_are_found_in_the_batch(bundles, tmp_path, capsys):
    """The strict model refuses a missing age (an InputError for the whole batch): the batch
    is halved until the rows stand alone; skip scores every other row."""
    df = frame(1000)
    df.loc[[5, 517, 518], "age"] = np.nan
    data = tmp_path / "in.parquet"
    df.to_parquet(data)
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["strict"], "--data", data, "--out", out,
                        "--chunk-rows", "400"], capsys)
    assert code == 2
    assert f"row 6 of '{data}': field 'age' has missing values" in err
    assert not out.exists()
    code, stdout, err = run(["score", bundles["strict"], "--data", data, "--out", out,
                             "--chunk-rows", "400", "--on-error", "skip"], capsys)
    assert code == 0, err
    assert "refused 3 rows" in stdout
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected["row"].tolist() == [6, 518, 519]
    assert rejected["reason"].str.startswith("field 'age' has missing values;").all()
    good = df.drop(index=[5, 517, 518])
    assert_same(pd.read_parquet(out), expected(bundles["strict"], good[NUM]))


def test_unknown_category_in_string_input_is_a_row_refusal(bundles, tmp_path, capsys):
    df = frame(300)
    df.loc[250, "city"] = "atlantis"
    data = tmp_path / "in.parquet"
    df.to_parquet(data)
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["city"], "--data", data, "--out", out], capsys)
    assert code == 2
    assert f"row 251 of '{data}': unknown category 'atlantis' for field 'city'" in err
    code, _, err = run(["score", bundles["city"], "--data", data, "--out", out,
                        "--on-error", "skip"], capsys)
    assert code == 0, err
    assert len(pd.read_parquet(out)) == 299


def test_ragged_rows_shift_later_row_numbers(bundles, tmp_path, capsys):
    """A skipped ragged line still counts: the bad number after it is reported at its row."""
    data = tmp_path / "in.csv"
    lines = ["age,income,tenure"] + [f"{i},1.5,2" for i in range(20)]
    lines[4] = "3,1.5"  # row 4 ragged
    lines[10] = "x,1.5,2"  # row 10 not a number
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.csv"
    code, stdout, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                             "--on-error", "skip", "--chunk-rows", "3"], capsys)
    assert code == 0, err
    assert "refused 2 rows" in stdout
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected["row"].tolist() == [4, 10]
    assert len(pd.read_csv(out)) == 18


def test_batch_api_rejects_an_unknown_on_error(bundles, tmp_path):
    model = scorer.load(bundles["imputed"])
    with pytest.raises(scorer.errors.InputError, match="fail, skip"):
        batch.score_files(model, tmp_path / "x.csv", tmp_path / "o.csv", on_error="ignore")


def test_progress_bar_shows_rows_per_second_when_asked(bundles, tmp_path, capsys):
    df = frame(2000)
    data = tmp_path / "in.parquet"
    df.to_parquet(data)
    model = scorer.load(bundles["imputed"])
    result = batch.score_files(model, data, tmp_path / "o.parquet", batch_rows=500,
                               progress=True)
    assert result.rows == 2000
    err = capsys.readouterr().err
    assert "2.00k/2.00k" in err and "rows/s" in err


# --- memory ---------------------------------------------------------------------------------
PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kib(argv: list[str]) -> int:
    """Peak RSS (KiB) of ``argv`` run as the only child of a fresh process (so no earlier
    child of the test process counts)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", PEAK, *argv], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return int(res.stdout.split()[-1])


def test_memory_does_not_grow_with_the_file(bundles, tmp_path):
    """Peak RSS scoring 2M rows < 1.5 x scoring 200k rows (Parquet in and out)."""
    rng = np.random.default_rng(0)
    sizes = {"small": 200_000, "large": 2_000_000}
    peaks = {}
    for name, n in sizes.items():
        data = tmp_path / f"{name}.parquet"
        writer = None
        for i0 in range(0, n, 500_000):  # written in parts: the test itself stays small
            m = min(500_000, n - i0)
            t = pa.table({c: rng.normal(50, 10, m) for c in NUM})
            writer = writer or pq.ParquetWriter(data, t.schema)
            writer.write_table(t, row_group_size=100_000)
        writer.close()
        out = tmp_path / f"{name}-out.parquet"
        peaks[name] = peak_rss_kib([sys.executable, "-m", "tablescore", "score",
                                    str(bundles["imputed"]), "--data", str(data), "--out",
                                    str(out)])
        assert pq.ParquetFile(out).metadata.num_rows == n
        data.unlink()
        out.unlink()
    assert peaks["large"] < 1.5 * peaks["small"], peaks


def test_sigint_style_error_mid_run_removes_the_temporaries(bundles, tmp_path, monkeypatch,
                                                            capsys):
    """An error after some batches were written (here: the third batch's conversion) leaves
    neither the output nor the rejected sidecar, not even their temporary files."""
    df = frame(1000)
    data = tmp_path / "in.parquet"
    df.to_parquet(data)
    calls = {"n": 0}
    real = batch.arrow_inputs

    def third_fails(b, fields):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(b, fields)

    monkeypatch.setattr(batch, "arrow_inputs", third_fails)
    out = tmp_path / "out" / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                        "--chunk-rows", "200", "--on-error", "skip"], capsys)
    assert code == 130, err
    assert list(out.parent.iterdir()) == []
    assert not any(files.TMP_INFIX in p.name for p in tmp_path.iterdir())


# --- untrusted and awkward inputs (a review's findings) -----------------------------------------
def test_a_sidecar_that_cannot_be_finished_leaves_the_previous_pair(bundles, tmp_path, capsys,
                                                                    monkeypatch):
    """The refused rows' file is flushed before either file is renamed: a disk full at its
    last write leaves the previous output and sidecar as they were."""
    args, out, before = _a_skip_pair_then_other_rows(bundles, tmp_path, capsys)

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def close(self):
            if not self.fh.closed:
                self.fh.close()
                raise OSError(28, "No space left on device")

    def full_open(path, mode="r", *a, **k):  # the sidecar is the file batch opens to write
        fh = open(path, mode, *a, **k)
        return Full(fh) if "w" in mode else fh

    monkeypatch.setattr(batch, "open", full_open, raising=False)
    code, _, err = run(args, capsys)
    assert code == 4, err
    assert (out.read_bytes(), (tmp_path / "o.parquet.rejected.csv").read_bytes()) == before


def test_an_earlier_sidecar_goes_when_a_run_without_skip_replaces_the_output(bundles, tmp_path,
                                                                             capsys):
    data = tmp_path / "in.csv"
    bad_csv(data, "abc")
    out = tmp_path / "o.csv"
    assert run(["score", bundles["imputed"], "--data", data, "--out", out, "--on-error",
                "skip"], capsys)[0] == 0
    assert (tmp_path / "o.csv.rejected.csv").exists()
    frame(20).to_csv(data, index=False)
    assert run(["score", bundles["imputed"], "--data", data, "--out", out], capsys)[0] == 0
    assert not (tmp_path / "o.csv.rejected.csv").exists()


def test_the_output_is_never_the_input(bundles, tmp_path, capsys):
    data = tmp_path / "same.csv"
    frame(20).to_csv(data, index=False)
    before = data.read_bytes()
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", data], capsys)
    assert code == 2 and "data file itself" in err
    assert data.read_bytes() == before
    # a directory holding a previous run's output: the output is not read as data
    parts = tmp_path / "parts"
    parts.mkdir()
    frame(20).to_csv(parts / "a.csv", index=False)
    args = ["score", bundles["imputed"], "--data", parts, "--out", parts / "scores.csv",
            "--keep", *NUM, "city", "customer_id"]
    assert run(args, capsys)[0] == 0
    first = (parts / "scores.csv").read_bytes()
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert "scored 20 rows" in stdout and (parts / "scores.csv").read_bytes() == first


def test_duplicate_columns_are_refused(bundles, tmp_path, capsys):
    data = tmp_path / "dup.csv"
    data.write_text("age,age,income,tenure\n1,2,3,4\n")
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out",
                        tmp_path / "o.csv"], capsys)
    assert code == 2 and "'age' appears more than once" in err


def test_a_byte_order_mark_is_not_part_of_the_first_column(bundles, tmp_path, capsys):
    df = frame(10)[NUM]
    data = tmp_path / "bom.csv"
    data.write_bytes(b"\xef\xbb\xbf" + df.to_csv(index=False, lineterminator="\r\n").encode())
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out], capsys)
    assert code == 0, err
    assert_same(pd.read_parquet(out), expected(bundles["imputed"], df))


def test_kept_columns_keep_marker_texts(bundles, tmp_path, capsys):
    """Missing markers apply to the model's inputs only: a kept id "NA" (Namibia) stays."""
    df = frame(4)[NUM].assign(country=["NA", "N/A", "NULL", "00123"])
    data = tmp_path / "k.csv"
    df.to_csv(data, index=False)
    for name in ("o.csv", "o.parquet"):
        out = tmp_path / name
        assert run(["score", bundles["imputed"], "--data", data, "--out", out, "--keep",
                    "country", "--na-values", "NULL"], capsys)[0] == 0
        got = (pd.read_csv(out, dtype=str, keep_default_na=False) if name.endswith("csv")
               else pd.read_parquet(out))
        assert got["country"].tolist() == ["NA", "N/A", "NULL", "00123"]
    # ... and the markers still make inputs missing (the imputer's value scores them)
    data.write_text("age,income,tenure\nNULL,1,2\n40,1,2\n")
    out = tmp_path / "m.parquet"
    assert run(["score", bundles["imputed"], "--data", data, "--out", out, "--na-values",
                "NULL"], capsys)[0] == 0
    want = expected(bundles["imputed"], pd.DataFrame({"age": [np.nan, 40.0], "income": 1.0,
                                                      "tenure": 2.0}))
    assert_same(pd.read_parquet(out), want)


def test_text_is_read_the_same_whatever_else_its_batch_holds(bundles, tmp_path, capsys):
    """Arrow's cast also reads 'infinity' and 'inf': a cell gets the model's syntax (which
    refuses them; 'INF' is xs:double) whether or not another cell of its batch needs it."""
    out = tmp_path / "o.parquet"
    for rows in (["infinity,0,0", "1,0,0"], ["infinity,0,0", "abc,0,0"]):
        data = tmp_path / "inf.csv"
        data.write_text("age,income,tenure\n" + "\n".join(rows) + "\n")
        code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out,
                            "--on-error", "skip"], capsys)
        assert code == 0, err
        rejected = pd.read_csv(f"{out}.rejected.csv")
        assert rejected["row"].iloc[0] == 1
        assert "expects numbers" in rejected["reason"].iloc[0]
        assert "'infinity'" in rejected["reason"].iloc[0]


def test_int64_beyond_2_53_is_rounded_as_in_process(bundles, tmp_path, capsys):
    big = 2**53 + 1
    data = tmp_path / "i64.parquet"
    pq.write_table(pa.table({"age": pa.array([big, 40], pa.int64()), "income": [1.0, 2.0],
                             "tenure": [3.0, 4.0]}), data)
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out], capsys)
    assert code == 0, err
    X = np.array([[big, 1.0, 3.0], [40, 2.0, 4.0]])  # NumPy's rounding of the integer
    assert_same(pd.read_parquet(out), pd.DataFrame(scorer.load(bundles["imputed"])
                                                   .score_arrays(X)))


def test_quoted_line_breaks_stay_in_their_cell_and_rows_count_records(bundles, tmp_path,
                                                                       capsys, monkeypatch):
    """A quoted line break where Arrow cuts its blocks stays in its cell; refused rows are
    numbered by record, not by line."""
    monkeypatch.setattr(batch, "_CSV_BLOCK", 512)  # many block boundaries in a small file
    df = frame(300)
    notes = [f"note {i}\nsecond line, \"quoted\"" for i in range(len(df))]
    df = df.assign(note=notes)
    data = tmp_path / "q.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "o.parquet"
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out, "--keep",
                        "note"], capsys)
    assert code == 0, err
    got = pd.read_parquet(out)
    assert got["note"].tolist() == notes
    assert_same(got.drop(columns="note"), expected(bundles["imputed"], df[NUM]))
    data.write_text('age,income,tenure,id\n1,2,3,"multi\nline"\n1,2,3,4,5\n1,zz,3,q\n'
                    '1,2,3,ok\n')
    code, _, err = run(["score", bundles["imputed"], "--data", data, "--out", out, "--keep",
                        "id", "--on-error", "skip"], capsys)
    assert code == 0, err
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected["row"].tolist() == [2, 3]
    assert "ragged line" in rejected["reason"].iloc[0]
    assert "'zz'" in rejected["reason"].iloc[1]
    assert pd.read_parquet(out)["id"].tolist() == ["multi\nline", "ok"]


def test_rows_refused_for_one_reason_are_set_aside_at_once(bundles):
    """A column arriving empty refuses every row: they are set aside in a few calls (not ~2
    per row), with the reasons and outputs that halving row by row gives."""
    model = scorer.load(bundles["strict"])
    rng = np.random.default_rng(5)
    X = rng.normal(40, 10, size=(2000, 3))
    X[::2, 1] = np.nan           # every other row: 'income' missing
    X[::3, 0] = np.inf           # every third: 'age' infinite (checked first: its reason)
    calls = []

    def score(inputs, rows):
        calls.append(rows)
        return model.score_arrays(inputs)

    arrays, good, bad = batch.score_isolating(score, X, len(X))
    assert len(calls) <= 4
    # the same as scoring each row alone
    for i in range(len(X)):
        try:
            want = model.score_arrays(X[i:i + 1])
        except scorer.errors.InputError as exc:
            assert not good[i] and bad[i] == batch._ROW0.sub("", str(exc)), i
        else:
            assert good[i]
            k = int(good[:i].sum())
            for name, v in want.items():
                assert arrays[name][k] == v[0], (i, name)
    assert not good[::2].any() and not good[::3].any() and good.sum() == len(X) - len(bad)
