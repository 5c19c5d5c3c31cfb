"""``tablescore experiment report`` end to end: exposure Parquet files as the server writes them
and an outcomes table in, JSON and a self-contained HTML page out; the report's numbers equal
scipy / statsmodels on the units it should have analysed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import proportions_ztest

from scorer.experiments.report import ExperimentDataError, render_html, report
from tablescore.cli import main

TOL = 1e-9
N = 3000
DAYS = 5
EFFECT = 0.5


def synthetic(seed: int = 0, *, candidate_share: float = 0.5) -> dict[str, np.ndarray]:
    """Units with a first-exposure time, arm, holdout flag, metric ``y`` (candidate +EFFECT),
    a pre-period covariate ``x`` correlated with it and a 0/1 ``converted``."""
    rng = np.random.default_rng(seed)
    hold = rng.random(N) < 0.1
    arm = np.where(hold | (rng.random(N) >= candidate_share), "control", "candidate")
    x = rng.normal(20.0, 4.0, N)
    y = 0.9 * x + rng.normal(0.0, 3.0, N) + np.where(arm == "candidate", EFFECT, 0.0)
    conv = (rng.random(N) < np.where(arm == "candidate", 0.14, 0.10)).astype(np.int64)
    t0 = np.datetime64("2026-05-01T00:00:00", "us")
    time = t0 + rng.integers(0, DAYS * 86_400_000_000, N).astype("timedelta64[us]")
    return {"unit": np.array([f"user-{i}" for i in range(N)]), "arm": arm, "holdout": hold,
            "time": time, "y": y, "x": x, "converted": conv}


def write_log(root: Path, d: dict[str, np.ndarray], experiment: str = "exp1",
              extra: pd.DataFrame | None = None, files: int = 3) -> Path:
    """The exposure log as ExposureLog writes it: DIR/<experiment>/exposures-*.parquet."""
    df = pd.DataFrame({
        "time": pd.to_datetime(d["time"]).tz_localize("UTC"), "experiment": experiment,
        "unit": d["unit"], "arm": d["arm"], "holdout": d["holdout"], "model": "m",
        "version": np.where(d["arm"] == "candidate", "2", "1"), "rows": 1,
        "out.score": np.linspace(0, 1, len(d["unit"]))})
    if extra is not None:
        df = pd.concat([df, extra], ignore_index=True)
    out = root / experiment
    out.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        part = df.iloc[i::files]
        if i == 1:  # files need not agree on the out.* columns' types
            part = part.assign(**{"out.score": part["out.score"].astype(str)})
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       out / f"exposures-{i}.parquet")
    (out / ".exposures-9.parquet.abc.tmp").write_bytes(b"half a file")  # being written
    return root


def exposure_rows(d: dict[str, np.ndarray], which: np.ndarray, **over: object) -> pd.DataFrame:
    df = pd.DataFrame({"time": pd.to_datetime(d["time"][which]).tz_localize("UTC"),
                       "experiment": "exp1", "unit": d["unit"][which], "arm": d["arm"][which],
                       "holdout": d["holdout"][which], "model": "m", "version": "1",
                       "rows": 1, "out.score": 0.5})
    return df.assign(**over)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One CLI run on a log with shadow rows, a unit switching arms later, another
    experiment's rows, and outcomes missing for some units and present for strangers."""
    tmp = tmp_path_factory.mktemp("report")
    d = synthetic()
    late = d["time"] + np.timedelta64(1, "h")
    shadow = exposure_rows(d, np.arange(0, 40), arm="shadow", version="3")
    switch = exposure_rows(d, np.array([1, 2]), arm="other")  # seen again, in another arm
    switch["time"] = pd.to_datetime(late[[1, 2]]).tz_localize("UTC")
    other = exposure_rows(d, np.arange(0, 10), experiment="exp2", arm="zzz")
    log = write_log(tmp / "log", d, extra=pd.concat([shadow, switch, other]))
    keep = np.ones(N, bool)
    keep[-25:] = False  # exposed, no outcome
    outcomes = pd.DataFrame({"unit": np.concatenate([d["unit"][keep], ["stranger-1"]]),
                             "revenue": np.concatenate([d["y"][keep], [1.0]]),
                             "pre_revenue": np.concatenate([d["x"][keep], [1.0]])})
    outcomes.to_csv(tmp / "outcomes.csv", index=False)
    js, html = tmp / "r" / "report.json", tmp / "r" / "report.html"
    code = main(["experiment", "report", "exp1", "--exposures", str(log), "--outcomes",
                 str(tmp / "outcomes.csv"), "--metric", "revenue", "--json", str(js),
                 "--out", str(html), "--weights", "control=0.5,candidate=0.5"])
    return {"code": code, "json": json.loads(js.read_text()), "html": html.read_text(),
            "d": d, "keep": keep}


def test_cli_writes_json_and_html_with_exit_0(run: dict) -> None:
    assert run["code"] == 0
    r = run["json"]
    assert {"schema", "experiment", "metric", "covariate", "control", "alpha", "test",
            "missing_outcome", "multi_arm", "sequential", "exposures", "units", "srm", "arms",
            "comparisons", "holdout", "warnings"} <= set(r)
    assert r["schema"] == "tablescore.experiment-report/1"
    assert (r["experiment"], r["metric"], r["test"], r["control"]) == (
        "exp1", "revenue", "welch", "control")
    c = r["comparisons"]["candidate"]
    for key in ("units", "control_units", "mean", "control_mean", "difference",
                "difference_ci", "relative_lift", "relative_lift_ci", "p_value",
                "statistic", "df", "significant", "sequential", "cuped", "daily"):
        assert key in c, key
    assert set(r["comparisons"]) == {"candidate"}  # 'other' is only a switcher's second arm
    assert len(c["daily"]) == DAYS and c["daily"][-1]["date"] == "2026-05-05"
    html = run["html"]
    images = [part.split("'", 1)[0] for part in html.split("data:image/png;base64,")[1:]]
    assert len(images) == 3  # candidate's lift, the holdout's lift, the distributions
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert "<script" not in html and "http" not in html  # nothing fetched from elsewhere


def test_report_numbers_equal_scipy_on_the_right_units(run: dict) -> None:
    r, d, keep = run["json"], run["d"], run["keep"]
    base = keep & ~d["holdout"]
    t, c = d["y"][base & (d["arm"] == "candidate")], d["y"][base & (d["arm"] == "control")]
    ref = st.ttest_ind(t, c, equal_var=False)
    ci = ref.confidence_interval(0.95)
    got = r["comparisons"]["candidate"]
    assert (got["units"], got["control_units"]) == (len(t), len(c))
    assert got["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
    assert got["statistic"] == pytest.approx(ref.statistic, abs=TOL)
    assert got["difference_ci"] == pytest.approx([ci.low, ci.high], abs=TOL)
    assert got["relative_lift"] == pytest.approx(t.mean() / c.mean() - 1, abs=TOL)
    assert got["significant"] and got["difference_ci"][0] < EFFECT < got["difference_ci"][1]
    # the last daily look is every unit: the same numbers
    last = got["daily"][-1]
    assert last["difference"] == pytest.approx(got["difference"], abs=TOL)
    assert last["ci"] == pytest.approx(got["difference_ci"], abs=1e-8)
    assert got["sequential"]["p_value"] == last["sequential_p_value"]
    assert got["sequential"]["p_value"] >= got["p_value"]  # the price of peeking safely
    lo, hi = got["sequential"]["ci"]
    assert lo <= got["difference_ci"][0] and got["difference_ci"][1] <= hi
    # the holdout (permanent control) against every other unit
    h = r["holdout"]
    exposed, held = d["y"][keep & ~d["holdout"]], d["y"][keep & d["holdout"]]
    href = st.ttest_ind(exposed, held, equal_var=False)
    assert (h["arm"], h["control"]) == ("exposed", "holdout")
    assert (h["units"], h["control_units"]) == (len(exposed), len(held))
    assert h["p_value"] == pytest.approx(href.pvalue, abs=TOL)


def test_srm_counts_and_exposure_bookkeeping(run: dict) -> None:
    r, d = run["json"], run["d"]
    arms = d["arm"][~d["holdout"]]
    obs = [int((arms == "candidate").sum()), int((arms == "control").sum())]
    srm = r["srm"]
    assert srm["observed"] == {"candidate": obs[0], "control": obs[1]}
    ref = st.chisquare(obs, np.sum(obs) * np.array([0.5, 0.5]))
    assert srm["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
    assert srm["chi2"] == pytest.approx(ref.statistic, abs=TOL)
    assert srm["flag"] is False and srm["weights_source"] == "given"
    assert r["exposures"]["rows"] == N + 40 + 2  # the other experiment's rows are not read
    assert r["exposures"]["shadow_rows"] == 40
    assert r["exposures"]["units"] == N
    u = r["units"]
    assert (u["multi_arm"], u["without_outcome"], u["outcomes_without_exposure"]) == (2, 25, 1)
    assert u["holdout"] == int((d["holdout"] & run["keep"]).sum())
    assert any("more than one arm" in w for w in r["warnings"])


def test_multi_arm_exclude_and_missing_outcome_zero() -> None:
    d = synthetic(1)
    ex = exposure_rows(d, np.arange(N))
    switch = exposure_rows(d, np.array([5]), arm="candidate" if d["arm"][5] == "control"
                           else "control")
    switch["time"] += pd.Timedelta("1h")
    ex = pd.concat([ex, switch], ignore_index=True)
    outcomes = pd.DataFrame({"unit": d["unit"][10:], "converted": d["converted"][10:]})
    first = report(ex, outcomes, metric="converted")
    dropped = report(ex, outcomes, metric="converted", multi_arm="exclude")
    zero = report(ex, outcomes, metric="converted", missing_outcome="zero")
    assert first.data["units"]["multi_arm"] == dropped.data["units"]["multi_arm"] == 1
    ids = set(first.units["unit"])
    assert "user-5" not in ids  # no outcome row: excluded by default
    assert len(first.units) == N - 10
    assert len(dropped.units) == N - 10  # user-5 was already out
    assert len(zero.units) == N and zero.units.set_index("unit").loc["user-0", "y"] == 0.0
    # the units' arm is their first one
    arm5 = zero.units.set_index("unit").loc["user-5", "arm"]
    assert arm5 == d["arm"][5]
    excl = report(ex, pd.DataFrame({"unit": d["unit"], "converted": d["converted"]}),
                  multi_arm="exclude")
    assert "user-5" not in set(excl.units["unit"]) and len(excl.units) == N - 1


def test_binary_metric_uses_the_two_proportion_z_test() -> None:
    d = synthetic(2)
    ex = exposure_rows(d, np.arange(N))
    untimed = exposure_rows(d, np.array([0]), unit="no-time", time=pd.NaT)
    outcomes = pd.DataFrame({"unit": [*d["unit"], "no-time"], "converted": [*d["converted"], 1]})
    rep = report(pd.concat([ex, untimed], ignore_index=True), outcomes)
    r = rep.data  # the only numeric column is the metric
    assert r["units"]["analysed"] == N and r["units"]["outcomes_without_exposure"] == 1
    assert render_html(rep).count("data:image/png;base64,") == 3
    assert r["test"] == "proportion" and r["metric"] == "converted"
    base = ~d["holdout"]
    t = d["converted"][base & (d["arm"] == "candidate")]
    c = d["converted"][base & (d["arm"] == "control")]
    z, p = proportions_ztest([t.sum(), c.sum()], [len(t), len(c)])
    got = r["comparisons"]["candidate"]
    assert (got["statistic"], got["p_value"]) == pytest.approx((z, p), abs=TOL)
    assert got["df"] is None
    assert got["mean"] == pytest.approx(t.mean(), abs=TOL)


def test_cuped_in_the_report_reduces_variance_and_matches_the_adjusted_welch() -> None:
    d = synthetic(3)
    ex = exposure_rows(d, np.arange(N))
    outcomes = pd.DataFrame({"unit": d["unit"], "revenue": d["y"], "pre": d["x"]})
    r = report(ex, outcomes, metric="revenue", covariate="pre").data
    c = r["comparisons"]["candidate"]
    assert c["cuped"]["variance_reduction"] > 0.5  # corr(y, x) ~ 0.77: about 0.59
    # the reference: theta pooled over both arms, Welch on Y - theta (X - mean X)
    sel = ~d["holdout"]
    y, x, arm = d["y"][sel], d["x"][sel], d["arm"][sel]
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    adj = y - theta * (x - x.mean())
    ref = st.ttest_ind(adj[arm == "candidate"], adj[arm == "control"], equal_var=False)
    assert c["cuped"]["theta"] == pytest.approx(theta, abs=TOL)
    assert c["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
    assert c["difference_ci"] == pytest.approx(list(ref.confidence_interval()), abs=TOL)
    raw = st.ttest_ind(y[arm == "candidate"], y[arm == "control"], equal_var=False)
    assert c["cuped"]["unadjusted_p_value"] == pytest.approx(raw.pvalue, abs=TOL)
    assert c["daily"][-1]["difference"] == pytest.approx(c["difference"], abs=1e-8)


def test_srm_is_flagged_and_unknown_arms_refused() -> None:
    d = synthetic(4, candidate_share=0.4)  # configured 50/50, served 40/60
    ex = exposure_rows(d, np.arange(N))
    outcomes = pd.DataFrame({"unit": d["unit"], "revenue": d["y"]})
    r = report(ex, outcomes, weights={"control": 0.5, "candidate": 0.5}).data
    assert r["srm"]["flag"] is True and r["srm"]["p_value"] < 0.001
    assert any("sample-ratio mismatch" in w for w in r["warnings"])
    ok = report(ex, outcomes, weights={"control": 0.6, "candidate": 0.4}).data
    assert ok["srm"]["flag"] is False
    with pytest.raises(ExperimentDataError, match="candidate"):
        report(ex, outcomes, weights={"control": 1.0})


def test_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "log" / "exp1").mkdir(parents=True)
    pd.DataFrame({"unit": ["a"], "m": [1.0]}).to_csv(tmp_path / "o.csv", index=False)
    args = ["experiment", "report", "exp1", "--exposures", str(tmp_path / "log"),
            "--outcomes", str(tmp_path / "o.csv"), "--json", str(tmp_path / "r.json"),
            "--out", str(tmp_path / "r.html")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no exposure files (*.parquet)" in err and err.count("\n") == 1
    d = synthetic(5)
    write_log(tmp_path / "log2", d)
    pd.DataFrame({"unit": d["unit"], "m": d["y"]}).to_csv(tmp_path / "o.csv", index=False)
    args[4] = str(tmp_path / "log2")
    assert main([*args, "--unit-column", "user"]) == 2
    assert "no unit column 'user'" in capsys.readouterr().err
    assert main([*args, "--control", "baseline"]) == 2
    assert "control arm 'baseline'" in capsys.readouterr().err
    assert main([*args, "--weights", "control=x"]) == 2
    assert "--weights" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_cli_does_not_load_the_statistics_to_build_its_parser() -> None:
    code = ("import sys, tablescore.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'statsmodels', 'scorer.experiments.stats', "
            "'scorer.experiments.report') if m in sys.modules))")
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, check=True, env={"PYTHONPATH": str(root)})
    assert out.stdout.strip() == "[]"


def test_help_names_the_options(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "report", "-h"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--exposures", "--outcomes", "--metric", "--covariate", "--control",
                   "--alpha", "--weights", "--missing-outcome", "--unit-column", "--json",
                   "--out"):
        assert option in text, option


def test_undefined_statistics_print_as_na(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No conversion in either arm: the test statistic is undefined (JSON null); the summary
    says n/a instead of failing after the files are written."""
    d = synthetic(6)
    write_log(tmp_path / "log", d)
    pd.DataFrame({"unit": d["unit"], "conv": 0}).to_csv(tmp_path / "o.csv", index=False)
    code = main(["experiment", "report", "exp1", "--exposures", str(tmp_path / "log"),
                 "--outcomes", str(tmp_path / "o.csv"), "--json", str(tmp_path / "r.json"),
                 "--out", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert code == 0, out
    c = json.loads((tmp_path / "r.json").read_text())["comparisons"]["candidate"]
    assert c["p_value"] is None
    assert "candidate vs control" in out and "p = n/a" in out


def test_unit_ids_of_outcomes_are_read_as_the_log_holds_them(tmp_path: Path) -> None:
    """Ids with leading zeros, and integer ids in a column with a missing id (pandas makes
    it float), still join the exposure log's text ids."""
    from scorer.experiments.report import load_outcomes

    d = synthetic(7)
    for ids in ([f"{i:05d}" for i in range(N)], [str(1000 + i) for i in range(N)]):
        d2 = {**d, "unit": np.array(ids)}
        ex = exposure_rows(d2, np.arange(N))
        rows = pd.DataFrame({"unit": [*ids, ""], "y": [*d["y"], 1.0]})
        rows.to_csv(tmp_path / "o.csv", index=False)
        rep = report(ex, load_outcomes(tmp_path / "o.csv"), metric="y")
        assert len(rep.units) == N
        assert rep.data["units"]["outcomes_without_exposure"] == 1  # the row without an id


def test_outcomes_of_excluded_units_are_not_counted_as_unexposed() -> None:
    d = synthetic(8)
    ex = exposure_rows(d, np.arange(N))
    switch = exposure_rows(d, np.arange(5), arm="other")  # 5 units seen in a second arm
    switch["time"] += pd.Timedelta("1h")
    ex = pd.concat([ex, switch], ignore_index=True)
    outcomes = pd.DataFrame({"unit": [*d["unit"], "stranger"], "y": [*d["y"], 0.0]})
    for how in ("first", "exclude"):
        rep = report(ex, outcomes, metric="y", multi_arm=how)
        assert rep.data["units"]["outcomes_without_exposure"] == 1, how
