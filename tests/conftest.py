"""Shared fixtures: a real PostgreSQL (embedded unless PGHOST is set), real files, real dbt.

Each test session builds ONE warehouse from generated data (`built_warehouse`) and every
module that needs marts reads it; tests that mutate data create their own database with
`fresh_database`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from warehouse.embedded import temporary_server

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 11, 20)
DATA_SCALE = float(os.environ.get("WAREHOUSE_TEST_SCALE", "0.3"))
DATA_SEED = 7


@dataclass
class Database:
    env: dict[str, str]

    @property
    def name(self) -> str:
        return self.env["PGDATABASE"]

    def connect(self, **kwargs) -> psycopg.Connection:
        conn = psycopg.connect(
            host=self.env["PGHOST"], port=self.env.get("PGPORT"), user=self.env.get("PGUSER"),
            dbname=self.name, **kwargs,
        )
        conn.execute("set timezone = 'UTC'")
        return conn

    def query(self, statement: str, params: tuple | dict | None = None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(statement, params).fetchall()

    def frame(self, statement: str, params: tuple | dict | None = None):
        import pandas as pd

        with self.connect() as conn:
            cur = conn.execute(statement, params)
            columns = [column.name for column in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)

    def warehouse(self, *args: str, check: bool = True, timeout: float = 1200,
                  extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the real `warehouse` CLI against this database."""
        env = {**os.environ, **self.env, **(extra_env or {})}
        env["DBT_TARGET_PATH"] = str(ROOT / "target" / f"test-{self.name}")
        # a caller's own log folder wins (one build's log alone, unrotated by earlier ones)
        env["DBT_LOG_PATH"] = (extra_env or {}).get(
            "DBT_LOG_PATH", str(ROOT / "logs" / f"test-{self.name}"))
        result = subprocess.run(
            [str(Path(sys.executable).with_name("warehouse")), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"warehouse {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
            )
        return result

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.warehouse("dbt", *args, check=check)

    def build(self, *args: str, check: bool = True,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return self.warehouse(
            "build", "--vars", f"{{as_of: '{AS_OF.isoformat()}'}}", *args, check=check,
            extra_env=extra_env,
        )


# the programs of another PostgreSQL installation (e.g. Debian's 15 in
# /usr/lib/postgresql/15/bin): the session runs on a throwaway server of that version
# instead of the embedded one (scripts/test.sh runs the `every_server` tests this way)
SERVER_BIN = os.environ.get("WAREHOUSE_TEST_SERVER_BIN")


@pytest.fixture(scope="session")
def server_env() -> Iterator[dict[str, str]]:
    if SERVER_BIN:
        with temporary_server(Path(SERVER_BIN)) as env:
            saved = {key: os.environ.get(key) for key in env}
            os.environ.update(env)  # the CLI run by the tests reads the same
            yield env
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return
    from warehouse.db import ensure_env

    env = ensure_env()
    yield {key: env[key] for key in ("PGHOST", "PGPORT", "PGUSER") if key in env}


def server_version_num(server_env: dict[str, str]) -> int:
    with psycopg.connect(
        host=server_env["PGHOST"], port=server_env.get("PGPORT"), user=server_env.get("PGUSER"),
        dbname="postgres",
    ) as conn:
        return int(conn.info.server_version)


def _create_database(server_env: dict[str, str], name: str) -> Database:
    admin = psycopg.connect(
        host=server_env["PGHOST"], port=server_env.get("PGPORT"), user=server_env.get("PGUSER"),
        dbname="postgres", autocommit=True,
    )
    with admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.execute(f'create database "{name}"')
    return Database({**server_env, "PGDATABASE": name})


@pytest.fixture
def fresh_database(server_env: dict[str, str], request) -> Iterator[Database]:
    """An empty database of its own for a test that changes data."""
    name = f"t_{request.node.name[:30]}_{uuid.uuid4().hex[:6]}".lower()
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    database = _create_database(server_env, name)
    yield database
    if os.environ.get("WAREHOUSE_KEEP_TEST_DBS") != "1":
        _drop_database(server_env, name)


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory) -> Path:
    """Synthetic raw files (mixed formats, bad rows and re-deliveries included)."""
    from warehouse.generate import generate

    out = tmp_path_factory.mktemp("generated")
    generate(out, scale=DATA_SCALE, seed=DATA_SEED, as_of=AS_OF)
    return out


def _drop_database(server_env: dict[str, str], name: str) -> None:
    with psycopg.connect(
        host=server_env["PGHOST"], port=server_env.get("PGPORT"),
        user=server_env.get("PGUSER"), dbname="postgres", autocommit=True,
    ) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def built_warehouse(server_env: dict[str, str], generated_data: Path) -> Iterator[Database]:
    """One warehouse for the whole test session: generated data loaded and `dbt build` run
    with as_of = AS_OF. Read-only for tests: do not modify it."""
    name = f"test_built_{os.getpid()}"
    database = _create_database(server_env, name)
    database.warehouse("load", str(generated_data))
    database.build()
    yield database
    if os.environ.get("WAREHOUSE_KEEP_TEST_DBS") != "1":
        _drop_database(server_env, name)


def password_from(output: str) -> str:
    """The password a `warehouse db password` / `access org` line says where it keeps."""
    match = re.search(r"is in (\S+\.password)", output)
    assert match, output
    return Path(match.group(1)).read_text(encoding="utf-8").strip()


@pytest.fixture(scope="session")
def reporting_password(built_warehouse: Database) -> str:
    """`reporting` logs in with a password only: set one (the CLI keeps it in
    .warehouse/secrets/reporting.password and the pgpass file)."""
    return password_from(built_warehouse.warehouse("db", "password", "reporting").stdout)
