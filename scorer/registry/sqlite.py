"""The embedded registry backend: one SQLite file (``sqlite:///path/to/registry.db``), no
server. For one machine (several processes may share the file) and for the demo; replicas
find new events by polling the event log."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InputError, UnavailableError
from ..files import sqlite_connect, sqlite_failure
from ..urls import sqlite_path
from .store import SQLStore


class SQLiteStore(SQLStore):
    """The registry in a SQLite file.

    Parameters
    ----------
    url : str
        ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.
    poll_interval : float
        Seconds between event-log reads of a waiting replica.
    """

    def __init__(self, url: str, *, poll_interval: float = 0.1) -> None:
        super().__init__(url)
        path = sqlite_path(url)
        if not path or not url.startswith("sqlite:///"):
            raise InputError(f"a SQLite store URL is sqlite:///PATH, not '{url}'")
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.transaction(write=True) as cur:
                for stmt in self._schema():
                    cur.execute(stmt)
        except (OSError, sqlite3.Error) as exc:
            raise UnavailableError(f"registry {url}: cannot open ({exc})") from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # autocommit mode: transactions are the explicit BEGINs below
            conn = sqlite_connect(self.path, timeout=30.0)
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Any]:
        conn = self._conn()
        cur = conn.cursor()
        # IMMEDIATE takes the write lock at once: concurrent publishers queue instead of
        # failing at their first write
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            else:
                conn.commit()
        except sqlite3.OperationalError as exc:
            raise sqlite_failure(f"registry {self.url}", exc,
                                 written=" (nothing was changed)") from None
        finally:
            cur.close()

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, self.poll_interval))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
