"""The exposure log in PostgreSQL: the table and its values, the report reading it as it reads
Parquet, and the database going away (records dropped and counted, never blocking, recovery).
Each test has a fresh database (tests/services.py)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from scorer.experiments.config import parse_experiment
from scorer.experiments.exposures import ExposureLog, open_sink
from scorer.experiments.postgres import TABLE, PostgresSink, read_exposures
from scorer.experiments.report import ExperimentDataError, load_exposures, load_outcomes, report
from scorer.experiments.router import ExperimentRouter
from scorer.pipeline import Request
from tablescore.cli import main
from tests.services import PG_HOST, TcpProxy, fresh_database

from .test_report import synthetic, write_log

EXP = parse_experiment({"name": "exp-pg", "unit": "customer_id", "salt": "s", "shadow": None,
                        "arms": [{"name": "control", "version": "1", "weight": 0.5},
                                 {"name": "candidate", "version": "2", "weight": 0.5}]})


class _Router:
    """What ExposureLog reads of a router: the experiments and the unit of a request."""

    experiments: ClassVar[dict] = {"m": EXP}
    unit_of = ExperimentRouter.unit_of


def _request(unit: object, arm: str = "control", holdout: bool = False) -> Request:
    req = Request(None, 1, ["p"], parameters={"customer_id": unit})
    req.response = EXP.holdout_response if holdout else EXP.responses[
        [a.name for a in EXP.arms].index(arm)]
    return req


def _target(version: str = "1") -> SimpleNamespace:
    return SimpleNamespace(name="m", version=version)


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_sink_writes_every_field_faithfully() -> None:
    values = [0.1, 1 / 3, -2.5e-300, 1.7976931348623157e308, math.nan, math.inf, -math.inf]
    with fresh_database() as url:
        log = ExposureLog(url, _Router(), flush_s=0.05)
        assert isinstance(log.sink, PostgresSink)
        t0 = time.time()
        for i, v in enumerate(values):
            arrays = {"probability(1)": np.array([v]), "predicted": np.array(["yes"], object),
                      "count": np.array([i], np.int64)}
            log.record(_target(str(1 + i % 2)), _request(f"u-{i}", "candidate" if i % 2
                                                         else "control", holdout=i == 3),
                       arrays)
        log.close()
        assert (log.written, log.dropped) == (len(values), 0)
        rows = _query(url, f"SELECT time, experiment, unit, arm, holdout, model, version, rows, "
                      f"outputs, (outputs->>'probability(1)')::float8 FROM {TABLE} "
                      "ORDER BY unit")
    assert len(rows) == len(values)
    for i, (v, r) in enumerate(zip(values, rows, strict=True)):
        t, exp, unit, arm, holdout, model, version, n, outputs, as_float = r
        assert abs(t.timestamp() - t0) < 60 and t.tzinfo is not None
        assert (exp, unit, model, version, n) == ("exp-pg", f"u-{i}", "m", str(1 + i % 2), 1)
        # (a unit of the permanent control group gets the control arm)
        assert (arm, holdout) == (("candidate" if i % 2 and i != 3 else "control"), i == 3)
        assert outputs["predicted"] == "yes" and outputs["count"] == i
        # the same double back, bit for bit; non-finite ones as the strings float8 reads
        if math.isnan(v):
            assert outputs["probability(1)"] == "NaN" and math.isnan(as_float)
        else:
            assert as_float == v
            # (jsonb prints 1.8e308 as digits without a point: read back as float)
            got = outputs["probability(1)"]
            assert (float(got) == v if math.isfinite(v) else
                    got == ("Infinity" if v > 0 else "-Infinity"))


def test_sink_loses_only_a_record_postgres_cannot_hold() -> None:
    with fresh_database() as url:
        sink = open_sink(url)
        row = (time.time(), "exp-pg", "ok", "control", False, "m", "1", 1, {"p": 0.5})
        bad = (time.time(), "exp-pg", "nul\x00unit", "control", False, "m", "1", 1, {"p": 0.5})
        assert sink.write([row, bad, row]) == 1
        sink.close()
        assert _query(url, f"SELECT count(*) FROM {TABLE}") == [(2,)]


def test_report_reads_the_database_as_it_reads_parquet(tmp_path: Path) -> None:
    d = synthetic()
    log_dir = write_log(tmp_path / "log", d, files=1)
    outcomes = tmp_path / "outcomes.csv"
    pd.DataFrame({"unit": d["unit"], "revenue": d["y"], "pre": d["x"]}).to_csv(outcomes,
                                                                              index=False)
    times = pd.to_datetime(d["time"]).tz_localize("UTC")
    rows = [(t.timestamp(), "exp1", u, a, bool(h), "m", "1", 1, {"score": 0.5})
            for t, u, a, h in zip(times, d["unit"], d["arm"], d["holdout"], strict=True)]
    with fresh_database() as url:
        with pytest.raises(ExperimentDataError, match="no exposure table"):
            read_exposures(url, "exp1")
        sink = PostgresSink(url)
        sink.write(rows)
        sink.write([(rows[0][0], "other", "x", "control", False, "m", "1", 1, {})])
        sink.close()
        a = load_exposures(log_dir, "exp1")
        b = load_exposures(url, "exp1")
        pd.testing.assert_frame_equal(a.sort_values("unit").reset_index(drop=True),
                                      b.sort_values("unit").reset_index(drop=True))
        with pytest.raises(ExperimentDataError, match="no exposures of experiment 'nope'"):
            load_exposures(url, "nope")
        # the same analysis from either source; the command line takes the URL
        out = load_outcomes(outcomes)
        reports = [json.loads(json.dumps(report(
            load_exposures(src, "exp1"), out, metric="revenue", covariate="pre",
            experiment="exp1").data)) for src in (log_dir, url)]
        js, html = tmp_path / "r.json", tmp_path / "r.html"
        assert main(["experiment", "report", "exp1", "--exposures", url, "--outcomes",
                     str(outcomes), "--metric", "revenue", "--covariate", "pre",
                     "--json", str(js), "--out", str(html)]) == 0
        reports.append(json.loads(js.read_text()))
    assert reports[0] == reports[1] == reports[2]
    assert reports[2]["exposures"]["units"] == len(d["unit"])


def test_report_of_an_unreachable_database_is_a_usage_error(tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", 9)  # a port nothing listens on, never started
    with pytest.raises(ExperimentDataError, match="cannot be read"):
        load_exposures(f"postgresql://postgres@127.0.0.1:{proxy.port}/x", "exp1")


def test_database_lost_and_back() -> None:
    """While the database is away, record() stays immediate, the buffer stays bounded (what
    overflows is dropped and counted), the batch in hand is kept; once it is back every
    record is either in the table or counted as dropped."""
    host, port = PG_HOST.rsplit("@", 1)[1].split(":")
    with fresh_database() as url:
        proxy = TcpProxy(host, int(port)).start()
        via = f"postgresql://postgres@127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"
        log = ExposureLog(via, _Router(), buffer=50, max_rows=20, flush_s=0.05,
                          backoff_max_s=0.2)
        arrays = {"p": np.array([0.5])}
        try:
            for i in range(30):
                log.record(_target(), _request(i), arrays)
            _wait(lambda: log.written == 30, "the first records were not written")
            proxy.cut()
            slowest = 0.0
            for i in range(30, 330):
                t0 = time.perf_counter()
                log.record(_target(), _request(i), arrays)
                slowest = max(slowest, time.perf_counter() - t0)
                if i % 50 == 0:
                    time.sleep(0.1)  # let the writer find the database gone meanwhile
            _wait(lambda: not log.up, "the lost database was not noticed")
            assert slowest < 0.5  # a blocked request would wait for a connect timeout
            # at most the buffer and the batch in hand are kept; the rest was dropped
            assert log.dropped >= 300 - 50 - 20
            assert len(log._buffer) <= 50
            proxy.start()
            _wait(lambda: log.up and log.written + log.dropped == 330,
                  "the writer did not recover")
            for i in range(330, 340):
                log.record(_target(), _request(i), arrays)
        finally:
            log.close()
            proxy.cut()
        assert log.written + log.dropped == 340 and log.written >= 30 + 50 + 10
        (n,), = _query(url, f"SELECT count(*) FROM {TABLE}")
        assert n == log.written


def test_close_with_the_database_away_is_bounded() -> None:
    host, port = PG_HOST.rsplit("@", 1)[1].split(":")
    with fresh_database() as url:
        proxy = TcpProxy(host, int(port)).start()
        via = f"postgresql://postgres@127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"
        log = ExposureLog(via, _Router(), flush_s=0.05, backoff_max_s=0.2, close_timeout=5)
        proxy.cut()
        for i in range(100):
            log.record(_target(), _request(i), {"p": np.array([0.5])})
        t0 = time.monotonic()
        log.close()
        assert time.monotonic() - t0 < 8
        assert (log.written, log.dropped) == (0, 100)


def _wait(cond, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
