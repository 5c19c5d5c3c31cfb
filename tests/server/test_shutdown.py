"""The server as a program: ``tablescore serve`` in a subprocess, SIGTERM drains in-flight
requests, ``--workers`` shares the port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from tests.server.conftest import infer_matrix, publish

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``python -m tablescore serve ...`` with its JSON log lines collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tablescore", "serve", *args], cwd=REPO_ROOT,
            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "text", "msg": line.rstrip()}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def wait_event(self, name: str, count: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.get("event") == name]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no '{name}' event; log: {self.events[-20:]}")
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture()
def repo(tmp_path: Path, bundles) -> Path:
    publish(bundles["iris"].path, tmp_path, "iris", 1)
    return tmp_path


@pytest.fixture()
def spawn() -> Iterator:
    started: list[ServerProcess] = []

    def make(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        p = ServerProcess(args, env)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


def test_sigterm_drains_in_flight_requests(repo: Path, spawn) -> None:
    srv = spawn(["--repository", str(repo), "--host", "127.0.0.1", "--port", "0",
                 "--grace", "10", "--poll-interval", "0"],
                env={"TABLESCORE_SERVE_DEBUG_DELAY_S": "1.0"})
    port = srv.wait_event("serving")[0]["port"]
    srv.wait_event("ready")
    results: list[object] = []

    def one() -> None:
        c = tc.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            results.append(infer_matrix(c, "iris", np.zeros((2, 4))).get_response()
                           .model_version)
        except InferenceServerException as exc:
            results.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.4)  # the four requests are inside the server, sleeping before scoring
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.wait_event("shutdown")
    late = tc.InferenceServerClient(f"127.0.0.1:{port}")
    try:  # refused once the listener is closed; not ready in the instant before
        assert not late.is_server_ready(client_timeout=2)
    except InferenceServerException:
        pass
    late.close()
    for t in threads:
        t.join(15)
    assert results == ["1"] * 4, results  # every in-flight request completed
    assert srv.proc.wait(15) == 0
    assert time.monotonic() - t0 < 5  # drained as soon as the requests finished
    stopped = srv.wait_event("stopped")[0]
    assert stopped["drain_s"] >= 0.3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_workers_share_the_port(repo: Path, spawn) -> None:
    port = _free_port()
    srv = spawn(["--repository", str(repo), "--host", "127.0.0.1", "--port", str(port),
                 "--workers", "2", "--poll-interval", "0"])
    ready = srv.wait_event("ready", count=2)
    assert {e["worker"] for e in ready} == {0, 1}
    pids = set()
    for _ in range(8):  # new connections: the kernel spreads them over the workers
        c = tc.InferenceServerClient(f"127.0.0.1:{port}")
        assert infer_matrix(c, "iris", np.zeros((1, 4))).get_response().model_version == "1"
        c.close()
    pids = {e["pid"] for e in srv.wait_event("serving", count=2)}
    assert len(pids) == 2
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(20) == 0
    assert len(srv.wait_event("stopped", count=2)) == 2


def test_serve_refuses_a_missing_repository(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tablescore", "serve", "--repository",
                           str(tmp_path / "nope"), "--port", "0"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "is not a directory" in proc.stderr


def test_sigterm_during_a_load_exits_within_grace(repo: Path, spawn) -> None:
    # a 30 s load (the initial one) and a RepositoryModelLoad waiting for it: neither may hold
    # the process past --grace (it used to exit only when the load had finished)
    grace = 1.0
    srv = spawn(["--repository", str(repo), "--host", "127.0.0.1", "--port", "0",
                 "--grace", str(grace), "--poll-interval", "0"],
                env={"TABLESCORE_SERVE_DEBUG_LOAD_DELAY_S": "30"})
    port = srv.wait_event("serving")[0]["port"]
    srv.wait_event("model_loading")
    waiting: list[object] = []

    def load() -> None:
        c = tc.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            c.load_model("iris", client_timeout=60)
            waiting.append("ok")
        except InferenceServerException as exc:
            waiting.append(exc.status())
        finally:
            c.close()

    t = threading.Thread(target=load, daemon=True)
    t.start()
    time.sleep(0.5)  # the call is in the server, waiting for the load
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        code = srv.proc.wait(grace + 4)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {grace + 4} s after SIGTERM (grace {grace} s)") \
            from None
    took = time.monotonic() - t0
    assert code == 0
    assert took < grace + 3, took
    t.join(5)
    assert waiting and waiting[0] != "ok", waiting  # the waiting call ended with an error
