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
