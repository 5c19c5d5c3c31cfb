"""The embedded backend of the feature store (``sqlite:///path`` or a plain path): no server.

One table per view, ``"view:<name>"``, with the entity key (TEXT, primary key), ``_ts``
(event timestamp, integer microseconds) and one column per feature, ``f0``, ``f1``, ... in
load order (REAL for numbers, which keeps a double's bits; TEXT for strings; NULL for null);
the table ``views`` holds each view's metadata as the Redis layout does (docs/features.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FeatureDataError, UnavailableError
from ..files import sqlite_connect
from ..urls import sqlite_path
from .store import Batch, Rows, ViewMeta, check_view_name, empty_rows, numeric_rows

#: SQLite's default limit on host parameters in one statement is 32766
_MAX_PARAMS = 30_000


def path_of(url: str) -> Path:
    """The database file of ``sqlite:///path`` (relative; ``sqlite:////path`` absolute, as
    the registry's and SQLAlchemy's) or of a plain path."""
    return Path(sqlite_path(url))


class SQLiteStore:
    """A feature store in one SQLite file (WAL mode; a connection per thread).

    Parameters
    ----------
    url : str
        ``sqlite:///relative/or/absolute/path`` or a path.
    timeout : float
        Seconds to wait for a writer's lock before giving up.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.path = path_of(url)
        self.timeout = timeout
        self._local = threading.local()
        #: every thread's connection: (thread, connection, process id), closed by close(); a
        #: connection of a thread that ended is closed when another thread opens one
        self._conns: list[tuple[threading.Thread, sqlite3.Connection, int]] = []
        self._conns_lock = threading.Lock()
        #: bumped by close(): a thread's connection of an earlier generation (closed) or of
        #: another process (a fork: SQLite connections must not cross it) is opened again
        self._gen = 0
        self._meta: dict[str, ViewMeta] = {}
        db = self._db()
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS views (name TEXT PRIMARY KEY, entity TEXT, "
                       "features TEXT, types TEXT, max_age REAL)")

    def _db(self) -> sqlite3.Connection:
        local = self._local
        db = getattr(local, "db", None)
        if db is None or local.gen != (self._gen, os.getpid()):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite_connect(self.path, timeout=self.timeout)
                db.execute("PRAGMA synchronous=NORMAL")
            except (sqlite3.Error, OSError) as exc:
                raise UnavailableError(f"feature store {self.url} cannot be opened: {exc}") \
                    from exc
            pid = os.getpid()
            local.db, local.gen = db, (self._gen, pid)
            with self._conns_lock:
                kept = []
                for thread, conn, p in self._conns:
                    if p != pid:
                        continue  # a parent process's (forked): not ours to close
                    if thread.is_alive():
                        kept.append((thread, conn, p))
                    else:
                        conn.close()
                kept.append((threading.current_thread(), db, pid))
                self._conns = kept
        return db

    @staticmethod
    def _table(name: str) -> str:
        return f'"view:{check_view_name(name)}"'

    def view(self, name: str) -> ViewMeta | None:
        check_view_name(name)
        row = self._db().execute("SELECT entity, features, types, max_age FROM views "
                                 "WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return ViewMeta(name, row[0], tuple(json.loads(row[1])), json.loads(row[2]), row[3])

    def define_view(self, meta: ViewMeta) -> None:
        from .loader import check_compatible

        db = self._db()
        old = self.view(meta.name)
        if old is not None:
            check_compatible(old, meta)
        cols = ", ".join(f"f{i} {'TEXT' if meta.types[f] == 'string' else 'REAL'}"
                         for i, f in enumerate(meta.features))
        try:
            with db:
                db.execute(f"CREATE TABLE IF NOT EXISTS {self._table(meta.name)} "
                           f"(entity TEXT PRIMARY KEY, _ts INTEGER NOT NULL, {cols})")
                db.execute("INSERT INTO views VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO "
                           "UPDATE SET max_age = excluded.max_age",
                           (meta.name, meta.entity, json.dumps(list(meta.features)),
                            json.dumps(meta.types), meta.max_age))
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None

    def write(self, meta: ViewMeta, batch: Batch, *, batch_rows: int = 1000) -> int:
        """See :meth:`FeatureStore.write`: one transaction per batch, one ``executemany``
        upsert (``... WHERE excluded._ts > _ts``)."""
        feats = list(meta.features)
        if len(batch) == 0:
            return 0
        keys = batch.keys.to_pylist()
        ts = np.asarray(batch.ts_us, dtype=np.int64).tolist()
        cols = [_values(batch.columns[f]) for f in feats]
        names = ", ".join(f"f{i}" for i in range(len(feats)))
        marks = ", ".join("?" for _ in range(len(feats) + 2))
        sets = ", ".join(["_ts = excluded._ts"] + [f"f{i} = excluded.f{i}"
                                                    for i in range(len(feats))])
        table = self._table(meta.name)
        sql = (f"INSERT INTO {table} (entity, _ts, {names}) VALUES ({marks}) "
               f"ON CONFLICT(entity) DO UPDATE SET {sets} WHERE excluded._ts > {table}._ts")
        db = self._db()
        before = db.total_changes
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, zip(keys, ts, *cols, strict=True))
        except sqlite3.OperationalError as exc:
            # (this batch rolled back; the batches before it stay: a load again completes)
            raise self._write_error(exc) from None
        return db.total_changes - before

    def _write_error(self, exc: sqlite3.OperationalError) -> Exception:
        """:func:`scorer.files.sqlite_failure` of this store."""
        from ..files import sqlite_failure

        return sqlite_failure(f"feature store {self.url}", exc)

    def read(self, meta: ViewMeta, keys: list[str], features: list[str]) -> Rows:
        """See :meth:`FeatureStore.read`: one ``SELECT ... WHERE entity IN (...)`` per 30,000
        distinct keys; numbers only come back as one matrix (``Rows.matrix``), as from
        Redis."""
        n = len(keys)
        if n == 0:
            return empty_rows(0, meta, features)
        idx = {f: i for i, f in enumerate(meta.features)}
        sel = ", ".join(f"f{idx[f]}" for f in features)
        pos: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            pos.setdefault(k, []).append(i)
        uniq = list(pos)
        db = self._db()
        found_rows = []
        step = _MAX_PARAMS
        for s in range(0, len(uniq), step):
            part = uniq[s:s + step]
            marks = ", ".join("?" for _ in part)
            found_rows += db.execute(f"SELECT entity, _ts{', ' if sel else ''}{sel} FROM "
                                     f"{self._table(meta.name)} WHERE entity IN ({marks})",
                                     part).fetchall()
        if all(meta.types.get(f) != "string" for f in features):
            return self._numbers(meta, features, n, pos, found_rows)
        out = empty_rows(n, meta, features)
        for row in found_rows:
            for i in pos[row[0]]:
                out.found[i] = True
                out.ts_us[i] = row[1]
                for j, f in enumerate(features):
                    v = row[2 + j]
                    if v is None:
                        out.null[f][i] = True
                    else:
                        out.columns[f][i] = v
        return out

    def _numbers(self, meta: ViewMeta, features: list[str], n: int,
                 pos: dict[str, list[int]], found_rows: list[tuple]) -> Rows:
        """The rows of a read of numbers only as one ``(features, entities)`` block, NaN
        where null or not found (a NULL converts to NaN), whose transpose is
        ``Rows.matrix``."""
        k = len(features)
        block = np.full((k, n), np.nan)
        found = np.zeros(n, dtype=bool)
        ts = np.zeros(n, dtype=np.int64)
        if found_rows:
            # (an entity asked for twice gets its row twice)
            at = [i for row in found_rows for i in pos[row[0]]]
            src = [r for r, row in enumerate(found_rows) for _ in pos[row[0]]]
            try:
                values = np.array([row[2:] for row in found_rows], dtype=np.float64)
            except (TypeError, ValueError) as exc:  # a text in a REAL column
                raise FeatureDataError(
                    f"feature view '{meta.name}': a stored value is not a number of the "
                    f"layout ({exc}); load the view again") from exc
            block[:, at] = values.reshape(len(found_rows), k)[src].T
            found[at] = True
            ts[at] = [found_rows[r][1] for r in src]
        return numeric_rows(features, block, found, ts)

    def delete_view(self, name: str) -> int:
        """Remove a view and its rows."""
        db = self._db()
        with db:
            db.execute(f"DROP TABLE IF EXISTS {self._table(name)}")
            return db.execute("DELETE FROM views WHERE name = ?", (name,)).rowcount

    def ping(self) -> bool:
        self._db().execute("SELECT 1")
        return True

    def close(self) -> None:
        """Close every thread's connection (a thread that reads afterwards opens a new one)."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._gen += 1
        pid = os.getpid()
        for _, conn, p in conns:
            if p == pid:  # (a forked parent's connections are not ours to close)
                conn.close()
        self._local.db = None


def _values(col: Any) -> list[Any]:
    """An Arrow column as SQLite parameters, None where null (through NumPy: Arrow's
    ``to_pylist`` boxes every value one by one, several times slower)."""
    a = col.to_numpy(zero_copy_only=False)
    if col.null_count and a.dtype.kind == "f":
        return [None if v != v else v for v in a.tolist()]  # NaN -> NULL
    return a.tolist()
