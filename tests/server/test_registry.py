"""Replicas serving a registry (``tablescore serve --store URL``): three server processes on
SQLite and on a real PostgreSQL; publish, roll back and refuse reach every replica, requests
never fail while they do, and replicas whose database sessions are killed catch up."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from tests.server.conftest import Exported
from tests.server.test_shutdown import REPO_ROOT, ServerProcess

X1 = np.zeros((1, 4))


def _cli(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tablescore", "registry", *args,
                           "--store", store], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def _answered(client: tc.InferenceServerClient, version: str = "") -> str:
    inp = tc.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(X1)
    return client.infer("iris", [inp], model_version=version).get_response().model_version


class Load:
    """One client thread per replica sending requests until stopped; counts failures."""

    def __init__(self, ports: list[int]) -> None:
        self.failures: list[str] = []
        self.done = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(p,)) for p in ports]
        for t in self._threads:
            t.start()

    def _run(self, port: int) -> None:
        c = tc.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            while not self._stop.is_set():
                try:
                    _answered(c, "production" if self.done % 2 else "")
                    self.done += 1
                except InferenceServerException as exc:
                    self.failures.append(f"{port}: {exc}")
                time.sleep(0.005)  # bounded: ~200 calls/s per replica at most
        finally:
            c.close()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def _wait_all(clients: list[tc.InferenceServerClient], expected: str, *, version: str = "",
              timeout: float = 30.0) -> float:
    t0 = time.monotonic()
    pending = list(clients)
    while pending:
        pending = [c for c in pending if _answered(c, version) != expected]
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{len(pending)} replicas never answered version {expected}")
        time.sleep(0.02)
    return time.monotonic() - t0


def _kill_sessions(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "datname = current_database() AND pid <> pg_backend_pid()")
        return len(rows.fetchall())


def test_three_replicas_follow_the_registry(store_url: str, bundles: dict[str, Exported],
                                            tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    import exporters

    third = tmp_path / "third"
    exporters.export(LogisticRegression(C=0.3, max_iter=1000).fit(
        bundles["iris"].X, bundles["iris"].est.predict(bundles["iris"].X)), third,
        sample=bundles["iris"].X, name="iris")
    v1 = _cli("publish", str(bundles["iris"].path), "--model", "iris", "--alias",
              "production", store=store_url)
    assert v1.returncode == 0, v1.stderr
    assert v1.stdout.strip().splitlines()[-1] == "1"
    replicas = [ServerProcess(["--store", store_url, "--repository", str(tmp_path / f"r{k}"),
                               "--port", "0", "--replica-id", f"r{k}"]) for k in range(3)]
    clients: list[tc.InferenceServerClient] = []
    try:
        ports = [r.wait_event("serving")[0]["port"] for r in replicas]
        for r in replicas:
            r.wait_event("ready")
        clients = [tc.InferenceServerClient(f"127.0.0.1:{p}") for p in ports]
        assert [_answered(c, "production") for c in clients] == ["1", "1", "1"]

        load = Load(ports)
        try:
            # publish: every replica serves the new version, no request fails meanwhile
            v2 = _cli("publish", str(bundles["iris_v2"].path), "--model", "iris",
                      store=store_url)
            assert v2.returncode == 0, v2.stderr
            assert v2.stdout.strip().splitlines()[-1] == "2"
            _wait_all(clients, "2")

            # a tampered bundle is refused with the reason and never reaches a replica
            bad = tmp_path / "bad"
            shutil.copytree(bundles["corrupt"].path, bad)
            refused = _cli("publish", str(bad), "--model", "iris", store=store_url)
            assert refused.returncode != 0 and "sha256" in refused.stderr
            assert refused.stdout.strip() == ""

            # publishing a version and pointing the alias at it in one step: requests for
            # the alias are answered by the old version until the new one is ready
            v3 = _cli("publish", str(third), "--model", "iris", "--alias", "production",
                      store=store_url)
            assert v3.returncode == 0, v3.stderr
            _wait_all(clients, "3", version="production")

            # rollback by moving the alias reaches every replica
            assert _cli("alias", "iris", "production", "2", store=store_url).returncode == 0
            _wait_all(clients, "2", version="production")
            assert _cli("alias", "iris", "production", "1", store=store_url).returncode == 0
            _wait_all(clients, "1", version="production")

            if store_url.startswith("postgresql"):
                # every replica's sessions killed, and a version published meanwhile: each
                # reconnects and catches up from the event log
                assert _kill_sessions(store_url) >= 3
                v3 = _cli("publish", str(bundles["ridge"].path), "--model", "diabetes",
                          store=store_url)
                assert v3.returncode == 0, v3.stderr
                deadline = time.monotonic() + 30
                for c in clients:
                    while not c.is_model_ready("diabetes"):
                        assert time.monotonic() < deadline, "a replica did not catch up"
                        time.sleep(0.05)
        finally:
            load.stop()
        assert load.failures == []
        assert load.done > 30

        # every replica reported in with what it serves
        shown = _cli("replicas", "--json", store=store_url)
        import json

        rows = {r["replica"]: r for r in json.loads(shown.stdout)}
        assert set(rows) == {"r0", "r1", "r2"}
        deadline = time.monotonic() + 10
        while not all(set(r["serving"].get("iris", {}).get("ready", [])) == {"1", "3"}
                      for r in rows.values()):
            assert time.monotonic() < deadline, rows
            time.sleep(0.5)
            rows = {r["replica"]: r for r in json.loads(
                _cli("replicas", "--json", store=store_url).stdout)}
    finally:
        for c in clients:
            c.close()
        for r in replicas:
            r.stop()


def test_a_replica_without_its_registry_says_so(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tablescore", "serve", "--store",
                           "postgresql://bob:s3cret@127.0.0.1:1/db", "--port", "0"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "postgresql://bob:***@127.0.0.1:1/db is unreachable" in proc.stderr
    assert "s3cret" not in proc.stderr


def test_alias_and_unknown_alias_over_grpc(bundles: dict[str, Exported], tmp_path: Path) -> None:
    from scorer.registry import open_store
    from scorer.server import serve

    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = open_store(url)
    s.publish(bundles["iris"].path, "iris", alias="champion")
    s.publish(bundles["iris_v2"].path, "iris")
    s.close()
    with serve(tmp_path / "cache", port=0, store=url, ready_timeout=60) as server:
        c = tc.InferenceServerClient(server.address)
        try:
            assert _answered(c) == "2"
            assert _answered(c, "champion") == "1"  # the response names the number
            assert c.is_model_ready("iris", "champion")
            with pytest.raises(InferenceServerException, match="no version or alias 'nope'"):
                _answered(c, "nope")
        finally:
            c.close()


def test_an_experiment_set_in_the_registry_reaches_the_replica(
        bundles: dict[str, Exported], tmp_path: Path) -> None:
    from scorer.errors import InputError, ModelNotFoundError
    from scorer.experiments.assign import arm_index, bounds, bucket
    from scorer.registry import open_store
    from scorer.server import serve

    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = open_store(url)
    s.publish(bundles["iris"].path, "iris", alias="champion")
    s.publish(bundles["iris_v2"].path, "iris")
    exp = {"name": "reg-exp", "unit": "customer_id", "salt": "r", "shadow": None, "arms": [
        {"name": "control", "version": "champion", "weight": 0.5},
        {"name": "candidate", "version": "2", "weight": 0.5}]}
    with pytest.raises(ModelNotFoundError, match="no version or alias 'nope'"):
        s.set_experiment("iris", {**exp, "arms": [
            {"name": "control", "version": "nope", "weight": 1.0}]})
    with pytest.raises(InputError, match="sum to 1"):
        s.set_experiment("iris", {**exp, "arms": exp["arms"][:1]})
    inp = tc.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(X1)
    with serve(tmp_path / "cache", port=0, store=url, ready_timeout=60) as server:
        c = tc.InferenceServerClient(server.address)
        try:
            s.set_experiment("iris", exp)
            units = list(range(40))
            want = ["1" if arm_index(bucket("r", u), bounds([0.5, 0.5])) == 0 else "2"
                    for u in units]
            deadline = time.monotonic() + 10
            while True:
                got = [c.infer("iris", [inp], parameters={"customer_id": u}).get_response()
                       for u in units]
                if all("arm" in g.parameters for g in got):
                    break
                assert time.monotonic() < deadline, "the experiment never reached the replica"
                time.sleep(0.1)
            assert [g.model_version for g in got] == want
            s.set_experiment("iris", None)
            deadline = time.monotonic() + 10
            while "arm" in c.infer("iris", [inp], parameters={"customer_id": 1}) \
                    .get_response().parameters:
                assert time.monotonic() < deadline, "the experiment never ended"
                time.sleep(0.1)
        finally:
            c.close()
    s.close()


def test_an_experiment_in_the_registry_routes_from_the_first_request(
        bundles: dict[str, Exported], tmp_path: Path) -> None:
    """A replica that starts with an experiment in the registry routes as soon as it is
    ready (it answered from the newest version for about a second)."""
    from scorer.registry import open_store
    from scorer.server import serve

    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = open_store(url)
    s.publish(bundles["iris"].path, "iris")
    s.publish(bundles["iris_v2"].path, "iris")
    s.set_latest("iris", 2)  # both versions served
    s.set_experiment("iris", {"name": "first", "unit": "customer_id", "salt": "f",
                              "shadow": None, "arms": [
                                  {"name": "control", "version": "1", "weight": 1.0}]})
    s.close()
    inp = tc.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(X1)
    with serve(tmp_path / "cache", port=0, store=url, ready_timeout=60) as server:
        c = tc.InferenceServerClient(server.address)
        try:
            r = c.infer("iris", [inp], parameters={"customer_id": 5}).get_response()
            assert r.model_version == "1" and r.parameters["arm"].string_param == "control"
        finally:
            c.close()


def test_database_lost_while_serving(bundles: dict[str, Exported], tmp_path: Path) -> None:
    """The replica's database goes away: it keeps serving (ModelReady true), reports
    tablescore_registry_connected 0, and once the database is back it catches up with a
    version published meanwhile."""
    import urllib.request

    from scorer.registry import open_store
    from scorer.server import serve
    from tests.services import PG_HOST, TcpProxy, fresh_database

    host, port = PG_HOST.rsplit("@", 1)[1].split(":")
    with fresh_database() as url:
        db = url.rsplit("/", 1)[1]
        direct = open_store(url)
        direct.publish(bundles["iris"].path, "iris")
        proxy = TcpProxy(host, int(port)).start()
        via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}/{db}"
        with serve(tmp_path / "cache", port=0, store=via_proxy, metrics_port=0,
                   ready_timeout=60) as server:
            c = tc.InferenceServerClient(server.address)

            def metric(name: str) -> float:
                text = urllib.request.urlopen(
                    f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
                line = next(x for x in text.splitlines() if x.startswith(name + " "))
                return float(line.split()[-1])

            try:
                assert metric("tablescore_registry_connected") == 1.0
                proxy.cut()
                deadline = time.monotonic() + 20
                while metric("tablescore_registry_connected") != 0.0:
                    assert time.monotonic() < deadline, "the lost database was not noticed"
                    time.sleep(0.2)
                assert _answered(c) == "1" and c.is_model_ready("iris")  # still serving
                direct.publish(bundles["iris_v2"].path, "iris")  # published meanwhile
                time.sleep(0.5)
                proxy.start()  # the database is back
                _wait_all([c], "2", timeout=30)
                assert metric("tablescore_registry_connected") == 1.0
                assert metric("tablescore_registry_last_event_id") == direct.last_event()
            finally:
                c.close()
                proxy.cut()
        direct.close()
