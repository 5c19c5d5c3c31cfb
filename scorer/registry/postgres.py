"""The fleet registry backend: PostgreSQL (``postgresql://user@host:port/db``), psycopg 3 with
a connection pool. Bundles are stored in the database (content-addressed by fingerprint), so a
replica on another machine needs nothing but the connection string. A commit that adds an
event sends ``NOTIFY tablescore_registry, '<event id>'``; replicas ``LISTEN`` on a connection
of their own and, after any reconnect, catch up from the event log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputError, UnavailableError
from ..urls import redact
from .store import CHANNEL, SQLStore

#: a constant key for pg_advisory_xact_lock: creating the schema once among racing processes
_SCHEMA_LOCK = 7_123_456_789
#: another: writers that add an event queue on it until they commit (events commit in id order)
_EVENT_LOCK = 7_123_456_790


class PostgresStore(SQLStore):
    """The registry in a PostgreSQL database.

    Parameters
    ----------
    url : str
        A libpq connection URI.
    connect_timeout : float
        Seconds to wait for a connection before the store is reported unreachable.
    """

    param = "%s"
    id_type = "BIGSERIAL PRIMARY KEY"
    blob_type = "BYTEA"

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        super().__init__(url)
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self.connect_timeout = connect_timeout
        self._kwargs = {"connect_timeout": max(1, int(connect_timeout))}
        self._pool = ConnectionPool(url, min_size=0, max_size=4, kwargs=self._kwargs,
                                    timeout=connect_timeout, open=False)
        self._listen: Any = None
        self._listen_lock = threading.Lock()
        # one direct connection first: its error says why at once ('database "x" does not
        # exist', an invalid option), where the pool would retry for its timeout and say
        # only that it got no connection
        try:
            psycopg.connect(url, **self._kwargs).close()
        except psycopg.OperationalError as exc:
            text = str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
            if text.startswith("connection is bad: invalid"):  # the URL itself is wrong
                raise InputError(f"registry {redact(url)}: "
                                 f"{text.removeprefix('connection is bad: ')}") from None
            raise self._unavailable(exc) from None
        try:
            self._pool.open(wait=False)
            with self.transaction(write=True) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for stmt in self._schema():
                    cur.execute(stmt)
        except UnavailableError:
            self._pool.close()
            raise
        except Exception as exc:
            self._pool.close()
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> UnavailableError:
        return UnavailableError(f"registry {redact(self.url)} is unreachable: "
                                f"{str(exc).strip().splitlines()[0] if str(exc) else exc!r}")

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Any]:
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        except Exception as exc:
            pool_timeout = type(exc).__name__ == "PoolTimeout"
            if pool_timeout:
                raise self._unavailable(exc) from exc
            raise

    def _serialize_events(self, cur: Any) -> None:
        # ids are handed out at INSERT, visible at COMMIT: without this lock a replica could
        # see event 43 committed before 42 and never apply 42
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_EVENT_LOCK,))

    def _notify(self, cur: Any, event_id: int) -> None:
        # delivered at commit, to every LISTENing session; the payload is the id only
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(event_id)))

    def wait(self, timeout: float) -> None:
        """Block until a notification arrives or ``timeout`` passes; a lost listening
        connection raises UnavailableError (the caller reconnects and catches up)."""
        psycopg = self._psycopg
        with self._listen_lock:
            try:
                if self._listen is None or self._listen.closed:
                    self._listen = psycopg.connect(self.url, autocommit=True, **self._kwargs)
                    self._listen.execute(f"LISTEN {CHANNEL}")
                for _ in self._listen.notifies(timeout=timeout, stop_after=1):
                    pass
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if self._listen is not None:
                    self._listen.close()
                self._listen = None
                raise self._unavailable(exc) from exc

    def close(self) -> None:
        with self._listen_lock:
            if self._listen is not None:
                self._listen.close()
                self._listen = None
        self._pool.close()
