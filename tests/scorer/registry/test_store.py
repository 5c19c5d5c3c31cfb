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


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> list[Path]:
    """Three iris bundles with different parameters (so different fingerprints)."""
    root = tmp_path_factory.mktemp("bundles")
    X, y = sklearn_dataset("iris")
    out = []
    for k, c in enumerate((1.0, 0.3, 0.1)):
        est = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        exporters.export(est, root / f"b{k}", sample=X, name="iris")
        out.append(root / f"b{k}")
    return out


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


def test_concurrent_publishers_get_distinct_ordered_versions(store_url, bundles,
                                                             tmp_path: Path) -> None:
    # 8 distinct bundles published at once from 8 threads, each with its own connection
    X, y = sklearn_dataset("iris")
    paths = []
    for k in range(8):
        est = LogisticRegression(C=0.05 + k / 10, max_iter=1000).fit(X, y)
        exporters.export(est, tmp_path / f"c{k}", sample=X[:20], name="iris")
        paths.append(tmp_path / f"c{k}")
    got: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(paths))

    def publish(k: int) -> None:
        s = open_store(store_url)
        try:
            barrier.wait()
            got[k] = s.publish(paths[k], "iris")
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got.values()) == list(range(1, 9))
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


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        open_store("mysql://x")
