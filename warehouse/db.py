"""Connection settings: the standard PG* variables, or the embedded server when PGHOST is unset."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from loaders.server import UnsupportedServer, server_of
from warehouse.embedded import SUPERUSER, EmbeddedServer

# the advisory lock of the scheduled job: `warehouse run` and every build (`warehouse build`,
# `warehouse dbt build|run|seed|snapshot`, `warehouse demo`) hold it exclusively, so two
# builds never write the same relations at once; an export shares it (it waits for a
# build instead of reading half-built views)
RUN_LOCK_CLASS = 0x5748524E  # "WHRN"
RUN_LOCK_KEY = 1


def using_embedded() -> bool:
    """PGHOST unset, or naming the embedded server's own socket (after `eval "$(warehouse
    db env)"`)."""
    host = os.environ.get("PGHOST")
    if not host:
        return True
    return host.startswith("/") and EmbeddedServer().owns_socket(host, os.environ.get("PGPORT"))


def ensure_env(user: str | None = None) -> dict[str, str]:
    """Make PG* point at a running database and return them (dbt and psql read the same).

    On the embedded server PG* are set to its socket, the superuser (or `user`) and the
    pgpass file holding their passwords; when PGHOST already names its socket, the caller's
    PGDATABASE and PGUSER stay."""
    if using_embedded():
        server = EmbeddedServer()
        server.start()
        own_socket = bool(os.environ.get("PGHOST"))
        for key, value in server.env(user or SUPERUSER).items():
            if own_socket and key in ("PGDATABASE", "PGUSER") and user is None:
                os.environ.setdefault(key, value)
            else:
                os.environ[key] = value
    elif user:
        os.environ["PGUSER"] = user
    return {key: value for key, value in os.environ.items() if key.startswith("PG")}


# libpq connection keywords and the PG* variables that carry them
_CONNINFO_VARIABLES = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER",
                       "dbname": "PGDATABASE", "password": "PGPASSWORD", "sslmode": "PGSSLMODE"}


def conninfo_env(conninfo: str) -> dict[str, str]:
    """The PG* settings of a libpq connection string (`host=... port=... dbname=...`), e.g.
    a Citus coordinator's given to the benchmark or the tests; sslmode disable unless it
    says otherwise."""
    env = {"PGSSLMODE": "disable"}
    for key, value in psycopg.conninfo.conninfo_to_dict(conninfo).items():
        if key not in _CONNINFO_VARIABLES:
            raise ValueError(f"connection setting {key!r} is not supported here")
        env[_CONNINFO_VARIABLES[key]] = str(value)
    return env


def connect(autocommit: bool = False, application_name: str = "warehouse") -> psycopg.Connection:
    ensure_env()
    conn = psycopg.connect(autocommit=autocommit, application_name=application_name)
    try:
        server_of(conn)  # a server older than 15 stops everything here, with one sentence
    except UnsupportedServer:
        conn.close()
        raise
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


def acquire_run_lock(
    wait: bool, application_name: str = "warehouse run",
    on_wait: Callable[[str], None] | None = None,
) -> psycopg.Connection | None:
    """A connection holding the run lock (exclusive; it dies with the connection, so a
    killed holder never leaves it behind), or None when `wait` is False and another run
    or build holds it. With `on_wait`, a wait is announced through it first."""
    conn = connect(autocommit=True, application_name=application_name)
    try:
        if scalar(conn, "select pg_try_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY)):
            return conn
        if not wait:
            conn.close()
            return None
        if on_wait is not None:
            holders = conn.execute(
                "select a.pid, coalesce(nullif(a.application_name, ''), 'a client')"
                " from pg_locks as l join pg_stat_activity as a using (pid)"
                " where l.locktype = 'advisory' and l.classid = %s and l.objid = %s"
                " and l.granted",
                (RUN_LOCK_CLASS, RUN_LOCK_KEY),
            ).fetchall()
            who = ", ".join(f"{name} (pid {pid})" for pid, name in holders) or "another run"
            on_wait(f"waiting for the lock held by {who} to finish")
        conn.execute("select pg_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
        return conn
    except BaseException:
        conn.close()
        raise


@contextmanager
def build_lock(on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run lock for a build started by hand: it waits for a running
    `warehouse run` (or another build) instead of building the same relations at once."""
    conn = acquire_run_lock(True, "warehouse build", on_wait)
    assert conn is not None
    try:
        yield
    finally:
        conn.close()
