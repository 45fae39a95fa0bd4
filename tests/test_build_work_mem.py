"""No statement of a build degrades to a quadratic plan when its data outgrows work_mem.

An `(a, b) in (select ...)` is a hashed subplan only while the subquery's rows fit in
`work_mem`; beyond that PostgreSQL re-scans the subquery's materialised rows for every
outer row. The first incremental build of a new deployment (a backfill: every load inside
the lookback window) is where that bites. Here the KPI-event models are built with
`work_mem = 64kB` on loads whose event keys need megabytes: the incremental build must
finish within a statement timeout that a quadratic plan cannot meet, and give the rows a
full refresh gives.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import AS_OF, Database

EVENTS = 20_000  # per load: ~1 MB of (event id, load id) keys, 16 times work_mem
REDELIVERED = 2_000  # events of the first load delivered again in the second
SELECT = ("--select", "+int_quality_expected_events_by_load")
SMALL_WORK_MEM = {"PGOPTIONS": "-c work_mem=64kB -c statement_timeout=30s"}
HEADER = (
    "event_id,attempt_id,session_id,org_id,user_id,scenario_id,event_type,event_value,"
    "timestamp_ms,occurred_at\n"
)
ORGS = ("11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002")


def _event(index: int) -> str:
    return (
        f"{index:08x}-0000-4000-8000-00000000e000,{index // 20:08x}-0000-4000-8000-00000000a000,,"
        f"{ORGS[index % 2]},user_{index % 300},,filler_word,,{index % 80_000},"
        f"2026-11-{1 + index % 18:02d}T10:00:00Z\n"
    )


def _write(path: Path, indexes: range | list[int]) -> Path:
    path.write_text(HEADER + "".join(_event(index) for index in indexes))
    return path


def _rows(db: Database) -> dict[str, list[tuple]]:
    return {
        "int_quality_expected_events_by_load": db.query(
            "select _load_id, org_id, user_id, records_expected"
            " from intermediate.int_quality_expected_events_by_load order by 1, 2, 3"),
        "fact_kpi_events": db.query(
            "select org_id, id, _load_id from marts.fact_kpi_events order by 1, 2"),
    }


def test_incremental_build_with_tiny_work_mem(fresh_database: Database, tmp_path: Path):
    db = fresh_database
    vars_ = ("--vars", f"{{as_of: '{AS_OF.isoformat()}'}}")
    db.warehouse("load", str(_write(tmp_path / "kpi_events_1.csv", range(EVENTS))))
    # the whole project once (the run-end hooks read every mart), then only the KPI chain
    db.warehouse("build", *vars_)
    # the second load (new events and re-deliveries) lies inside the lookback window with
    # the first: the incremental build re-reads both, 42,000 deliveries against the fact
    second = [*range(EVENTS, 2 * EVENTS), *range(0, EVENTS, EVENTS // REDELIVERED)]
    db.warehouse("load", str(_write(tmp_path / "kpi_events_2.csv", second)))
    started = time.monotonic()
    db.warehouse("build", *SELECT, *vars_, extra_env=SMALL_WORK_MEM)
    incremental_s = time.monotonic() - started
    incremental = _rows(db)
    db.warehouse("build", *SELECT, *vars_, "--full-refresh", extra_env=SMALL_WORK_MEM)
    assert _rows(db) == incremental
    expected = incremental["int_quality_expected_events_by_load"]
    # each event counts once, for the load the marts kept it from (its first delivery)
    assert sum(row[3] for row in expected) == 2 * EVENTS
    assert {row[0] for row in expected} == {
        load_id for (load_id,) in db.query("select load_id from raw.load_ledger")}
    assert len(incremental["fact_kpi_events"]) == 2 * EVENTS
    assert incremental_s < 120, f"the incremental build took {incremental_s:.0f} s"
