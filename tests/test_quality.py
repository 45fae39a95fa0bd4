"""The data-quality suite: `warehouse check` passes on the built warehouse and fails, with
a readable report, on a deliberately broken copy of it.

The broken copy is a `fresh_database` re-created from the built warehouse as a template
(a file copy: no second load or build).
"""

from __future__ import annotations

import time

import psycopg
import pytest
from conftest import AS_OF, ROOT, Database

VARS = f"{{as_of: '{AS_OF.isoformat()}'}}"


def clone(source: Database, target: Database) -> Database:
    """Re-create `target` as a copy of `source` (CREATE DATABASE ... TEMPLATE)."""
    env = target.env
    for attempt in range(20):
        try:
            with psycopg.connect(host=env["PGHOST"], port=env.get("PGPORT"),
                                 user=env.get("PGUSER"), dbname="postgres",
                                 autocommit=True) as admin:
                admin.execute(f'drop database if exists "{target.name}" with (force)')
                admin.execute(f'create database "{target.name}" template "{source.name}"')
            return target
        except psycopg.errors.ObjectInUse:
            # the template's last connection may still be closing
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError(f"could not copy {source.name}")


def test_check_passes_on_the_built_warehouse(built_warehouse):
    result = built_warehouse.warehouse("check", "--vars", VARS)
    report = result.stdout
    assert "result: OK" in report
    for part in ("dbt test", "source freshness", "Great Expectations"):
        assert part in report
    target = ROOT / "target" / f"test-{built_warehouse.name}"
    assert (target / "gx_docs" / "index.html").exists()
    assert (target / "static_index.html").exists()
    completeness = built_warehouse.query(
        "select stream, rows_read, rows_loaded, rows_quarantined, rows_expected,"
        " rows_in_marts, completeness_pct from marts.data_completeness order by stream")
    assert [row[0] for row in completeness] == sorted(
        ["orgs", "users", "scenarios", "attempts", "sessions", "kpi_events"])
    for _stream, read, loaded, quarantined, expected, in_marts, pct in completeness:
        assert read == loaded + quarantined
        assert in_marts == expected and pct == 100
    (users, metadata_rows) = built_warehouse.query(
        "select (select count(*) from marts.dim_users),"
        " (select count(*) from marts.user_data_metadata)")[0]
    assert users == metadata_rows


def _dbt_test(db: Database, *selectors: str):
    return db.warehouse("dbt", "test", "--vars", VARS, "--select", *selectors, check=False)


def test_quality_tests_fail_on_a_broken_copy(built_warehouse, fresh_database):
    broken = clone(built_warehouse, fresh_database)
    with broken.connect(autocommit=True) as conn:
        # records lost between staging and the fact ...
        conn.execute(
            "delete from marts.fact_sessions where session_id in"
            " (select session_id from marts.fact_sessions order by session_id limit 5)")
        # ... and raw rows gone behind the load ledger's back
        conn.execute(
            "delete from raw.attempts where _load_id = (select min(_load_id) from raw.attempts)"
            " and _row_number in (select _row_number from raw.attempts"
            "   where _load_id = (select min(_load_id) from raw.attempts) limit 3)")

    broken.warehouse(
        "dbt", "run", "--vars", VARS,
        "--select", "int_quality_expected_records", "data_completeness",
    )
    ((pct, expected, in_marts),) = broken.query(
        "select completeness_pct, rows_expected, rows_in_marts from marts.data_completeness"
        " where stream = 'sessions'")
    assert in_marts == expected - 5
    assert pct == pytest.approx(100.0 * (expected - 5) / expected)

    check = broken.warehouse("check", "--no-docs", "--vars", VARS, check=False)
    report = check.stdout
    assert check.returncode == 1, report[-3000:]
    assert "FAIL  assert_loaded_records_reach_marts: 5 failing rows" in report
    assert "FAIL  assert_marts_complete: 2 failing rows" in report
    # the attempts file of the lowest load no longer balances with raw
    assert "FAIL  assert_ledger_rows_balance: 1 failing rows" in report
    # GX reports the incomplete stream as a warning only
    assert "WARN  marts.data_completeness: completeness_pct in [100, 100]" in report
    assert "result: FAILED" in report


def test_orphan_events_warn_but_do_not_fail(built_warehouse, fresh_database):
    copy = clone(built_warehouse, fresh_database)
    with copy.connect(autocommit=True) as conn:
        (events,) = conn.execute("select count(*) from raw.kpi_events").fetchone()
        # 5 % of the events again, with new ids and attempts nobody delivered
        conn.execute(
            """
            insert into raw.kpi_events (event_id, attempt_id, session_id, org_id, user_id,
                scenario_id, event_type, event_value, timestamp_ms, occurred_at, _extra,
                _load_id, _row_number)
            select gen_random_uuid(), gen_random_uuid(), session_id, org_id, user_id,
                scenario_id, event_type, event_value, timestamp_ms, occurred_at, _extra,
                _load_id, _row_number
            from raw.kpi_events
            order by event_id
            limit %s
            """,
            (max(1, events // 20),),
        )
    orphans = _dbt_test(copy, "assert_orphan_events_within_tolerance")
    assert orphans.returncode == 0, orphans.stdout[-3000:]
    assert "WARN 1" in orphans.stdout


def test_gx_url_for_a_socket(monkeypatch):
    from warehouse.check import sqlalchemy_url

    monkeypatch.setenv("PGHOST", "/tmp/some socket")
    monkeypatch.setenv("PGPORT", "5433")
    monkeypatch.setenv("PGUSER", "ana")
    monkeypatch.setenv("PGDATABASE", "wh")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert sqlalchemy_url() == (
        "postgresql+psycopg2://ana@localhost/wh?host=/tmp/some%20socket&port=5433")
    monkeypatch.setenv("PGHOST", "db.example.com")
    monkeypatch.setenv("PGPASSWORD", "p@ss")
    assert sqlalchemy_url() == "postgresql+psycopg2://ana:p%40ss@db.example.com:5433/wh"


def test_report_summary_is_readable():
    from warehouse.check import CheckReport, Outcome

    report = CheckReport([
        Outcome("dbt test", "unique_fact_sessions_session_id", "pass"),
        Outcome("dbt test", "assert_orphan_events_within_tolerance", "warn", "1 failing rows"),
        Outcome("Great Expectations", "exports.attempts: score in [0, 100]", "fail",
                "3 unexpected values"),
    ], seconds=12)
    text = report.summary()
    assert "dbt test" in text and "1 passed, 1 warnings, 0 failed" in text
    assert "FAIL  exports.attempts: score in [0, 100]: 3 unexpected values" in text
    assert "result: FAILED (1 error-severity failures), 1 warnings" in text
    assert not report.ok

