"""The batch report's pieces: streamed reading (only the columns used, read ahead by a
thread), counting over threads, and which histograms the HTML draws."""

from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scorer
from scorer.monitoring import Profile
from scorer.monitoring.profile import count_columns
from scorer.monitoring.report import (
    FileCounter,
    count_file,
    drift_report,
    iter_batches,
    read_ahead,
)
from tablescore.cli import main

from .conftest import reference_data


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_iter_batches_reads_only_the_wanted_columns(tmp_path: Path, suffix: str) -> None:
    df = _frame(reference_data(3, 2500)).assign(note=["a", None, "c", "d", "e"] * 500)
    path = tmp_path / f"d{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    got = list(iter_batches(path, 1000, columns={"x2", "note", "absent"}))
    if suffix == ".parquet":  # CSV batches follow Arrow's block size instead
        assert [len(b["x2"]) for b in got] == [1000, 1000, 500]
    assert all(set(b) == {"x2", "note"} for b in got)
    assert np.array_equal(np.concatenate([b["x2"] for b in got]), df["x2"].to_numpy())
    notes = np.concatenate([b["note"] for b in got])
    assert notes.dtype == object and notes[1] is None and notes[2] == "c"
    assert set(next(iter_batches(path, 1000))) == {"x0", "x1", "x2", "x3", "note"}


def test_read_ahead_keeps_order_and_raises_in_order() -> None:
    assert list(read_ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise ValueError("bad batch")

    got = []
    with pytest.raises(ValueError, match="bad batch"):
        for x in read_ahead(failing()):
            got.append(x)
    assert got == [1, 2]


def test_read_ahead_stops_its_thread_when_the_consumer_stops() -> None:
    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    before = threading.active_count()
    it = read_ahead(endless(), depth=2)
    assert next(it) == 0
    it.close()  # the consumer gives up (as an exception in the counting would)
    assert threading.active_count() == before
    assert len(produced) <= 4  # at most the read-ahead depth beyond what was taken


@pytest.mark.parametrize("threads", [1, 3])
def test_rows_the_model_refuses_count_their_inputs_only(linear_bundle: Path,
                                                           tmp_path: Path, capsys,
                                                           threads: int) -> None:
    model = scorer.load(linear_bundle)
    layout = Profile.from_json(model.bundle.drift_reference)
    X = reference_data(21, 5000)
    X[:5, 1] = np.nan  # this model does not accept missing values: 5 rows of batch 0
    X[5, 2] = 50.0  # above the reference range
    _frame(X).to_parquet(tmp_path / "cur.parquet")
    counter = count_file(layout, model, tmp_path / "cur.parquet", batch_rows=700,
                         threads=threads)
    cols = {f"x{j}": X[:, j] for j in range(4)}
    scored = {k: v[5:] for k, v in cols.items()}  # the batch's other rows are scored
    expected = count_columns(layout, cols, {})
    expected += count_columns(layout, {}, model.score_arrays(scored))
    assert counter.rows == 5000 and np.array_equal(counter.counts, expected)
    assert counter.unscored == 5 and "missing values" in counter.unscored_reason
    code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.parquet"),
                 "--json", str(tmp_path / "r.json"), "--batch-rows", "700"])
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["unscored_rows"] == 5
    missing = next(f for f in report["features"] if f["name"] == "x1")
    assert missing["current"][0] == 5  # the missing bin
    assert "outputs of 5 of 5000 rows not counted" in capsys.readouterr().err


def test_file_counts_with_scored_outputs_equal_whole_columns(linear_bundle: Path,
                                                             tmp_path: Path) -> None:
    model = scorer.load(linear_bundle)
    layout = Profile.from_json(model.bundle.drift_reference)
    X = reference_data(22, 3000)
    X[7, 0] = -40.0
    _frame(X).to_csv(tmp_path / "cur.csv", index=False)
    cols = {f"x{j}": X[:, j] for j in range(4)}
    expected = count_columns(layout, cols, model.score_arrays(cols))
    for threads in (1, 2, 4):
        counter = FileCounter(layout, model, threads=threads)
        try:
            for batch in iter_batches(tmp_path / "cur.csv", 512):
                counter.add(batch)
        finally:
            counter.close()
        assert counter.rows == 3000 and np.array_equal(counter.counts, expected), threads


def test_output_column_in_the_file_is_used_instead_of_scoring(linear_bundle: Path,
                                                              tmp_path: Path) -> None:
    model = scorer.load(linear_bundle)
    X = reference_data(23, 2000)
    df = _frame(X).assign(value=1e6)  # every prediction far above the reference
    df.to_parquet(tmp_path / "cur.parquet")
    r = drift_report(model, tmp_path / "cur.parquet")
    out = {d.name: d for d in r.drift}
    assert out["value"].psi > 5 and out["x0"].psi < 0.1
    off = r.layout.offsets()
    assert r.current[off[-2]:off[-1]][-1] == 2000  # all in the "above" bin


def _report(model, tmp_path: Path, shifted: list[int]):
    X = reference_data(31)
    for j in shifted:
        X[:, j] += 1.0
    _frame(X).to_parquet(tmp_path / "cur.parquet")
    return drift_report(model, tmp_path / "cur.parquet")


def test_plotted_features_are_the_drifted_and_the_top_n(linear_bundle: Path,
                                                        tmp_path: Path) -> None:
    r = _report(scorer.load(linear_bundle), tmp_path, [1, 3])
    ranked = [i for i, _ in r.ranked()]
    levels = {r.drift[i].name: r.thresholds.level(r.drift[i].psi) for i in ranked}
    assert levels["x1"] == levels["x3"] == "alert" and levels["x0"] == "ok"
    past = [i for i in ranked if r.thresholds.level(r.drift[i].psi) != "ok"]
    assert r.plotted(0) == past  # only what drifted
    assert r.plotted(1) == past  # the top one is one of them
    assert r.plotted(len(past) + 1) == ranked[:len(past) + 1]
    assert r.plotted(None) == ranked == r.plotted(100)


def test_html_draws_detailed_plots_only_where_asked(linear_bundle: Path,
                                                    tmp_path: Path) -> None:
    r = _report(scorer.load(linear_bundle), tmp_path, [2])
    page = r.to_html(plots=0)
    drawn = [r.drift[i].name for i in r.plotted(0)]
    assert "x2" in drawn and "x0" not in drawn
    assert page.count("data:image/png;base64,") == len(drawn)
    assert page.count("<svg class='h'") == len(r.drift)  # a small chart for every feature
    note = re.search(r"<p class='note'>(.*?)</p>", page).group(1)
    assert f"for {len(drawn)} of {len(r.drift)} features" in note
    for d in r.drift:
        assert (d.name in note.split(":")[-1]) == (d.name not in drawn), d.name
        assert (f"id='f{r.drift.index(d)}'" in page) == (d.name in drawn)
    png = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    everything = r.to_html(plots=None)
    assert everything.count("data:image/png;base64,") == len(r.drift)
    assert "all 5 features" in everything


def test_cli_plots_option(linear_bundle: Path, tmp_path: Path) -> None:
    X = reference_data(41)
    X[:, 0] += 1.0
    _frame(X).to_parquet(tmp_path / "cur.parquet")
    for plots, images in (("0", None), ("all", 5)):
        code = main(["drift", str(linear_bundle), "--data", str(tmp_path / "cur.parquet"),
                     "--out", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"),
                     "--plots", plots, "--threads", "2"])
        report = json.loads((tmp_path / "r.json").read_text())
        alerts = sum(f["level"] != "ok" for f in report["features"])
        page = (tmp_path / "r.html").read_text()
        assert code == 1 and page.count("data:image/png;base64,") == (images or alerts)
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m
