"""Hot reload: new versions swap in under load without a failed request, broken versions never
serve, version policies, half-written directories, unload frees memory."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from scorer.server import serve
from tests.server.conftest import infer_matrix, publish

POLL = 0.1


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or cond}")


def states(client: tc.InferenceServerClient, model: str) -> dict[str, tuple[str, str]]:
    return {m.version: (m.state, m.reason) for m in client.get_model_repository_index().models
            if m.name == model}


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


def test_hot_reload_under_load(repo: Path, live, bundles) -> None:
    handle, client = live
    X = bundles["iris"].X[:5]
    expected = {"1": bundles["iris"].est.predict_proba(X),
                "2": bundles["iris_v2"].est.predict_proba(X),
                "5": bundles["iris"].est.predict_proba(X)}
    stop = threading.Event()
    failures: list[str] = []
    seen: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        c = tc.InferenceServerClient(handle.address)
        try:
            while not stop.is_set():
                try:
                    r = infer_matrix(c, "iris", X)
                except InferenceServerException as exc:
                    with lock:
                        failures.append(str(exc))
                    continue
                v = r.get_response().model_version
                proba = np.column_stack([r.as_numpy(f"probability({k})") for k in range(3)])
                ok = v in expected and np.allclose(proba, expected[v], rtol=1e-9, atol=1e-12)
                with lock:
                    seen.append(v)
                    if not ok:
                        failures.append(f"version {v} answered with another version's outputs")
        finally:
            c.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) > 20, what="first responses")
        publish(bundles["iris_v2"].path, repo, "iris", 2)
        wait_for(lambda: seen and seen[-1] == "2", what="version 2 serving")
        publish(bundles["bad_verify"].path, repo, "iris", 3)
        wait_for(lambda: states(client, "iris").get("3", ("",))[0] == "UNAVAILABLE",
                 what="version 3 refused")
        publish(bundles["corrupt"].path, repo, "iris", 4)
        wait_for(lambda: states(client, "iris").get("4", ("",))[0] == "UNAVAILABLE",
                 what="version 4 refused")
        n = len(seen)
        wait_for(lambda: len(seen) > n + 20, what="more responses on version 2")
        publish(bundles["iris"].path, repo, "iris", 5)
        wait_for(lambda: seen[-1] == "5", what="version 5 serving")
        n = len(seen)
        wait_for(lambda: len(seen) > n + 20, what="responses on version 5")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    assert set(seen) == {"1", "2", "5"}, "the broken versions 3 and 4 must never serve"
    # versions only move forward: a request never lands on a version already replaced
    st = states(client, "iris")
    assert st["3"][0] == "UNAVAILABLE" and "verification" in st["3"][1]
    assert st["4"][0] == "UNAVAILABLE" and "sha256" in st["4"][1]
    assert st["5"] == ("READY", "")
    assert not client.is_model_ready("iris", "3") and not client.is_model_ready("iris", "4")
    assert client.get_model_metadata("iris").versions == ["5"]


def test_broken_newest_keeps_previous_serving(repo: Path, live, bundles) -> None:
    _, client = live
    publish(bundles["corrupt"].path, repo, "iris", 2)
    wait_for(lambda: "2" in states(client, "iris") and states(client, "iris")["2"][0]
             == "UNAVAILABLE", what="version 2 refused")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"
    assert states(client, "iris")["1"][0] == "READY"
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "iris", np.zeros((1, 4)), version="2")
    assert "UNAVAILABLE" in err.value.status()
    assert "model 'iris' version 2 is not ready: unavailable (failed to load: table" in \
        err.value.message()
    # fixing the files in place (same version number) retries the load
    shutil.rmtree(repo / "iris" / "2")
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    wait_for(lambda: client.is_model_ready("iris", "2"), what="version 2 repaired")
    wait_for(lambda: not client.is_model_ready("iris", "1"), what="version 1 retired")
    with pytest.raises(InferenceServerException) as err:
        infer_matrix(client, "iris", np.zeros((1, 4)), version="1")
    assert "NOT_FOUND" in err.value.status() and "not served" in err.value.message()


def test_half_written_version_is_not_ready(repo: Path, live, bundles) -> None:
    _, client = live
    half = repo / "iris" / "9"
    half.mkdir()
    shutil.copytree(bundles["iris_v2"].path / "tables", half / "tables")
    wait_for(lambda: "9" in states(client, "iris"), what="version 9 seen")
    state, reason = states(client, "iris")["9"]
    assert state == "UNAVAILABLE" and "no manifest.json yet" in reason
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"
    shutil.copy(bundles["iris_v2"].path / "manifest.json", half / "manifest.json")
    wait_for(lambda: client.is_model_ready("iris", "9"), what="version 9 complete")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "9"


def test_version_policies(repo: Path, live, bundles) -> None:
    _, client = live
    cfg = repo / "iris" / "config.json"
    cfg.write_text(json.dumps({"version_policy": {"latest": {"num_versions": 2}}}))
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    wait_for(lambda: client.is_model_ready("iris", "2"), what="version 2")
    assert client.is_model_ready("iris", "1")  # latest 2 keeps both
    assert client.get_model_metadata("iris").versions == ["2", "1"]
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "2"
    assert infer_matrix(client, "iris", np.zeros((1, 4)),
                        version="1").get_response().model_version == "1"
    cfg.write_text(json.dumps({"version_policy": {"specific": {"versions": [1]}}}))
    wait_for(lambda: not client.is_model_ready("iris", "2"), what="specific [1]")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"
    assert client.get_model_config("iris").config.version_policy.specific.versions == [1]
    cfg.write_text("{not json")  # a broken config keeps the last good policy
    time.sleep(3 * POLL)
    assert client.is_model_ready("iris", "1") and not client.is_model_ready("iris", "2")
    cfg.write_text(json.dumps({"version_policy": {"all": {}}}))
    wait_for(lambda: client.is_model_ready("iris", "2"), what="all")
    assert client.is_model_ready("iris", "1")


def test_new_and_removed_models(repo: Path, live, bundles) -> None:
    handle, client = live
    publish(bundles["ridge"].path, repo, "ridge", 3)
    wait_for(lambda: client.is_model_ready("ridge"), what="new model")
    assert infer_matrix(client, "ridge", np.zeros((2, 10))).get_response().model_version == "3"
    shutil.rmtree(repo / "ridge")
    wait_for(lambda: "ridge" not in handle.repository.views(), what="model removed")
    with pytest.raises(InferenceServerException, match="unknown model 'ridge'"):
        infer_matrix(client, "ridge", np.zeros((1, 10)))


def test_unload_frees_memory_and_stays_unloaded(repo: Path, live) -> None:
    handle, client = live
    ref = weakref.ref(handle.repository.resolve("iris").model)
    client.unload_model("iris")
    gc.collect()
    assert ref() is None, "an unloaded version must not stay referenced"
    time.sleep(3 * POLL)  # the watcher does not bring it back
    assert not client.is_model_ready("iris")
    st = states(client, "iris")
    assert st["1"] == ("UNAVAILABLE", "unloaded")
    client.load_model("iris")
    assert infer_matrix(client, "iris", np.zeros((1, 4))).get_response().model_version == "1"


def test_explicit_load_when_not_watching(repo: Path, bundles) -> None:
    with serve(repo, port=0, poll_interval=0) as handle:
        client = tc.InferenceServerClient(handle.address)
        publish(bundles["iris_v2"].path, repo, "iris", 2)
        time.sleep(0.3)
        assert not client.is_model_ready("iris", "2")  # nobody watches
        client.load_model("iris")  # rescans and waits for the load
        assert client.is_model_ready("iris", "2")
        client.close()


def test_removing_the_serving_version_leaves_no_gap(repo: Path, live, bundles) -> None:
    _, client = live
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    wait_for(lambda: client.is_model_ready("iris", "2") and not client.is_model_ready(
        "iris", "1"), what="version 2 alone")
    shutil.rmtree(repo / "iris" / "2")
    versions = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # every request succeeds: 2 serves until 1 is back
        versions.add(infer_matrix(client, "iris", np.zeros((1, 4))).get_response()
                     .model_version)
        if "1" in versions:
            break
    assert "1" in versions
    wait_for(lambda: "2" not in states(client, "iris"), what="version 2 gone")


def test_version_policy_parsing() -> None:
    from scorer.server.repository import VersionPolicy

    assert VersionPolicy.from_json({"latest": {}}).select(["1", "10", "9"]) == ["10"]
    assert VersionPolicy.from_json({"latest": {"num_versions": 2}}).select(
        ["1", "10", "9"]) == ["9", "10"]
    assert VersionPolicy.from_json({"all": {}}).select(["2", "1"]) == ["1", "2"]
    assert VersionPolicy.from_json({"specific": {"versions": [1, 3]}}).select(
        ["1", "2", "3"]) == ["1", "3"]
    for bad in ({"latest": {"num_versions": 0}}, {"newest": {}}, {"specific": {}},
                {"all": {}, "latest": {}}, [], {"specific": [1]}, {"latest": 2}):
        with pytest.raises(ValueError):
            VersionPolicy.from_json(bad)


def _hammer(client: tc.InferenceServerClient, stop: threading.Event, errors: list,
            versions: set) -> None:
    while not stop.is_set():
        try:
            versions.add(infer_matrix(client, "iris", np.zeros((1, 4))).get_response()
                         .model_version)
        except InferenceServerException as exc:
            errors.append(str(exc))


def test_a_policy_of_the_wrong_shape_or_selecting_nothing_keeps_the_model_served(
        repo: Path, live, bundles) -> None:
    """config.json edits that are mistakes: the previous policy goes on serving, and the
    directory is still followed (a list body froze the model: new versions never loaded,
    deleted ones served on; a policy naming no version on disk unloaded everything)."""
    _, client = live
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    wait_for(lambda: client.is_model_ready("iris", "2"), what="version 2")
    stop, errors, versions = threading.Event(), [], set()
    t = threading.Thread(target=_hammer, args=(client, stop, errors, versions))
    t.start()
    try:
        for bad in ({"specific": [1]}, {"specific": {"versions": [9]}}):
            (repo / "iris" / "config.json").write_text(json.dumps({"version_policy": bad}))
            wait_for(lambda: "version policy" in " ".join(
                r for _, r in states(client, "iris").values()) or "config" in " ".join(
                r for _, r in states(client, "iris").values()), what="the config refused")
            time.sleep(3 * POLL)
        publish(bundles["iris"].path, repo, "iris", 3)  # still followed
        wait_for(lambda: client.is_model_ready("iris", "3"), what="version 3")
    finally:
        stop.set()
        t.join()
    assert errors == [] and {"2", "3"} <= versions


def test_the_only_version_written_again_in_place_answers_meanwhile(
        repo: Path, live, bundles) -> None:
    """rm -r iris/1; mkdir iris/1; copy the files (manifest last): version 1 as loaded
    answers until the new files load (it was unloaded at once: every request failed)."""
    _, client = live
    stop, errors, versions = threading.Event(), [], set()
    t = threading.Thread(target=_hammer, args=(client, stop, errors, versions))
    t.start()
    try:
        time.sleep(0.2)
        target = repo / "iris" / "1"
        shutil.rmtree(target)
        target.mkdir()
        src = bundles["iris_v2"].path
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.name != "manifest.json":
                (target / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target / f.relative_to(src))
        time.sleep(5 * POLL)  # polls while the directory has no manifest
        shutil.copy(src / "manifest.json", target / "manifest.json")
        X = bundles["iris"].X[:3]
        want = bundles["iris_v2"].est.predict_proba(X)
        wait_for(lambda: np.allclose(infer_matrix(client, "iris", X).as_numpy(
            "probability(1)"), want[:, 1]), what="the new files served")
    finally:
        stop.set()
        t.join()
    assert errors == [] and versions == {"1"}


def test_load_failures_name_paths_inside_the_repository(bundles, tmp_path: Path) -> None:
    """A client reads why a version failed without the server's file system layout."""
    import json

    import tritonclient.grpc as tc

    from scorer.server import serve

    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris"].path, repo, "iris", 2)
    m = repo / "iris" / "2" / "manifest.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "format": "other"}))
    with serve(repo, port=0, ready_timeout=60) as server:
        c = tc.InferenceServerClient(server.address)
        try:
            index = c.get_model_repository_index(as_json=True)["models"]
            reason = next(v["reason"] for v in index if v.get("version") == "2")
            assert "iris/2/manifest.json" in reason and str(tmp_path) not in reason, reason
        finally:
            c.close()
