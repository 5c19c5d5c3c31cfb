"""The registry replica's safety: it never deletes a directory it does not own, an alias
move never fails a request (even two moves in a row), and a version directory on disk is
checked against the registry's fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from scorer.registry import RegistryError, open_store
from scorer.registry.replica import RegistryReplica
from scorer.server import repository as repository_module
from scorer.server.repository import Repository

REPO_ROOT = Path(__file__).resolve().parents[3]
#: what marks a directory as a replica's (scorer.registry.replica.MARKER)
MARKER = ".tablescore-replica"


def _replica(url: str, root: Path) -> RegistryReplica:
    return RegistryReplica(open_store(url), Repository(root, poll_interval=0),
                           heartbeat_s=0.2)


def _started(url: str, root: Path) -> RegistryReplica:
    rep = _replica(url, root)
    assert not wait(rep.start(), timeout=60).not_done
    return rep


def _user_files(root: Path) -> dict[str, bytes]:
    """A user's notes and another model's bundle-like directory."""
    files = {"notes/todo.txt": b"do not delete me\n",
             "other/1/manifest.json": b'{"fingerprint": "theirs"}',
             "other/config.json": b"{}",
             "readme.md": b"mine\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


# --- 1. the directory is the replica's own --------------------------------------------------
def test_a_directory_that_is_not_a_replicas_is_refused_and_left_intact(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    files = _user_files(root)
    url = f"sqlite:///{tmp_path / 'empty.db'}"  # an empty (or mistyped) registry
    with pytest.raises(RegistryError, match=r"'.*repo' is not empty and is not a replica's"):
        _replica(url, root)
    from scorer.server import serve

    with pytest.raises(RegistryError, match="repo"):
        serve(root, port=0, store=url, ready_timeout=30)
    assert {str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*") if p.is_file()} == files
    assert not (root / MARKER).exists()


def test_the_serve_command_refuses_it_and_does_not_start(tmp_path: Path) -> None:
    root = tmp_path / "models"
    files = _user_files(root)
    proc = subprocess.run([sys.executable, "-m", "tablescore", "serve", "--store",
                           f"sqlite:///{tmp_path / 'typo.db'}", "--repository", str(root),
                           "--port", "0"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"replica repository '{root}' is not empty" in proc.stderr
    assert '"event": "serving"' not in proc.stderr
    assert all((root / rel).read_bytes() == data for rel, data in files.items())


def test_new_empty_and_reused_directories_work_and_only_its_own_files_go(
        tmp_path: Path, bundles: list[Path]) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = open_store(url)
    try:
        s.publish(bundles[0], "iris")
        s.publish(bundles[1], "other_model")
    finally:
        s.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (tmp_path / "new" / "deeper", empty):
        rep = _started(url, root)
        try:
            assert (root / MARKER).is_file()
            assert rep.resolve("iris").version == "1"
            assert rep.resolve("other_model").version == "1"
        finally:
            rep.close()
    # a user's file put into the replica's directory afterwards, then the directory used again
    # with a registry that no longer has other_model: its bundles and policy go, the rest stays
    root = tmp_path / "new" / "deeper"
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("keep")
    (root / "other_model" / "mine.txt").write_text("keep too")
    url2 = f"sqlite:///{tmp_path / 'r2.db'}"
    s = open_store(url2)
    try:
        s.publish(bundles[0], "iris")
    finally:
        s.close()
    rep = _started(url2, root)
    try:
        assert rep.resolve("iris").version == "1"
        assert (root / "notes" / "todo.txt").read_text() == "keep"
        assert sorted(p.name for p in (root / "other_model").iterdir()) == ["mine.txt"]
        assert (root / MARKER).is_file()
    finally:
        rep.close()
    # nothing of its own left: the model directory itself goes
    (root / "other_model" / "mine.txt").unlink()
    rep = _started(url2, root)
    try:
        assert not (root / "other_model").exists()
    finally:
        rep.close()


# --- 2. two quick alias moves ---------------------------------------------------------------
def test_two_quick_alias_moves_never_fail_a_request(store_url: str, bundles: list[Path],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # every load takes a while: the second move comes while the first one's target loads
    monkeypatch.setattr(repository_module, "_DEBUG_LOAD_DELAY_S", 1.5)
    s = open_store(store_url)
    rep = None
    try:
        s.publish(bundles[0], "iris", alias="production")
        rep = _started(store_url, tmp_path / "replica")
        assert rep.resolve("iris", "production").version == "1"
        s.publish(bundles[1], "iris", alias="production")
        rep.sync()
        assert rep.resolve("iris", "production").version == "1"  # 2 is loading
        s.publish(bundles[2], "iris", alias="production")
        rep.sync()
        # 2 never got ready; 1 still answers while 3 loads
        assert rep.resolve("iris", "production").version == "1"
        answered = []
        deadline = time.monotonic() + 30
        while not answered or answered[-1] != "3":
            assert time.monotonic() < deadline, f"version 3 never answered: {answered[-5:]}"
            answered.append(rep.resolve("iris", "production").version)  # never raises
            time.sleep(0.02)
        assert set(answered) <= {"1", "3"}
        # moves while everything is ready: the fallback is what answered (3)
        s.set_alias("iris", "production", 1)
        s.set_alias("iris", "production", 3)
        s.set_alias("iris", "production", 2)
        rep.sync()
        assert rep.resolve("iris", "production").version in {"2", "3"}
        assert rep.previous["iris"]["production"] == "3"
    finally:
        if rep is not None:
            rep.close()
        s.close()


# --- 3. a version directory is checked against the registry ---------------------------------
def test_a_recreated_registry_replaces_a_stale_version_directory(store_url: str,
                                                                 bundles: list[Path],
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "replica"
    first = f"sqlite:///{tmp_path / 'before.db'}"
    s = open_store(first)
    try:
        s.publish(bundles[0], "iris")
        old_fp = s.snapshot().models["iris"].versions[1]
    finally:
        s.close()
    rep = _started(first, root)
    try:
        assert rep.resolve("iris", "1").fingerprint == old_fp
    finally:
        rep.close()

    # the registry recreated: version 1 is another bundle now
    s = open_store(store_url)
    try:
        s.publish(bundles[1], "iris")
        new_fp = s.snapshot().models["iris"].versions[1]
        assert new_fp != old_fp
        rep = _started(store_url, root)
        try:
            assert rep.resolve("iris", "1").fingerprint == new_fp
            manifest = root / "iris" / "1" / "manifest.json"
            assert json.loads(manifest.read_text())["fingerprint"] == new_fp
            # a damaged manifest is no manifest: the version is written again
            manifest.write_text("{not json")
            wait(rep.sync(), timeout=60)
            assert json.loads(manifest.read_text())["fingerprint"] == new_fp
            assert not [p for p in (root / "iris").iterdir() if p.name.startswith(".")]
        finally:
            rep.close()
    finally:
        s.close()
