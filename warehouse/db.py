"""Connection settings: the standard PG* variables, or the embedded server when PGHOST is unset."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg import sql

from warehouse.embedded import EmbeddedServer

# the advisory lock of the scheduled job: `warehouse run` holds it exclusively, an export
# shares it (it waits for a run's build instead of reading half-built views)
RUN_LOCK_CLASS = 0x5748524E  # "WHRN"
RUN_LOCK_KEY = 1


def using_embedded() -> bool:
    return not os.environ.get("PGHOST")


def ensure_env() -> dict[str, str]:
    """Make PG* point at a running database and return them (dbt and psql read the same)."""
    if using_embedded():
        server = EmbeddedServer()
        server.start()
        os.environ.update(server.env())
    return {key: value for key, value in os.environ.items() if key.startswith("PG")}


def connect(autocommit: bool = False, application_name: str = "warehouse") -> psycopg.Connection:
    ensure_env()
    conn = psycopg.connect(autocommit=autocommit, application_name=application_name)
    conn.execute("set timezone = 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


def scalar(
    conn: psycopg.Connection, query: str | sql.Composed, params: tuple[Any, ...] | None = None
) -> Any:
    """The first column of the first row of `query` (which returns one row)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise psycopg.ProgrammingError(f"no row returned by {query!r}")
    return row[0]
