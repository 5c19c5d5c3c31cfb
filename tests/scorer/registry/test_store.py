"""The registry store, the same tests on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import exporters
from scorer.errors import BundleError, InputError, ModelNotFoundError, UnavailableError
from scorer.registry import RegistryError, open_store
from tests.datasets import sklearn_dataset


def test_publish_is_versioned_and_idempotent(store_url, bundles) -> None:
    s = open_store(store_url)
    try:
        assert s.publish(bundles[0], "iris") == 1
        assert s.publish(bundles[1], "iris", alias="production") == 2
        assert s.publish(bundles[0], "iris") == 1  # the same fingerprint: the same version
        assert s.publish(bundles[0], "other") == 1  # versions are per model
        snap = s.snapshot()
        assert set(snap.models) == {"iris", "other"}
        assert snap.models["iris"].aliases == {"production": 2}
        assert snap.models["iris"].served() == [2]
        kinds = [(e.kind, e.model, e.version, e.alias) for e in s.events()]
        assert kinds == [("publish", "iris", 1, None), ("publish", "iris", 2, None),
                         ("alias", "iris", 2, "production"), ("publish", "other", 1, None)]
        assert snap.last_event == s.events()[-1].id
        # the content is stored: a replica elsewhere needs nothing but the URL
        files = s.fetch(snap.models["iris"].versions[2])
        assert json.loads(files["manifest.json"])["fingerprint"] == \
            snap.models["iris"].versions[2]
    finally:
        s.close()


def test_alias_moves_and_rollback(store_url, bundles) -> None:
    s = open_store(store_url)
    try:
        for b in bundles:
            s.publish(b, "iris")
        assert s.set_alias("iris", "production", 3) == 0
        assert s.set_alias("iris", "production", 1) == 3  # the rollback
        assert s.snapshot().models["iris"].served() == [1, 3]
        with pytest.raises(ModelNotFoundError, match="no version 9"):
            s.set_alias("iris", "production", 9)
        with pytest.raises(InputError, match="alias"):
            s.set_alias("iris", "42", 1)  # would read as a version
        with pytest.raises(RegistryError, match="named by alias production"):
            s.delete("iris", 1)
        s.delete("iris", 2)
        assert sorted(s.snapshot().models["iris"].versions) == [1, 3]
        assert s.publish(bundles[1], "iris") == 4  # numbers are never reused
        s.set_latest("iris", 2)
        assert s.snapshot().models["iris"].served() == [1, 3, 4]
    finally:
        s.close()


def test_a_tampered_bundle_is_refused_and_never_visible(store_url, bundles,
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(bundles[0], bad)
    table = sorted((bad / "tables").glob("*.parquet"))[0]
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF
    table.write_bytes(bytes(data))
    s = open_store(store_url)
    try:
        with pytest.raises(BundleError, match="sha256"):
            s.publish(bad, "iris")
        assert s.snapshot().models == {}
        assert s.events() == []
    finally:
        s.close()


def _publish_at_once(store_url: str, jobs: list[tuple[Path, str]]) -> list[int]:
    """Publish each ``(bundle, model)`` of ``jobs`` from a thread of its own with a store
    connection of its own, all released at once; the versions they got, in ``jobs`` order.
    A thread that fails (opening its store too) aborts the others' wait: the caller fails
    with its error instead of hanging."""
    got: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def publish(k: int) -> None:
        s = None
        try:
            s = open_store(store_url)
            barrier.wait(timeout=120)
            got[k] = s.publish(*jobs[k])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            if s is not None:
                s.close()

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [e for e in errors if not isinstance(e, threading.BrokenBarrierError)], errors
    assert not errors
    return [got[k] for k in range(len(jobs))]


def test_concurrent_publishers_get_distinct_ordered_versions(store_url, bundles,
                                                             tmp_path: Path) -> None:
    # 8 distinct bundles published at once from 8 threads, each with its own connection
    X, y = sklearn_dataset("iris")
    paths = []
    for k in range(8):
        est = LogisticRegression(C=0.05 + k / 10, max_iter=1000).fit(X, y)
        exporters.export(est, tmp_path / f"c{k}", sample=X[:20], name="iris")
        paths.append(tmp_path / f"c{k}")
    got = _publish_at_once(store_url, [(paths[k], "iris") for k in range(len(paths))])
    assert sorted(got) == list(range(1, 9))
    s = open_store(store_url)
    try:
        events = [e for e in s.events() if e.kind == "publish"]
        # the event log orders them as their versions
        assert [e.version for e in events] == list(range(1, 9))
    finally:
        s.close()


def test_replica_heartbeats_are_listed(store_url, bundles) -> None:
    s = open_store(store_url)
    try:
        s.publish(bundles[0], "iris")
        s.heartbeat("a", {"iris": {"ready": ["1"]}}, 1, started_at=0.0)
        s.heartbeat("a", {"iris": {"ready": ["1", "2"]}}, 2, started_at=0.0)
        rows = s.replicas()
        assert [(r["replica"], r["last_event"], r["serving"]) for r in rows] == \
            [("a", 2, {"iris": {"ready": ["1", "2"]}})]
    finally:
        s.close()


def test_unreachable_postgres_names_the_url_without_its_password() -> None:
    with pytest.raises(UnavailableError) as err:
        open_store("postgresql://bob:s3cret@127.0.0.1:1/db", connect_timeout=1)
    assert "postgresql://bob:***@127.0.0.1:1/db" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_postgres_connection_errors_say_why_at_once() -> None:
    """The server's reason, once and without the pool's timeout; a malformed option is the
    user's input (InputError: exit 2)."""
    import time

    t0 = time.monotonic()
    with pytest.raises(UnavailableError) as err:
        open_store("postgresql://postgres@127.0.0.1:5432/no_such_db_here", connect_timeout=5)
    assert 'database "no_such_db_here" does not exist' in str(err.value)
    assert str(err.value).count("is unreachable") == 1 and time.monotonic() - t0 < 4
    with pytest.raises(InputError, match='invalid sslmode value: "bogus"'):
        open_store("postgresql://postgres@127.0.0.1:5432/test?sslmode=bogus")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(InputError, match="sqlite:///PATH or postgresql://"):
        open_store("mysql://x")


def test_a_bundle_cannot_make_the_publisher_read_or_write_outside_it(
        store_url, bundles, tmp_path: Path) -> None:
    """Untrusted bundles: a table path through a symlink, or with '..', is refused before
    any file is touched; nothing lands outside the bundle (the reviewer's case wrote
    .../pwned/evil.txt through a symlinked directory)."""
    target = tmp_path / "pwned"
    for case in ("symlink", "dotdot", "absolute"):
        bad = tmp_path / "evil"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(bundles[0], bad)
        manifest = json.loads((bad / "manifest.json").read_text())
        if case == "symlink":
            # L -> 20 directories down inside the bundle: 20 '..' after L resolve to the
            # bundle itself, where the file exists; written as text into the publisher's
            # copy (where L is a plain directory) they climb to / and then to the target
            deep = bad.joinpath(*[f"d{i}" for i in range(20)])
            deep.mkdir(parents=True)
            (bad / "L").symlink_to(deep, target_is_directory=True)
            inside = str(target / "evil.txt").lstrip("/")
            (bad / inside).parent.mkdir(parents=True)
            (bad / inside).write_text("written by a bundle")
            rel = "L/" + "../" * 20 + inside
        elif case == "dotdot":
            rel = "tables/../../pwned/evil.txt"
        else:
            rel = str(target / "evil.txt")
        manifest["tables"][rel] = {"sha256": "0" * 64, "rows": 0, "columns": []}
        (bad / "manifest.json").write_text(json.dumps(manifest))
        s = open_store(store_url)
        try:
            with pytest.raises(BundleError, match=r"plain relative path|symbolic link"):
                s.publish(bad, "iris")
            assert s.snapshot().models == {}
        finally:
            s.close()
        assert not target.exists(), case


def test_the_same_bundle_published_at_once_by_many(store_url, bundles) -> None:
    """Publishers racing with one bundle, to one model and to others: one version per
    model, no error (a UniqueViolation was an internal error on PostgreSQL)."""
    models = ["iris"] * 4 + [f"m{k}" for k in range(4)]
    got = _publish_at_once(store_url, [(bundles[1], model) for model in models])
    assert set(got) == {1}
    s = open_store(store_url)
    try:
        snap = s.snapshot()
        assert sorted(snap.models) == ["iris", "m0", "m1", "m2", "m3"]
        assert all(list(m.versions) == [1] for m in snap.models.values())
    finally:
        s.close()


def test_events_commit_in_the_order_of_their_ids(store_url) -> None:
    """A writer that has added an event holds the others' events until it commits: a
    replica taking the highest id as applied never skips one committed later."""
    import time

    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite serializes its writers already")
    a, b = open_store(store_url), open_store(store_url)
    inside, times = threading.Event(), {}

    def first() -> None:
        with a.transaction(write=True) as cur:
            times["a_id"] = a._event(cur, "publish", "x", 1)
            inside.set()
            time.sleep(0.5)
            times["a_done"] = time.monotonic()  # (then it commits, releasing the lock)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert inside.wait(10)
        with b.transaction(write=True) as cur:
            times["b_id"] = b._event(cur, "publish", "y", 1)
            times["b_event"] = time.monotonic()
    finally:
        t.join()
        a.close()
        b.close()
    assert times["b_id"] > times["a_id"]
    assert times["b_event"] >= times["a_done"]  # it waited for the earlier one's commit


@pytest.mark.parametrize("args", [
    ["list"], ["list", "--store", "foo://x"], ["alias", "iris", "p", "1", "--store",
                                               "sqlite://relative.db"],
    ["experiment", "iris", "--store", "sqlite:///{tmp}/r.db"],
    ["experiment", "iris", "--store", "sqlite:///{tmp}/r.db", "--config", "{tmp}/bad.json"]])
def test_registry_usage_errors_exit_2_in_one_line(args, tmp_path: Path, capsys,
                                                  monkeypatch) -> None:
    from tablescore.cli import main

    monkeypatch.delenv("TABLESCORE_STORE", raising=False)
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["registry", *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_delete_during_a_publish_of_the_same_bundle_keeps_its_files(store_url, bundles
                                                                      ) -> None:
    """Model A's only version is deleted while the same bundle is being published as model
    B: B's version keeps every file (the two take their turns on the bundle)."""
    from scorer.registry.store import bundle_files

    s = open_store(store_url)
    try:
        s.publish(bundles[0], "A")
        fp, files = bundle_files(bundles[0])
        inside, release = threading.Event(), threading.Event()

        class Slow(dict):
            def items(self):  # the publisher pauses after its first file
                for i, kv in enumerate(super().items()):
                    yield kv
                    if i == 0:
                        inside.set()
                        release.wait(2.0)

        errors: list[BaseException] = []

        def publish_b() -> None:
            b = open_store(store_url)
            try:
                b.publish_files(fp, Slow(files), "B")
            except BaseException as exc:  # (reported below)
                errors.append(exc)
            finally:
                b.close()

        t = threading.Thread(target=publish_b)
        t.start()
        assert inside.wait(30)
        d = threading.Thread(target=s.delete, args=("A", 1))
        d.start()
        d.join(0.5)  # (PostgreSQL: waits for the publisher's turn; SQLite: for its lock)
        release.set()
        t.join(30)
        d.join(30)
        assert not errors and not t.is_alive() and not d.is_alive()
        snap = s.snapshot()
        assert "A" not in snap.models and snap.models["B"].versions == {1: fp}
        assert s.fetch(fp) == files
    finally:
        s.close()


def test_what_an_experiment_names_cannot_be_deleted(store_url, bundles) -> None:
    s = open_store(store_url)
    try:
        for b in bundles:
            s.publish(b, "m")
        s.set_alias("m", "cand", 2)
        s.set_experiment("m", {"name": "e", "unit": "u", "salt": "s", "shadow": "3", "arms": [
            {"name": "control", "version": "1", "weight": 0.5},
            {"name": "candidate", "version": "cand", "weight": 0.5}]})
        with pytest.raises(RegistryError, match="experiment's arm 'control'"):
            s.delete("m", 1)
        with pytest.raises(RegistryError, match="experiment's shadow"):
            s.delete("m", 3)
        with pytest.raises(RegistryError, match="experiment's arm 'candidate'"):
            s.remove_alias("m", "cand")
        with pytest.raises(ModelNotFoundError, match=r"experiment shadow: .* 'nine'"):
            s.set_experiment("m", {"name": "e", "unit": "u", "salt": "s", "shadow": "nine",
                                   "arms": [{"name": "control", "version": "1",
                                             "weight": 1.0}]})
        s.set_experiment("m", None)
        s.remove_alias("m", "cand")
        s.delete("m", 1)
        assert sorted(s.snapshot().models["m"].versions) == [2, 3]
    finally:
        s.close()


def test_policy_bounds_are_the_same_on_every_backend(store_url, bundles) -> None:
    s = open_store(store_url)
    try:
        s.publish(bundles[0], "m")
        for bad in (0, -1, 99_999_999_999):
            with pytest.raises(InputError, match="from 1 to 1000000"):
                s.set_latest("m", bad)
        s.set_latest("m", 1_000_000)
    finally:
        s.close()


def test_a_full_disk_is_an_output_error(tmp_path, monkeypatch) -> None:
    """SQLite's "database or disk is full" is exit 4 in the user's terms (was exit 70)."""
    import sqlite3

    from scorer.files import OutputError

    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(OutputError, match="cannot be written: database or disk is full"):
            with s.transaction(write=True):
                raise sqlite3.OperationalError("database or disk is full")
    finally:
        s.close()


def test_publish_errors_name_the_users_bundle(bundles, tmp_path) -> None:
    """Checked in a private copy, a bundle's problems still name the user's path; a missing
    table is a bundle error (exit 3), as `tablescore verify` says it."""
    import shutil

    from scorer.errors import BundleFormatError
    from scorer.registry.store import bundle_files

    b = tmp_path / "b"
    shutil.copytree(bundles[0], b)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["model"]["name"] = "edited"  # the fingerprint no longer matches
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as err:
        bundle_files(b)
    assert str(b) in str(err.value) and "tablescore-publish-" not in str(err.value)
    c = tmp_path / "c"
    shutil.copytree(bundles[0], c)
    victim = sorted((c / "tables").iterdir())[0]
    victim.unlink()
    with pytest.raises(BundleFormatError, match=f"table 'tables/{victim.name}' is missing"):
        bundle_files(c)
