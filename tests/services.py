"""The shared services tests use: PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres).

A test that needs PostgreSQL creates a database of its own and drops it, so parallel tests
never see each other's tables; if the server is not there the test fails (it is never
skipped: CI machines run it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_HOST = os.environ.get("TABLESCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test: yields its URL, drops it after."""
    import psycopg

    name = f"ts_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(f"{PG_HOST}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL is required at {PG_HOST} for this test: {exc}") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_HOST}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TcpProxy:
    """A TCP proxy on a free 127.0.0.1 port to ``host:port`` that a test can cut (closing every
    connection and refusing new ones) and restore on the same port: a database or cache
    server lost and back, without touching the shared service itself."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self.target = (host, port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._conns: list = []
        self._server = None
        self._thread = None

    def start(self) -> TcpProxy:
        import socket
        import threading

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv

        def pump(a, b) -> None:
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    client, _ = srv.accept()
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self._conns += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        self._thread = threading.Thread(target=accept, daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        """Close the listening socket and every proxied connection."""
        import socket

        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._conns = []
# --- Redis -----------------------------------------------------------------------------------
REDIS_HOST = os.environ.get("TABLESCORE_TEST_REDIS", "redis://127.0.0.1:6379")


def redis_db() -> str:
    """A Redis URL with a database number of this test process's own (10 + the xdist worker
    number, below 15). Tests name their views and cache prefixes uniquely and delete their
    own keys, never FLUSHDB: others may share the number."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    # 15 is the feature benchmark's Feast database
    n = 10 + int(worker[2:] or 0) % 5 if worker.startswith("gw") else 10
    return f"{REDIS_HOST}/{n}"


class RedisServer:
    """A ``redis-server`` of a test's own on a free port (no persistence): for failure tests
    that stop, kill and restart it."""

    def __init__(self) -> None:
        import shutil
        import socket

        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is required on PATH for this test")
        self.exe = exe
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if r.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
