"""Faults on disk stay with the model they belong to: symlink loops, hostile config.json files,
overlong names, bundles copied file by file (issues #18, #19)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from scorer.server import serve
from scorer.server.repository import ECHO_CHARS, MAX_CONFIG_BYTES, _stamp, shorten
from tests.server.conftest import infer_matrix, publish
from tests.server.test_reload import POLL, states, wait_for


def index(client: tc.InferenceServerClient) -> dict[str, list[tuple[str, str, str]]]:
    """RepositoryIndex as model -> [(version, state, reason)]."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for m in client.get_model_repository_index().models:
        out.setdefault(m.name, []).append((m.version, m.state, m.reason))
    return out


@pytest.fixture()
def repo(tmp_path: Path, bundles) -> Path:
    publish(bundles["iris"].path, tmp_path, "iris", 1)
    return tmp_path


@pytest.fixture()
def live(repo: Path) -> Iterator[tuple]:
    handle = serve(repo, port=0, poll_interval=POLL, threads=4, ready_timeout=60)
    client = tc.InferenceServerClient(handle.address)
    yield handle, client
    client.close()
    handle.stop(0)


# --- #19: one bad model directory affects that model only --------------------------------------
def test_symlink_loop_at_start_breaks_only_itself(repo: Path, bundles) -> None:
    os.symlink("loop", repo / "loop")  # a link to itself: ELOOP on every stat
    with serve(repo, port=0, poll_interval=POLL, ready_timeout=60) as handle:
        client = tc.InferenceServerClient(handle.address)
        assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version \
            == "1"
        [(_, state, reason)] = index(client)["loop"]
        assert state == "UNAVAILABLE" and "symbolic links" in reason, reason
        assert not client.is_model_ready("loop")
        client.close()


def test_symlink_loop_while_running_keeps_hot_reload(repo: Path, live, bundles) -> None:
    _, client = live
    os.symlink("loop", repo / "loop")
    os.symlink("missing", repo / "iris" / "7")  # a dangling version link
    (repo / "iris" / "8").symlink_to("8")  # a version loop
    wait_for(lambda: "loop" in index(client), what="the loop reported")
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    wait_for(lambda: client.is_model_ready("iris", "2"), what="version 2 loaded")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "2"
    assert states(client, "iris")["8"][0] == "UNAVAILABLE"


def test_unreadable_model_directory_keeps_serving(repo: Path, live, bundles) -> None:
    # a model directory that turns into a loop (say a bad symlink swap) is not "empty": what
    # it served goes on serving, with the reason reported
    _, client = live
    os.rename(repo / "iris", repo / ".iris-real")
    os.symlink("iris", repo / "iris")
    wait_for(lambda: "serving;" in states(client, "iris")["1"][1], what="error reported")
    assert states(client, "iris")["1"][0] == "READY"
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"
    os.unlink(repo / "iris")
    os.rename(repo / ".iris-real", repo / "iris")
    wait_for(lambda: states(client, "iris")["1"] == ("READY", ""), what="recovered")


def _deep_json(depth: int) -> str:
    return '{"version_policy": ' + "[" * depth + "]" * depth + "}"


def test_deep_or_huge_config_at_start_breaks_only_its_model(repo: Path, bundles) -> None:
    publish(bundles["ridge"].path, repo, "deep", 1)
    (repo / "deep" / "config.json").write_text(_deep_json(10_000))
    publish(bundles["ridge"].path, repo, "huge", 1)
    (repo / "huge" / "config.json").write_text(
        json.dumps({"version_policy": {"all": {}}, "pad": "x" * MAX_CONFIG_BYTES}))
    with serve(repo, port=0, poll_interval=POLL, ready_timeout=60) as handle:
        client = tc.InferenceServerClient(handle.address)
        assert client.is_model_ready("iris")
        ix = index(client)
        assert ix["deep"] == [("1", "UNAVAILABLE", "invalid config.json: nested too deeply; "
                                                   "nothing loads until it is fixed")]
        [(_, state, reason)] = ix["huge"]
        assert state == "UNAVAILABLE" and f"larger than {MAX_CONFIG_BYTES} bytes" in reason
        # fixing the config loads the model
        (repo / "deep" / "config.json").write_text('{"version_policy": {"all": {}}}')
        wait_for(lambda: client.is_model_ready("deep"), what="deep repaired")
        client.close()


def test_deep_config_while_running_keeps_the_policy(repo: Path, live, bundles) -> None:
    _, client = live
    (repo / "iris" / "config.json").write_text(_deep_json(10_000))
    publish(bundles["ridge"].path, repo, "ridge", 1)  # the scans go on
    wait_for(lambda: client.is_model_ready("ridge"), what="ridge loaded")
    assert client.is_model_ready("iris", "1")


# --- #19: client strings in errors ------------------------------------------------------------
def _status(call) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as err:
        call()
    return err.value.status(), err.value.message()


def test_overlong_model_name_in_load_is_not_found(live) -> None:
    _, client = live
    for name in ("m" * 256, "é" * 128):  # over 255 bytes: ENAMETOOLONG was INTERNAL
        status, message = _status(lambda n=name: client.load_model(n))
        assert status == "StatusCode.NOT_FOUND", (status, message)
        assert "unknown model" in message


def test_huge_client_strings_are_shortened_in_errors(live) -> None:
    _, client = live
    huge = "n" * 100_000
    calls = {
        "RepositoryModelLoad": lambda: client.load_model(huge),
        "RepositoryModelUnload": lambda: client.unload_model(huge),
        "ModelMetadata": lambda: client.get_model_metadata(huge),
        "ModelInfer": lambda: infer_matrix(client, huge, np.zeros((1, 4))),
        "ModelInfer version": lambda: infer_matrix(client, "iris", np.zeros((1, 4)),
                                                   version=huge),
    }
    for what, call in calls.items():
        status, message = _status(call)
        # before: the 100 KB echo overflowed the client's metadata limit (RESOURCE_EXHAUSTED)
        assert status == "StatusCode.NOT_FOUND", (what, status, message[:300])
        assert len(message) < 600 and "(100000 characters)" in message, (what, message)


def test_shorten() -> None:
    assert shorten("abc") == "abc"
    assert shorten("x" * ECHO_CHARS) == "x" * ECHO_CHARS
    assert shorten("x" * 1000, 10) == "x" * 10 + "... (1000 characters)"


# --- #18: bundles copied file by file -----------------------------------------------------------
def test_bundle_copied_manifest_first_loads_when_complete(repo: Path, live, bundles) -> None:
    # an alphabetical object-store sync: manifest.json first, tables/ seconds later
    _, client = live
    src = bundles["iris_v2"].path
    vdir = repo / "iris" / "2"
    vdir.mkdir()
    shutil.copy2(src / "manifest.json", vdir / "manifest.json")
    wait_for(lambda: states(client, "iris").get("2", ("",))[0] == "UNAVAILABLE"
             and "failed to load" in states(client, "iris")["2"][1], timeout=10,
             what="the incomplete bundle refused")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"
    shutil.copytree(src / "tables", vdir / "tables")  # manifest.json is not touched
    wait_for(lambda: client.is_model_ready("iris", "2"), timeout=10,
             what="version 2 loaded once complete")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "2"


def test_version_stamp_covers_every_file(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    before = _stamp(tmp_path)
    (tmp_path / "tables" / "0.parquet").write_bytes(b"x")
    after = _stamp(tmp_path)
    assert before != after and [f[0] for f in after] == ["manifest.json", "tables/0.parquet"]
