"""scorer.files.sqlite_connect: many connections opening one new file at once all get it in
WAL mode (SQLite answers "database is locked" at once, past its busy handler, to all but one
of them switching a new file to WAL)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from scorer.files import sqlite_connect


def _open_at_once(path: Path, n: int) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            barrier.wait(timeout=60)
            conn = sqlite_connect(path, timeout=30.0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("CREATE TABLE IF NOT EXISTS t (a)")
                conn.execute("COMMIT")
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            finally:
                conn.close()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_connections_opening_a_new_file_at_once_all_get_wal(tmp_path: Path) -> None:
    # with a bare PRAGMA journal_mode=WAL about 1 round in 20 failed here
    for k in range(100):
        assert _open_at_once(tmp_path / f"r{k}.db", 8) == []


def test_a_file_locked_past_the_timeout_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")  # in rollback-journal mode: nobody else may switch it
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite_connect(path, timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_that_cannot_hold_wal_keeps_its_mode() -> None:
    # SQLite answers the mode it kept (here "memory"): no endless retry
    conn = sqlite_connect(":memory:", timeout=1.0)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        conn.close()
