"""``tablescore conformance check --endpoint`` against a real server: the served name and a
pinned version, which version answered, and server errors as one line (#18)."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorer.server import serve
from scorer.server.app import ServerHandle
from tablescore.cli import main
from tests.server.conftest import Exported, publish


@pytest.fixture(scope="module")
def churn(bundles: dict[str, Exported], tmp_path_factory) -> Iterator[ServerHandle]:
    """The two iris bundles (internal name 'iris', version '1' both) served as 'churn' 1, 2
    (both versions served; 2 is the default)."""
    repo = tmp_path_factory.mktemp("churn")
    publish(bundles["iris"].path, repo, "churn", 1)
    publish(bundles["iris_v2"].path, repo, "churn", 2)
    (repo / "churn" / "config.json").write_text('{"version_policy": {"all": {}}}')
    handle = serve(repo, port=0, poll_interval=0, threads=2, ready_timeout=60)
    assert handle.ready
    yield handle
    handle.stop(0)


def check(server: str, exported: Exported, tmp_path: Path, *extra: str) -> list[str]:
    pkl = tmp_path / "m.pkl"
    pkl.write_bytes(pickle.dumps(exported.est))
    return ["conformance", "check", "--model", str(pkl), "--bundle", str(exported.path),
            "--endpoint", server, *extra]


def one_line(err: str) -> str:
    assert "Traceback" not in err
    assert err.startswith("tablescore: ") and err.count("\n") == 1, err
    return err


def test_served_name_and_pinned_version(churn, bundles, tmp_path, capsys):
    assert main(check(churn.address, bundles["iris_v2"], tmp_path, "--name", "churn",
                      "--version", "2")) == 0
    out = capsys.readouterr().out
    assert "served as 'churn' version 2 (asked: 2)" in out
    assert out.count("PASS") == 2


def test_default_pins_the_bundles_version_and_says_which_answered(churn, bundles, tmp_path,
                                                                  capsys):
    # the v2 bundle records version '1': that is what is asked for, and version 1 (another
    # model) answers; the report says so instead of a bare FAIL
    assert main(check(churn.address, bundles["iris_v2"], tmp_path, "--name", "churn")) == 1
    out = capsys.readouterr().out
    assert "served as 'churn' version 1 (asked: 1)" in out
    assert "note: the served version 1 is not this bundle" in out


def test_unknown_name_is_one_line(churn, bundles, tmp_path, capsys):
    code = main(check(churn.address, bundles["iris"], tmp_path))  # served as churn, not iris
    err = one_line(capsys.readouterr().err)
    assert code == 5
    assert "does not serve model 'iris' version 1" in err and "--name" in err


def test_unknown_version_is_one_line(churn, bundles, tmp_path, capsys):
    code = main(check(churn.address, bundles["iris"], tmp_path, "--name", "churn",
                      "--version", "7"))
    err = one_line(capsys.readouterr().err)
    assert code == 5
    assert "version 7" in err and "NOT_FOUND" not in err


def test_nothing_listening_is_one_line(bundles, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(check(f"127.0.0.1:{port}", bundles["iris"], tmp_path))
    err = one_line(capsys.readouterr().err)
    assert code == 5
    assert f"cannot reach server 127.0.0.1:{port}" in err
