"""The same files give the same warehouse on every supported PostgreSQL major version.

Runs when the session's server is not the wheel's PostgreSQL 18 (scripts/test.sh runs the
`every_server` tests a second time on Debian's PostgreSQL 15 through
WAREHOUSE_TEST_SERVER_BIN): the session's `built_warehouse` is compared, relation by
relation, with a build of the same generated files on a throwaway PostgreSQL 18 started
here. Every mart and export view holds the same rows (floats to 1e-9 relative), and the
quarantine holds the same rows with the same reasons.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import AS_OF, ROOT, Database, server_version_num

from warehouse.embedded import temporary_server

pytestmark = pytest.mark.every_server

# when the files were loaded or the build or read ran (clock times, dbt's invocation id):
# differ between any two builds; everything else must not
VOLATILE_COLUMNS = {"exported_at", "built_at", "dbt_invocation_id", "loaded_at", "last_loaded_at"}
# the facts' created_at is when the row was loaded (the dimensions' is the source's)
VOLATILE_IN = {"marts.fact_kpi_events": {"created_at"},
               "marts.fact_scenario_attempts": {"created_at"}}
RELATIVE = 1e-9


@pytest.fixture(scope="module")
def reference(server_env: dict[str, str], generated_data: Path) -> Iterator[Database]:
    """The same files loaded and built on the wheel's PostgreSQL 18."""
    if server_version_num(server_env) // 10_000 == 18:
        pytest.skip(
            "the session runs on PostgreSQL 18: nothing to compare with (scripts/test.sh "
            "runs this module on PostgreSQL 15 through WAREHOUSE_TEST_SERVER_BIN)"
        )
    with temporary_server() as env:
        with psycopg.connect(
            host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"], dbname="postgres",
            autocommit=True, password=_password(env),
        ) as admin:
            admin.execute('create database "reference"')
        database = Database({**env, "PGDATABASE": "reference"})
        _cli(database, "load", str(generated_data))
        _cli(database, "build", "--vars", f"{{as_of: '{AS_OF.isoformat()}'}}")
        yield database


def _password(env: dict[str, str]) -> str | None:
    for line in Path(env["PGPASSFILE"]).read_text(encoding="utf-8").splitlines():
        if line.split(":")[3:4] == [env["PGUSER"]]:
            return line.split(":", 4)[4]
    return None


def _cli(database: Database, *args: str) -> None:
    """The warehouse CLI on the reference server (its own pgpass, not the session's)."""
    env = {**os.environ, **database.env}
    env["DBT_TARGET_PATH"] = str(ROOT / "target" / "test-reference-18")
    env["DBT_LOG_PATH"] = str(ROOT / "logs" / "test-reference-18")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("warehouse")), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def _connect(database: Database) -> psycopg.Connection:
    env = database.env
    conn = psycopg.connect(
        host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"], dbname=env["PGDATABASE"],
        password=_password(env),
    )
    conn.execute("set timezone = 'UTC'")
    return conn


def _relations(conn: psycopg.Connection) -> list[str]:
    return [
        f"{schema}.{name}" for schema, name in conn.execute(
            "select n.nspname, c.relname from pg_class as c join pg_namespace as n"
            " on n.oid = c.relnamespace where n.nspname in ('marts', 'exports')"
            " and c.relkind in ('r', 'v', 'm', 'p') order by 1, 2"
        ).fetchall()
    ]


def _rows(conn: psycopg.Connection, relation: str) -> tuple[list[str], list[tuple]]:
    """Every row, floats as floats and everything else as text, in a stable order."""
    columns = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute as a"
        " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"
        " order by a.attnum",
        (relation,),
    ).fetchall()
    volatile = VOLATILE_COLUMNS | VOLATILE_IN.get(relation, set())
    kept = [(name, kind) for name, kind in columns if name not in volatile]
    select = ", ".join(
        f'"{name}"' if kind in ("double precision", "real", "numeric") else f'"{name}"::text'
        for name, kind in kept
    )
    rows = conn.execute(f"select {select} from {relation}").fetchall()
    floats = [kind in ("double precision", "real", "numeric") for _, kind in kept]

    def order(row: tuple) -> tuple:
        return tuple(
            ("" if value is None else f"{float(value):.6g}") if is_float
            else ("" if value is None else value)
            for value, is_float in zip(row, floats, strict=True)
        )

    return [name for name, _ in kept], sorted(rows, key=order)


def _same(left: object, right: object) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, str) or isinstance(right, str):
        return left == right
    a, b = float(left), float(right)  # type: ignore[arg-type]
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=1e-12)


def test_every_mart_and_export_view_is_the_same(
    built_warehouse: Database, reference: Database
) -> None:
    with _connect(built_warehouse) as ours, _connect(reference) as theirs:
        relations = _relations(theirs)
        assert relations == _relations(ours)
        assert len(relations) > 20
        differences = []
        for relation in relations:
            names, mine = _rows(ours, relation)
            _, other = _rows(theirs, relation)
            if len(mine) != len(other):
                differences.append(f"{relation}: {len(mine)} rows here, {len(other)} on 18")
                continue
            for row, expected in zip(mine, other, strict=True):
                wrong = [
                    name for name, left, right in zip(names, row, expected, strict=True)
                    if not _same(left, right)
                ]
                if wrong:
                    differences.append(f"{relation}: {wrong} differ in {row} vs {expected}")
                    break
        assert not differences, "\n".join(differences)


def test_the_same_quarantine(built_warehouse: Database, reference: Database) -> None:
    statement = (
        "select file_name, row_number, location, raw_row, reason from raw.quarantine"
        " order by file_name, row_number"
    )
    with _connect(built_warehouse) as ours, _connect(reference) as theirs:
        mine = ours.execute(statement).fetchall()
        other = theirs.execute(statement).fetchall()
    assert len(mine) > 50
    assert mine == other
    rejected = "select file_name, reason from raw.rejected_files order by file_name"
    with _connect(built_warehouse) as ours, _connect(reference) as theirs:
        assert ours.execute(rejected).fetchall() == theirs.execute(rejected).fetchall()
