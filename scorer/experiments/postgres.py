"""The exposure log in PostgreSQL (``--exposures postgresql://USER@HOST:PORT/DB``): the
writer's sink and the report's reader.

The table (created if missing, under an advisory lock so racing replicas create it once)::

    CREATE TABLE tablescore_exposures (
        time       timestamptz NOT NULL,  -- when the request was answered (microseconds)
        experiment text        NOT NULL,
        unit       text        NOT NULL,  -- the unit id as the hash reads it
        arm        text        NOT NULL,  -- 'shadow' for a shadow version's row
        holdout    boolean     NOT NULL,  -- a unit of the permanent control group
        model      text        NOT NULL,
        version    text        NOT NULL,  -- the version that answered
        rows       bigint      NOT NULL,  -- rows in the request
        outputs    jsonb       NOT NULL   -- {output: first row's value}
    );
    CREATE INDEX tablescore_exposures_experiment_time ON tablescore_exposures (experiment, time);

``outputs`` holds numbers as JSON numbers written with Python's shortest round-trip repr
(``jsonb`` keeps them as exact decimals, so ``(outputs->>'x')::float8`` gives back the same
double), labels as strings, and the non-finite floats, which JSON has no number for, as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (which ``::float8`` also reads).

Batches are written with ``COPY ... FROM STDIN`` in one transaction on one connection of the
writer's own (not the registry's pool: a slow COPY never holds a registry connection). A lost
connection raises :class:`~.exposures.SinkUnavailable`: the writer keeps the batch and retries
with backoff. A batch whose commit succeeded but whose answer was lost is written again (rare;
the report counts units by their first exposure, not rows).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..urls import redact
from .exposures import Row, SinkUnavailable, time_us

if TYPE_CHECKING:
    import pandas as pd

TABLE = "tablescore_exposures"
COLUMNS = ("time", "experiment", "unit", "arm", "holdout", "model", "version", "rows",
           "outputs")
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (time timestamptz NOT NULL, experiment text NOT NULL, "
    "unit text NOT NULL, arm text NOT NULL, holdout boolean NOT NULL, model text NOT NULL, "
    "version text NOT NULL, rows bigint NOT NULL, outputs jsonb NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_experiment_time ON {TABLE} (experiment, time)",
)
#: pg_advisory_xact_lock key: creating the table once among racing replicas
_SCHEMA_LOCK = 7_123_456_790
_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def json_value(v: Any) -> Any:
    """An output value as the ``outputs`` column holds it (see the module docstring)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isfinite(f):
            return f
        return "NaN" if f != f else _NONFINITE[f]
    return str(v)


def outputs_json(first: dict[str, Any]) -> str:
    """The ``outputs`` value of one record."""
    return json.dumps({k: json_value(v) for k, v in first.items()}, allow_nan=False,
                      separators=(",", ":"))


class PostgresSink:
    """Exposure batches into ``tablescore_exposures`` of the database at ``url``.

    Parameters
    ----------
    url : str
        A libpq connection URI.
    connect_timeout : float
        Seconds to wait for a connection (libpq counts whole seconds, at least 2).
    io_timeout_ms : int
        TCP user timeout: a write to a server that stopped answering fails after this many
        milliseconds instead of hanging the writer (Linux; ignored elsewhere).
    """

    def __init__(self, url: str, *, connect_timeout: float = 2.0,
                 io_timeout_ms: int = 10_000) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.name = redact(url)
        self._kwargs = {"connect_timeout": max(1, round(connect_timeout)),
                        "tcp_user_timeout": io_timeout_ms, "application_name":
                        "tablescore-exposures"}
        self._conn: Any = None
        self._copy = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self.url, **self._kwargs)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for stmt in SCHEMA:
                        cur.execute(stmt)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return conn

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def write(self, rows: list[Row]) -> int:
        psycopg = self._psycopg
        lost = 0
        records = []
        for r in rows:
            rec = (_EPOCH + dt.timedelta(microseconds=time_us(r[0])), r[1], r[2], r[3],
                   bool(r[4]), r[5], r[6], int(r[7]), outputs_json(r[8]))
            # PostgreSQL text cannot hold NUL (nor jsonb \u0000): such a record alone is lost,
            # not the batch
            if any("\x00" in x for x in rec[1:4]) or "\\u0000" in rec[8]:
                lost += 1
                continue
            records.append(rec)
        if not records:
            return lost
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur, cur.copy(self._copy) as copy:
                for rec in records:
                    copy.write_row(rec)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._reset()
            raise SinkUnavailable(_first_line(exc)) from exc
        except psycopg.Error:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._reset()
                raise SinkUnavailable("the connection was lost") from None
            raise
        return lost

    def close(self) -> None:
        self._reset()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def read_exposures(url: str, experiment: str, *, connect_timeout: float = 5.0,
                   ) -> pd.DataFrame:
    """The exposures of ``experiment`` in the database at ``url``.

    Returns
    -------
    pandas.DataFrame, shape (exposures, 4)
        ``time`` (datetime64[us, UTC]), ``unit``, ``arm``, ``holdout``, as
        :func:`.report.load_exposures` returns them from Parquet.

    Raises
    ------
    ExperimentDataError
        The database cannot be reached, has no exposure table, or no row of ``experiment``.
    """
    import pandas as pd
    import psycopg

    from .report import ExperimentDataError

    where = redact(url)
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0]
            if exists is None:
                raise ExperimentDataError(f"no exposure table ({TABLE}) in {where}: has a "
                                          "server logged there (--exposures URL)?")
            with conn.cursor(binary=True) as cur:
                cur.execute(f"SELECT time, unit, arm, holdout FROM {TABLE} "
                            "WHERE experiment = %s ORDER BY time", (experiment,))
                rows = cur.fetchall()
    except psycopg.Error as exc:
        raise ExperimentDataError(f"exposures in {where} cannot be read: "
                                  f"{_first_line(exc)}") from None
    if not rows:
        raise ExperimentDataError(f"no exposures of experiment '{experiment}' in {where}: has "
                                  "it served any request yet?")
    df = pd.DataFrame(rows, columns=["time", "unit", "arm", "holdout"])
    df["time"] = pd.to_datetime(df["time"], utc=True).astype("datetime64[us, UTC]")
    return df
