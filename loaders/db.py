"""Connection settings: the standard PG* variables, or the embedded server when PGHOST is unset."""

from __future__ import annotations

import os

import psycopg

from loaders.embedded import EmbeddedServer


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
