"""The access log (``--access-log``): one record per request, with the version that answered
and the status; off by default, errors only, or sampled (#18)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc

from scorer.server import serve
from scorer.server.logs import ACCESS_LOGGER, AccessLog, JsonFormatter, parse_access_mode
from tests.server.conftest import Exported, infer_matrix, publish

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repo(bundles: dict[str, Exported], tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("access")
    publish(bundles["iris"].path, root, "churn", 1)
    publish(bundles["iris_v2"].path, root, "churn", 2)
    return root


def traffic(address: str, X: np.ndarray) -> None:
    """Three requests: OK (3 rows, version 2 answers), INVALID_ARGUMENT, NOT_FOUND."""
    client = tc.InferenceServerClient(address)
    try:
        infer_matrix(client, "churn", X[:3])
        with pytest.raises(tc.InferenceServerException):
            infer_matrix(client, "churn", X[:2, :3])  # 3 features, 4 expected
        with pytest.raises(tc.InferenceServerException):
            infer_matrix(client, "nope", X[:1])
    finally:
        client.close()


def access_records(caplog: pytest.LogCaptureFixture) -> list[dict]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == ACCESS_LOGGER]


@pytest.mark.parametrize("mode", ["all", "errors", "off"])
def test_access_log_modes(repo, bundles, caplog, mode):
    X = bundles["iris"].X
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER), \
            serve(repo, port=0, poll_interval=0, threads=2, ready_timeout=60,
                  access_log=mode) as server:
        traffic(server.address, X)
    lines = [r for r in access_records(caplog) if r["method"] == "ModelInfer"]
    codes = [r["code"] for r in lines]
    if mode == "off":
        assert lines == []
        return
    want = ["OK", "INVALID_ARGUMENT", "NOT_FOUND"] if mode == "all" else \
        ["INVALID_ARGUMENT", "NOT_FOUND"]
    assert codes == want
    by_code = {r["code"]: r for r in lines}
    if mode == "all":
        ok = by_code["OK"]
        assert (ok["model"], ok["version"], ok["rows"]) == ("churn", "2", 3)
        assert ok["latency_us"] > 0 and ok["peer"].startswith("ipv4:127.0.0.1")
        assert ok["event"] == "access" and ok["level"] == "info" and "ts" in ok
    bad = by_code["INVALID_ARGUMENT"]
    assert (bad["model"], bad["version"], bad["rows"]) == ("churn", "2", 0)
    missing = by_code["NOT_FOUND"]
    assert (missing["model"], missing["version"]) == ("nope", "")


def test_sampling_keeps_every_error_and_a_fraction_of_the_rest():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tests.access.sample")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    access = AccessLog("sample:0.25", logger=logger)
    draws = iter([0.1, 0.3, 0.9, 0.2] * 250)
    access._random = lambda: next(draws)
    for _ in range(1000):
        access.log("ModelInfer", "OK", 0.0)
    access.log("ModelInfer", "NOT_FOUND", 0.0)
    codes = [r.code for r in records]
    assert codes.count("OK") == 500 and codes.count("NOT_FOUND") == 1


@pytest.mark.parametrize("spec", ["sample:0", "sample:1.5", "sample:x", "some"])
def test_bad_access_log_value_is_refused(spec):
    with pytest.raises(ValueError, match="--access-log"):
        parse_access_mode(spec)


def test_serve_refuses_a_bad_access_log_value(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tablescore", "serve", "--repository",
                           str(tmp_path), "--port", "0", "--access-log", "sample:2"],
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "--access-log 'sample:2'" in proc.stderr and "Traceback" not in proc.stderr
