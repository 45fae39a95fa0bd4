"""Organisation roles, the BI roles' guard rails and the builds' lock timeout (cli.md, Access;
docs/connecting.md), on a warehouse of this module's own with two organisations.

An organisation role made by `warehouse access org ORG_ID --role NAME` reads the marts and
export views with org_id (row-level security, security-invoker views) and the shared
relations (calendar, definitions), never another organisation's row; its figures are
reporting's filtered to its organisation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import (
    AS_OF,
    DATA_SEED,
    Database,
    _create_database,
    _drop_database,
    password_from,
)
from psycopg import sql

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

ORG_ROLE = f"org_reader_{os.getpid()}"
SHARED = {"marts.dim_time", "marts.metric_definitions", "marts.event_types",
          "marts.milestone_definitions", "exports.export_metadata"}
NOT_GRANTED = {"marts.data_completeness"}
DENIED_SCHEMAS = ("raw", "staging", "intermediate", "snapshots", "ops")
RELATIONS = """
    select n.nspname, c.relname, exists (
        select from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id'
    )
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')
    order by 1, 2
"""


def _connect(db: Database, role: str, password: str) -> psycopg.Connection:
    return psycopg.connect(host=db.env["PGHOST"], port=db.env.get("PGPORT"), dbname=db.name,
                           user=role, password=password, autocommit=True)


def _relations(db: Database, *schemas: str) -> list[tuple[str, bool]]:
    return [(f"{schema}.{name}", has_org)
            for schema, name, has_org in db.query(RELATIONS, (list(schemas),))]


def _digest(conn: psycopg.Connection, relation: str, where: str = "") -> tuple[int, str]:
    """Rows and a digest of their text (`exported_at`, the time of the query, left out)."""
    schema, name = relation.split(".")
    query = sql.SQL(
        "select count(*), coalesce(md5(string_agg(r, '|' order by r)), '')"
        " from {} as t, lateral (select (to_jsonb(t) - 'exported_at')::text as r) as j "
        + where
    ).format(sql.Identifier(schema, name))
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.fixture(scope="module")
def warehouse_db(server_env: dict[str, str], tmp_path_factory) -> Iterator[Database]:
    """Generated data with two organisations (the session's warehouse has one), loaded and
    built; the session warehouse must stay read-only."""
    from warehouse.generate import generate

    data = tmp_path_factory.mktemp("two-orgs")
    generate(data, scale=0.7, seed=DATA_SEED, as_of=AS_OF)
    name = f"t_access_{os.getpid()}"
    database = _create_database(server_env, name)
    database.warehouse("load", str(data), check=False)
    database.build()
    yield database
    _drop_database(server_env, name)


@pytest.fixture(scope="module")
def organisations(warehouse_db: Database) -> list[str]:
    orgs = [row[0] for row in warehouse_db.query(
        "select org_id::text from marts.dim_orgs order by org_id")]
    assert len(orgs) == 2
    return orgs


@pytest.fixture(scope="module")
def org_role(warehouse_db: Database, organisations: list[str]) -> Iterator[tuple[str, str]]:
    """ORG_ROLE reading the first organisation; (org_id, password)."""
    org = organisations[0]
    result = warehouse_db.warehouse("access", "org", org, "--role", ORG_ROLE)
    assert result.stdout.startswith(f"{ORG_ROLE} reads organisation {org}'s rows; its "
                                    "password is in "), result.stdout
    yield org, password_from(result.stdout)
    warehouse_db.warehouse("access", "revoke", ORG_ROLE, check=False)


def test_org_role_reads_its_rows_and_shared_relations_only(
    warehouse_db: Database, org_role: tuple[str, str], reporting_password: str
) -> None:
    org, password = org_role
    relations = _relations(warehouse_db, "marts", "exports")
    with_org = [name for name, has_org in relations if has_org]
    assert {"marts.fact_kpi_events", "marts.dim_orgs", "exports.attempts"} <= set(with_org)
    assert {name for name, has_org in relations if not has_org} == SHARED | NOT_GRANTED
    with _connect(warehouse_db, ORG_ROLE, password) as mine, _connect(
        warehouse_db, "reporting", reporting_password
    ) as reporting:
        for relation in with_org:
            others = _digest(mine, relation, f"where t.org_id is distinct from '{org}'")
            assert others == (0, ""), relation
            own = _digest(mine, relation)
            assert own == _digest(reporting, relation, f"where t.org_id = '{org}'"), relation
        for relation in SHARED:
            assert _digest(mine, relation) == _digest(reporting, relation), relation
        assert _digest(mine, "marts.fact_sessions")[0] > 0
        assert _digest(mine, "marts.dim_orgs")[0] == 1
        for relation in sorted(NOT_GRANTED) + [
            name for name, _ in _relations(warehouse_db, *DENIED_SCHEMAS)
        ]:
            schema, name = relation.split(".")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                mine.execute(sql.SQL("select from {} limit 1").format(
                    sql.Identifier(schema, name)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mine.execute("delete from marts.fact_sessions")


def _settings(conn: psycopg.Connection) -> tuple[str, ...]:
    return tuple(
        conn.execute(sql.SQL("show {}").format(sql.Identifier(name))).fetchone()[0]
        for name in ("search_path", "TimeZone", "statement_timeout", "lock_timeout",
                     "idle_in_transaction_session_timeout")
    )


DEFAULTS = ("marts, exports", "UTC", "5min", "10s", "2min")


def test_bi_roles_get_guard_rails_and_cannot_change_them_for_everyone(
    warehouse_db: Database, org_role: tuple[str, str], reporting_password: str
) -> None:
    _, password = org_role
    with _connect(warehouse_db, ORG_ROLE, password) as conn:
        assert _settings(conn) == DEFAULTS
    version = int(warehouse_db.query("show server_version_num")[0][0])
    try:
        with _connect(warehouse_db, "reporting", reporting_password) as conn:
            assert _settings(conn) == DEFAULTS
            # PostgreSQL lets any role set its own defaults...
            conn.execute("alter role reporting set search_path = public")
            conn.execute("alter role reporting set statement_timeout = 0")
            conn.execute(sql.SQL("alter role reporting in database {} set lock_timeout = 0")
                         .format(sql.Identifier(warehouse_db.name)))
            # ... but not another role's
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"alter role {ORG_ROLE} set statement_timeout = 0")
        if version >= 170000:
            # the warehouse's login trigger gives every session its settings back
            with _connect(warehouse_db, "reporting", reporting_password) as conn:
                assert _settings(conn) == DEFAULTS
    finally:
        # and every build (or `warehouse access`) resets the role's own defaults
        warehouse_db.query("select ops.apply_access()")
    assert warehouse_db.query(
        "select setdatabase = 0, array_to_string(setconfig, ';') from pg_db_role_setting"
        " where setrole = 'reporting'::regrole and setdatabase in (0, ("
        "select oid from pg_database where datname = current_database()))"
    ) == [(False, "search_path=marts, exports;TimeZone=UTC;statement_timeout=5min;"
           "lock_timeout=10s;idle_in_transaction_session_timeout=2min")]


def test_timeouts_are_settable_and_enforced(
    warehouse_db: Database, org_role: tuple[str, str]
) -> None:
    org, password = org_role
    result = warehouse_db.warehouse("access", "timeouts", ORG_ROLE, "--idle-timeout", "1s",
                                       "--statement-timeout", "90s")
    try:
        (name,) = warehouse_db.query(
            "select name from marts.dim_orgs where org_id = %s", (org,))[0]
        assert result.stdout == (
            f"{ORG_ROLE}: organisation {org} ({name}); statement_timeout 90s, lock_timeout 10s,"
            " idle_in_transaction_session_timeout 1s\n"
        )
        with _connect(warehouse_db, ORG_ROLE, password) as conn:
            assert _settings(conn) == ("marts, exports", "UTC", "90s", "10s", "1s")
            conn.autocommit = False
            conn.execute("select count(*) from fact_sessions")
            time.sleep(2.5)
            # a forgotten open transaction is ended by the server
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                conn.execute("select 1")
        bad = warehouse_db.warehouse("access", "timeouts", ORG_ROLE, "--lock-timeout",
                                        "soon", check=False)
        assert bad.returncode == 1
        assert "lock_timeout 'soon': invalid value" in bad.stderr
    finally:
        warehouse_db.warehouse("access", "timeouts", ORG_ROLE, "--idle-timeout", "2min",
                                  "--statement-timeout", "5min")


def test_access_list_and_revoke(warehouse_db: Database, organisations: list[str]) -> None:
    role = f"{ORG_ROLE}_b"
    org = organisations[1]
    created = warehouse_db.warehouse("access", "org", org, "--role", role,
                                        "--statement-timeout", "1min")
    password = password_from(created.stdout)
    listed = warehouse_db.warehouse("access", "list").stdout.splitlines()
    assert listed[0] == ("reporting: every organisation; statement_timeout 5min, lock_timeout "
                         "10s, idle_in_transaction_session_timeout 2min")
    (line,) = [item for item in listed if item.startswith(f"{role}: ")]
    assert line.startswith(f"{role}: organisation {org} (")
    assert line.endswith("statement_timeout 1min, lock_timeout 10s, "
                         "idle_in_transaction_session_timeout 2min")
    with _connect(warehouse_db, role, password) as conn:
        assert conn.execute("select array_agg(distinct org_id::text) from dim_users"
                            ).fetchone() == ([org],)
    # again: the role is updated, its password kept
    again = warehouse_db.warehouse("access", "org", org, "--role", role)
    assert again.stdout == f"{role} reads organisation {org}'s rows\n"
    revoked = warehouse_db.warehouse("access", "revoke", role)
    assert revoked.stdout == f"{role} dropped\n"
    assert warehouse_db.query("select count(*) from pg_roles where rolname = %s",
                                 (role,)) == [(0,)]
    with pytest.raises(psycopg.OperationalError):
        _connect(warehouse_db, role, password)
    for refused in (("access", "revoke", "reporting"), ("access", "org", org, "--role",
                                                         "postgres")):
        result = warehouse_db.warehouse(*refused, check=False)
        assert result.returncode == 1 and "Error: " in result.stderr, refused


@pytest.mark.skipif(
    bool(os.environ.get("WAREHOUSE_TEST_SERVER_BIN")),
    reason="the embedded server's own pgpass bookkeeping (an external server's is the user's)",
)
def test_shell_and_url_honour_pguser(warehouse_db: Database, reporting_password: str) -> None:
    env = {"PGUSER": "reporting"}
    shell = warehouse_db.warehouse("db", "shell", "-XAtc", "select current_user",
                                      extra_env=env)
    assert shell.stdout == "reporting\n"
    role = warehouse_db.warehouse("db", "shell", "--role", "reporting", "-XAtc",
                                     "select current_user")
    assert role.stdout == "reporting\n"
    url = warehouse_db.warehouse("db", "url", "--url-only", extra_env=env).stdout.strip()
    with psycopg.connect(url, password=reporting_password) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == (
            "reporting", warehouse_db.name)


def test_build_gives_up_waiting_for_a_lock_with_a_clear_message(
    warehouse_db: Database,
) -> None:
    with warehouse_db.connect() as holder:
        holder.execute("lock table marts.dim_orgs in access exclusive mode")
        result = warehouse_db.build("--select", "dim_orgs", check=False,
                                       extra_env={"WAREHOUSE_BUILD_LOCK_TIMEOUT": "1s"})
        holder.rollback()
    assert result.returncode == 1
    assert ("warehouse: model.training_warehouse.dim_orgs waited 1s for a lock another "
            "session holds") in result.stderr, result.stderr[-3000:]
