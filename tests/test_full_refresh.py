"""Incremental builds give exactly the rows of a full refresh.

Generated data arrives in two batches: the first holds back the second attempts file (so
KPI events arrive before their attempt), the re-deliveries and the last KPI file; the
second brings them plus a few crafted late files - a completed attempt re-delivered as
abandoned, a session re-delivered without its pace, an event delivered again with other
content - and records that move: an attempt re-delivered under another organisation (its
KPI events lose their attempt time), a user moving team, a session moving to another user,
a scenario changing difficulty. After the incremental build (lookback_days 0, so only the
new loads are read) every star-schema, reporting and KPI table must equal, row for row,
what `--full-refresh` builds; a further build whose lookback window re-reads every load
must change nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from conftest import AS_OF, ROOT, Database

SCALE = 0.3
SEED = 11
SELECT = ("--select", "+marts", "+exports")
TABLES = (
    "marts.dim_orgs", "marts.dim_users", "marts.dim_scenarios", "marts.dim_time",
    "marts.fact_scenario_attempts", "marts.fact_kpi_events", "marts.fact_sessions",
    "marts.fact_session_metrics", "marts.mv_leaderboard_month", "marts.mv_org_overview",
    "marts.mv_scenario_insights", "marts.leaderboards", "marts.team_weekly_digest",
    "marts.kpi_attempt_summary", "marts.kpi_weekly_trends", "marts.kpi_event_heatmap",
    "intermediate.int_kpi_attempt_event_counts", "intermediate.int_kpi_minute_counts_by_load",
    # entity-incremental (strategy replace_batch): only the touched users / orgs recomputed
    "intermediate.int_user_metric_series", "intermediate.int_user_metric_regression",
    "intermediate.int_user_local_sessions", "intermediate.int_user_streaks",
    "marts.user_metric_stats", "marts.user_metric_trends", "marts.user_metric_patterns",
    "marts.user_consistency", "marts.user_practice_habits", "marts.user_comparisons",
    "marts.user_predictions", "marts.user_best_worst_sessions", "marts.user_milestones",
    "marts.user_feedback_summary", "marts.user_recommendations_summary",
    "marts.user_session_stats", "marts.user_topics", "marts.user_focus_areas",
    "marts.data_completeness", "marts.user_data_metadata",
    "intermediate.int_quality_expected_records",
    "intermediate.int_quality_expected_events_by_load",
    "exports.attempts", "exports.sessions", "exports.kpi_events", "exports.user_summary",
)


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _later(stamp: str) -> str:
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment + dt.timedelta(days=1)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, object]:
    return make_batches(tmp_path_factory)


def make_batches(tmp_path_factory) -> dict[str, object]:
    """The two batches of files (and the records the crafted late files change); also used
    by test_citus.py."""
    from warehouse.generate import generate

    generated = tmp_path_factory.mktemp("full_refresh_data")
    generate(generated, scale=SCALE, seed=SEED, formats="csv", as_of=AS_OF)
    first = tmp_path_factory.mktemp("batch1")
    second = tmp_path_factory.mktemp("batch2")
    files = sorted(p for p in generated.iterdir() if p.suffix == ".csv")
    kpi_files = [p for p in files if p.name.startswith("kpi_events")]
    attempt_files = [p for p in files if p.name.startswith("attempts") and "9001" not in p.name]
    held_back = {attempt_files[-1], kpi_files[-1]}
    for path in files:
        late = path in held_back or "redelivery" in path.name
        shutil.copy(path, (second if late else first) / path.name)

    header, attempts = _rows(attempt_files[0])
    retracted = next(
        row for row in attempts
        if row["status"] == "completed" and _is_uuid(row["attempt_id"]) and row["updated_at"]
    )
    _write(second / "attempts_9901_retracted.csv", header, [
        {**retracted, "status": "abandoned", "score": "",
         "updated_at": _later(retracted["updated_at"])},
    ])
    session_file = next(p for p in files if p.name.startswith("sessions"))
    header, sessions = _rows(session_file)
    nulled = next(
        row for row in sessions
        if row["pace_wpm"] and _is_uuid(row["session_id"]) and row["user_id"]
        and row["updated_at"]
    )
    _write(second / "sessions_9901_no_pace.csv", header, [
        {**nulled, "pace_wpm": "", "updated_at": _later(nulled["updated_at"])},
    ])
    header, events = _rows(kpi_files[0])
    duplicate = next(
        row for row in events if _is_uuid(row["event_id"]) and row["event_type"] != "interruption"
    )
    _write(second / "kpi_events_9901_again.csv", header, [
        {**duplicate, "event_type": "interruption"},
    ])

    # records that move
    header, attempts = _rows(attempt_files[0])
    timed_by_attempt = {
        row["attempt_id"] for row in events if not row["occurred_at"] and _is_uuid(row["org_id"])
    }
    org_header, org_rows = _rows(next(p for p in files if p.name == "orgs.csv"))
    moved_attempt = next(
        row for row in attempts
        if row["attempt_id"] in timed_by_attempt and row["status"] == "completed"
        and row["updated_at"] and row["attempt_id"] != retracted["attempt_id"]
    )
    # a new organisation (the generated data has one at this scale) takes the attempt over
    other_org = "0e0e0e0e-0000-4000-8000-000000009902"
    template = next(row for row in org_rows if _is_uuid(row["org_id"]))
    _write(second / "orgs_9902_new.csv", org_header, [
        {**template, "org_id": other_org, "name": "Acquiring Org"},
    ])
    _write(second / "attempts_9902_moved_org.csv", header, [
        {**moved_attempt, "org_id": other_org, "updated_at": _later(moved_attempt["updated_at"])},
    ])
    header, users = _rows(next(p for p in files if p.name == "users.csv"))
    teams = sorted({row["team"] for row in users if row["team"]})
    mover = next(
        row for row in users if row["team"] and row["updated_at"] and row["role"] == "trainee"
    )
    new_team = next(team for team in teams if team != mover["team"])
    _write(second / "users_9902_new_team.csv", header, [
        {**mover, "team": new_team, "updated_at": _later(mover["updated_at"])},
    ])
    moved_session = next(
        row for row in sessions
        if _is_uuid(row["session_id"]) and row["user_id"] and row["updated_at"]
        and row["session_id"] != nulled["session_id"]
    )
    new_owner = next(
        row["user_id"] for row in sessions
        if row["org_id"] == moved_session["org_id"] and row["user_id"]
        and row["user_id"] != moved_session["user_id"]
    )
    header, _ = _rows(session_file)
    _write(second / "sessions_9902_new_user.csv", header, [
        {**moved_session, "user_id": new_owner, "updated_at": _later(moved_session["updated_at"])},
    ])
    header, scenarios = _rows(next(p for p in files if p.name == "scenarios.csv"))
    harder = next(
        row for row in scenarios
        if row["difficulty"] == "easy" and _is_uuid(row["scenario_id"]) and row["updated_at"]
    )
    _write(second / "scenarios_9902_harder.csv", header, [
        {**harder, "difficulty": "hard", "updated_at": _later(harder["updated_at"])},
    ])
    return {
        "first": first, "second": second, "retracted": retracted["attempt_id"],
        "nulled": nulled["session_id"], "duplicate": duplicate,
        "moved_attempt": moved_attempt, "other_org": other_org, "mover": mover,
        "new_team": new_team, "moved_session": moved_session, "new_owner": new_owner,
        "harder": harder,
    }


def _build(
    database: Database, *extra: str, as_of: dt.date = AS_OF, lookback_days: int = 0
) -> None:
    database.warehouse(
        "build", "--vars",
        # batch_max_share and batch_records_max_share 1: the batch path (touched entities
        # only, their records' versions ranked through the record-key filter) is taken
        # whatever the second batch's size, the path a daily load touching few users takes
        f"{{as_of: '{as_of.isoformat()}', lookback_days: {lookback_days},"
        " batch_max_share: 1, batch_records_max_share: 1}", *SELECT, *extra,
    )


def _fingerprints(database: Database) -> dict[str, tuple[int, str]]:
    prints = {}
    for table in TABLES:
        count, digest = database.query(
            f"select count(*), md5(coalesce(string_agg(t::text, e'\\n' order by t::text), ''))"
            f" from {table} as t"
        )[0]
        prints[table] = (count, digest)
    return prints


def test_incremental_equals_full_refresh(fresh_database: Database, batches) -> None:
    db = fresh_database
    db.warehouse("load", str(batches["first"]))
    # a week earlier: the second build must recompute every figure relative to as_of
    _build(db, as_of=AS_OF - dt.timedelta(days=7))
    unresolved_before = db.query(
        "select count(*) from marts.fact_kpi_events where occurred_at_source = 'unresolved'"
    )[0][0]

    db.warehouse("load", str(batches["second"]))
    _build(db)
    incremental = _fingerprints(db)

    # the second build took the batch path (only the touched users), except where as_of
    # moved: figures relative to it were recomputed for everyone
    executed = ROOT / "target" / f"test-{db.name}" / "run" / "training_warehouse" / "models"
    stats_sql = (executed / "marts" / "analytics" / "user_metric_stats.sql").read_text()
    habits_sql = (executed / "marts" / "analytics" / "user_practice_habits.sql").read_text()
    batch_filter = "user_id = any(array(select touched.user_id from"
    assert batch_filter in stats_sql and "int_batch_users" in stats_sql
    assert batch_filter not in habits_sql
    # ... ranking only the versions of the touched users' and orgs' records
    compiled = executed.parents[2] / "compiled" / "training_warehouse" / "models"
    expected_sql = (compiled / "intermediate" / "int_quality_expected_records.sql").read_text()
    trends_sql = (compiled / "marts" / "kpi" / "kpi_weekly_trends.sql").read_text()
    assert "session_id = any(array(" in expected_sql and "attempt_id = any(array(" in expected_sql
    assert "attempt_id = any(array(" in trends_sql
    touched_users = {row[0] for row in db.query(
        "select user_id from intermediate.int_batch_users"
    )}
    assert {batches["mover"]["user_id"], batches["moved_session"]["user_id"],
            batches["new_owner"]} <= touched_users
    moved = batches["moved_attempt"]
    assert {moved["org_id"], batches["other_org"]} <= {
        row[0] for row in db.query("select org_id::text from intermediate.int_batch_orgs")
    }

    # records that moved moved, incrementally
    assert db.query(
        "select distinct occurred_at_source from marts.fact_kpi_events"
        " where attempt_id = %s and org_id = %s and occurred_at_source != 'event'",
        (moved["attempt_id"], moved["org_id"]),
    ) == [("unresolved",)], "events left behind by an attempt that moved org lose its time"
    assert db.query(
        "select org_id::text from marts.fact_scenario_attempts where attempt_id = %s",
        (moved["attempt_id"],),
    ) == [(batches["other_org"],)]
    assert db.query(
        "select team from marts.dim_users where user_id = %s", (batches["mover"]["user_id"],)
    ) == [(batches["new_team"],)]
    assert {row[0] for row in db.query(
        "select distinct team from marts.leaderboards where user_id = %s",
        (batches["mover"]["user_id"],),
    )} <= {batches["new_team"]}
    assert db.query(
        "select user_id from marts.fact_sessions where session_id = %s",
        (batches["moved_session"]["session_id"],),
    ) == [(batches["new_owner"],)]
    assert db.query(
        "select difficulty from marts.dim_scenarios where scenario_id = %s",
        (batches["harder"]["scenario_id"],),
    ) == [("hard",)]
    assert {row[0] for row in db.query(
        "select distinct scenario_difficulty from exports.attempts where scenario_id = %s",
        (batches["harder"]["scenario_id"],),
    )} <= {"hard"}

    # the late files did what they should, incrementally
    assert not db.query(
        "select 1 from marts.fact_scenario_attempts where attempt_id = %s",
        (batches["retracted"],),
    ), "an attempt re-delivered as abandoned must leave fact_scenario_attempts"
    metrics = {row[0] for row in db.query(
        "select metric from marts.fact_session_metrics where session_id = %s",
        (batches["nulled"],),
    )}
    assert metrics and "pace" not in metrics
    duplicate = batches["duplicate"]
    assert db.query(
        "select event_type from marts.fact_kpi_events where id = %s", (duplicate["event_id"],)
    ) == [(duplicate["event_type"],)], "the first loaded version of an event wins"
    unresolved_after = db.query(
        "select count(*) from marts.fact_kpi_events where occurred_at_source = 'unresolved'"
    )[0][0]
    assert unresolved_after < unresolved_before, "late attempts resolve their events' time"

    # a run with nothing new, every load inside the lookback window (as a cron run the days
    # after a backfill): every load is taken already, so nothing is read again ...
    _build(db, lookback_days=30)
    after = _fingerprints(db)
    changed = [table for table in TABLES if after[table] != incremental[table]]
    assert not changed, f"a build with nothing new changed rows of {changed}"
    fact_sql = (compiled / "marts" / "core" / "fact_kpi_events.sql").read_text()
    assert "_load_id in (null)" in fact_sql, "a load already taken was read again"
    assert db.query("select count(*) from intermediate.int_batch_loads") == [(0,)]
    kpi_loads = [row[0] for row in db.query(
        "select load_id from raw.load_ledger where stream = 'kpi_events' order by load_id"
    )]
    taken = db.query(
        "select count(*) from ops.model_loads where model = 'fact_kpi_events'"
        " and load_id = any(%s)", (kpi_loads,),
    )
    assert taken == [(len(kpi_loads),)]

    _build(db, "--full-refresh")
    full = _fingerprints(db)
    different = [t for t in TABLES if incremental[t] != full[t]]
    assert not different, f"incremental differs from --full-refresh in {different}"
    assert all(count > 0 for count, _ in full.values())

    # a load that becomes visible late (here: published again, as after an
    # erasure, with the publish time the loader gives) is read with every load after it,
    # which its rows could change, and nothing before it
    late = kpi_loads[len(kpi_loads) // 2]
    with db.connect() as conn:
        conn.execute(
            "update raw.load_ledger set loaded_at = clock_timestamp() where load_id = %s", (late,)
        )
    _build(db, lookback_days=30)
    fact_sql = (compiled / "marts" / "core" / "fact_kpi_events.sql").read_text()
    reread = [load for load in kpi_loads if load >= late]
    assert f"_load_id in ({', '.join(map(str, reread))})" in fact_sql
    assert {row[0] for row in db.query("select load_id from intermediate.int_batch_loads")} \
        == {late}
    after = _fingerprints(db)
    changed = [table for table in TABLES if after[table] != full[table]]
    # (data_completeness reports each stream's newest publish time: the late one)
    changed = [table for table in changed if table != "marts.data_completeness"]
    assert not changed, f"re-reading a late load changed rows of {changed}"
