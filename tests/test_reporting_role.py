"""The read-only `reporting` role (Metabase, analysts) on the built warehouse.

Its search_path is `marts, exports`, so the analysts' unqualified queries run unchanged; it
reads marts and exports and is denied everything in raw, staging and intermediate. It logs
in with its password only (`warehouse db password reporting`).
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

ANALYST_QUERY = """
select t.year, t.month, count(*)
from fact_scenario_attempts f
join dim_time t on f.date_key = t.date_key
where not t.is_weekend
group by 1, 2
"""


def _connect_as_reporting(db, password: str) -> psycopg.Connection:
    return psycopg.connect(
        host=db.env["PGHOST"], port=db.env.get("PGPORT"), user="reporting", dbname=db.name,
        password=password, autocommit=True,
    )


def _tables(db, schema: str) -> list[str]:
    return [
        row[0] for row in db.query(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') order by 1",
            (schema,),
        )
    ]


def test_analyst_query_runs_unqualified(built_warehouse, reporting_password: str) -> None:
    with _connect_as_reporting(built_warehouse, reporting_password) as conn:
        rows = conn.execute(ANALYST_QUERY).fetchall()
        assert conn.execute("show search_path").fetchone()[0].replace(" ", "") == "marts,exports"
    expected = built_warehouse.query(
        "select t.year, t.month, count(*) from marts.fact_scenario_attempts f"
        " join marts.dim_time t on f.date_key = t.date_key where not t.is_weekend group by 1, 2"
    )
    assert sorted(rows) == sorted(expected)
    assert sum(row[2] for row in rows) > 0


def test_reads_every_mart_and_export(built_warehouse, reporting_password: str) -> None:
    with _connect_as_reporting(built_warehouse, reporting_password) as conn:
        for schema in ("marts", "exports"):
            for table in _tables(built_warehouse, schema):
                conn.execute(
                    sql.SQL("select 1 from {} limit 1").format(sql.Identifier(schema, table))
                )


@pytest.mark.parametrize("schema", ["raw", "staging", "intermediate", "snapshots", "ops"])
def test_denied_outside_marts_and_exports(
    built_warehouse, schema: str, reporting_password: str
) -> None:
    tables = _tables(built_warehouse, schema)
    if schema == "raw":
        assert {"orgs", "users", "scenarios", "attempts", "sessions", "kpi_events",
                "load_ledger", "quarantine"} <= set(tables)
    assert tables
    with _connect_as_reporting(built_warehouse, reporting_password) as conn:
        for table in tables:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    sql.SQL("select 1 from {} limit 1").format(sql.Identifier(schema, table))
                )


def test_cannot_write_marts(built_warehouse, reporting_password: str) -> None:
    with _connect_as_reporting(built_warehouse, reporting_password) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):
        conn.execute("delete from dim_orgs")


def test_star_tables_declare_keys_for_bi_tools(built_warehouse) -> None:
    """Primary keys on every dimension and fact, and (not enforced) foreign keys from the
    facts to the dimensions, so Metabase offers the joins."""
    keys = dict(built_warehouse.query(
        "select c.relname, pg_get_constraintdef(k.oid) from pg_constraint k"
        " join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'marts' and k.contype = 'p'"
    ))
    assert keys["fact_kpi_events"] == "PRIMARY KEY (id)"
    assert keys["fact_scenario_attempts"] == "PRIMARY KEY (attempt_id)"
    assert keys["fact_sessions"] == "PRIMARY KEY (session_id)"
    assert keys["fact_session_metrics"] == "PRIMARY KEY (session_id, metric)"
    for dim, column in (("dim_orgs", "org_id"), ("dim_users", "user_id"),
                        ("dim_scenarios", "scenario_id"), ("dim_time", "date_key")):
        assert keys[dim] == f"PRIMARY KEY ({column})"
    if int(built_warehouse.query("show server_version_num")[0][0]) >= 180000:
        foreign = {
            (row[0], row[1]) for row in built_warehouse.query(
                "select c.relname, r.relname from pg_constraint k"
                " join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'marts' and k.contype = 'f'"
            )
        }
    else:
        # before 18 (no NOT ENFORCED keys) the relationships are in the column comments
        foreign = {
            (table, referenced.split(".")[1]) for table, comment in built_warehouse.query(
                "select c.relname, col_description(c.oid, a.attnum) from pg_attribute a"
                " join pg_class c on c.oid = a.attrelid"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = 'marts' and a.attnum > 0"
            ) if comment for referenced in re.findall(r"References (\S+) \(", comment)
        }
        assert not built_warehouse.query(
            "select from pg_constraint k join pg_namespace n on n.oid = k.connamespace"
            " where n.nspname = 'marts' and k.contype = 'f'"
        )
    for fact in ("fact_scenario_attempts", "fact_kpi_events", "fact_sessions"):
        assert {(fact, "dim_orgs"), (fact, "dim_users"), (fact, "dim_time")} <= foreign
    assert ("fact_session_metrics", "fact_sessions") in foreign


ACCEPTED_VALUES = {
    ("dim_users", "role"): "'trainee', 'manager', 'admin'",
    ("dim_scenarios", "difficulty"): "'easy', 'medium', 'hard'",
    ("leaderboards", "period_type"): "'week', 'month'",
    ("user_session_stats", "period"): "'week', 'month'",
    ("user_metric_trends", "trend_direction"): "'improving', 'declining', 'stable'",
    ("user_metric_trends", "trend_strength"): "'strong', 'moderate', 'weak'",
    ("user_metric_patterns", "pattern"):
        "'volatile', 'rapid_improvement', 'consistent_improvement', 'declining', 'plateau', 'none'",
    ("user_comparisons", "comparison"): "'baseline', 'last_week', 'last_month', 'peak'",
    ("user_predictions", "horizon"): "'next_week', 'next_month', 'next_quarter'",
    ("user_best_worst_sessions", "kind"): "'best', 'worst'",
    ("data_completeness", "stream"):
        "'orgs', 'users', 'scenarios', 'attempts', 'sessions', 'kpi_events'",
}
# The contract's six voice metrics (marts.md). The warehouse declares them once, in seed
# metric_definitions; these marts' metric column has the domain the seed's post-hook writes.
CONTRACT_METRICS = {"pace", "pitch", "volume", "pauses", "clarity", "confidence"}
METRIC_TABLES = (
    "user_metric_stats", "user_metric_trends", "user_metric_patterns", "user_comparisons",
    "user_predictions",
)


def test_category_columns_accept_only_their_values(built_warehouse) -> None:
    """The marts' category columns carry check constraints (the database refuses any other
    value on every write), and every row built meets them."""
    declared = {
        (row[0], row[1]): row[2] for row in built_warehouse.query(
            "select c.relname, a.attname, pg_get_constraintdef(k.oid) from pg_constraint k"
            " join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace"
            " join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any(k.conkey)"
            " where n.nspname = 'marts' and k.contype = 'c'"
        )
    }
    for (table, column), values in ACCEPTED_VALUES.items():
        definition = declared[(table, column)]
        expected = {value.strip(" '") for value in values.split(",")}
        assert set(re.findall(r"'([^']*)'::text", definition)) == expected, definition
        outside = built_warehouse.query(
            f"select count(*) from marts.{table} where {column} <> all(%s)", (sorted(expected),)
        )[0][0]
        assert outside == 0
    with built_warehouse.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update marts.dim_scenarios set difficulty = 'extreme'")


def test_metric_columns_accept_only_the_seeds_metrics(built_warehouse) -> None:
    """The metric column of each user-analytics mart has the domain marts.voice_metric,
    whose one check constraint lists exactly the metrics of seed metric_definitions (the
    contract's six): the database refuses any other metric on every write."""
    seed = {row[0] for row in built_warehouse.query("select metric from marts.metric_definitions")}
    assert seed == CONTRACT_METRICS
    checks = built_warehouse.query(
        "select pg_get_constraintdef(k.oid), k.convalidated from pg_constraint k"
        " where k.contypid = 'marts.voice_metric'::regtype and k.contype = 'c'"
    )
    assert len(checks) == 1 and checks[0][1], checks
    assert set(re.findall(r"'([^']*)'::text", checks[0][0])) == seed, checks[0][0]
    types = dict(built_warehouse.query(
        "select a.attrelid::regclass::text, a.atttypid::regtype::text from pg_attribute a"
        " where a.attname = 'metric' and a.attrelid = any(%s::regclass[])",
        ([f"marts.{table}" for table in METRIC_TABLES],),
    ))
    assert types == {f"marts.{table}": "marts.voice_metric" for table in METRIC_TABLES}
    for table in METRIC_TABLES:
        outside, rows = built_warehouse.query(
            f"select count(*) filter (where metric <> all(%s)), count(*) from marts.{table}",
            (sorted(seed),),
        )[0]
        assert outside == 0 and rows > 0, (table, outside, rows)
        with built_warehouse.connect() as conn:
            # a metric of the seed is accepted (rolled back: the warehouse stays as built)
            updated = conn.execute(
                f"update marts.{table} set metric = metric"
                f" where ctid = (select ctid from marts.{table} limit 1)"
            ).rowcount
            conn.rollback()
        assert updated == 1
        with built_warehouse.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                f"update marts.{table} set metric = 'loudness'"
                f" where ctid = (select ctid from marts.{table} limit 1)"
            )
