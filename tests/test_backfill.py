"""A backfill is built with --full-refresh (warehouse/backfill.py): the share of every loaded
row that lies in the build's window (after the oldest watermark minus lookback_days)
decides, against var batch_max_share."""

from __future__ import annotations

import datetime as dt

import pytest

from loaders.schema import ensure_raw_schema
from warehouse.backfill import batch_share, build_vars, with_backfill_refresh

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def ledger(fresh_database):
    """A ledger of 1,000 rows loaded 10 days ago and 300 loaded 2 hours ago; the marts'
    watermark is 1 hour old."""
    with fresh_database.connect() as conn:
        ensure_raw_schema(conn)
        conn.execute(
            "create schema ops; create table ops.model_watermarks (model text primary key,"
            " loaded_through timestamptz not null, as_of date not null,"
            " invocation_id text not null, built_at timestamptz not null default now())"
        )
        for load_id, rows, loaded_at in (
            (1, 1000, NOW - dt.timedelta(days=10)), (2, 300, NOW - dt.timedelta(hours=2)),
        ):
            conn.execute(
                "insert into raw.load_ledger (load_id, stream, file_name, file_path,"
                " file_format, file_bytes, content_sha256, rows_loaded, loaded_at)"
                " values (%s, 'kpi_events', %s, %s, 'csv', 1, %s, %s, %s)",
                (load_id, f"f{load_id}.csv", f"/in/f{load_id}.csv", f"sha{load_id}", rows,
                 loaded_at),
            )
        conn.execute(
            "insert into ops.model_watermarks (model, loaded_through, as_of, invocation_id)"
            " values ('user_metric_stats', %s, current_date, 'x'),"
            " ('kpi_weekly_trends', %s, current_date, 'y')",
            (NOW - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=5)),
        )
        conn.commit()
        yield conn


def test_the_share_in_the_window_decides(ledger) -> None:
    # lookback 0: the window starts at the oldest watermark (1 hour ago): nothing in it
    assert batch_share(ledger, 0) == 0.0
    # lookback 3 days: the load of 2 hours ago is in it, 300 of 1,300 rows
    assert batch_share(ledger, 3) == pytest.approx(300 / 1300)
    # lookback 30 days: everything
    assert batch_share(ledger, 30) == 1.0

    args, note = with_backfill_refresh(ledger, ["--vars", "{lookback_days: 3}"])
    assert args[-1] == "--full-refresh" and note is not None and "23%" in note
    args, note = with_backfill_refresh(
        ledger, ["--vars", "{lookback_days: 3, batch_max_share: 0.25}"])
    assert args == ["--vars", "{lookback_days: 3, batch_max_share: 0.25}"] and note is None
    # the caller's own choice is kept: a selection, or the refresh already asked for
    assert with_backfill_refresh(ledger, ["--vars", "{lookback_days: 30}", "-s", "dim_orgs"])[
        0] == ["--vars", "{lookback_days: 30}", "-s", "dim_orgs"]
    assert with_backfill_refresh(ledger, ["--full-refresh"]) == (["--full-refresh"], None)


def test_no_watermark_is_no_backfill(fresh_database) -> None:
    with fresh_database.connect() as conn:
        assert batch_share(conn, 3) is None  # no ops schema yet: a first build
        assert with_backfill_refresh(conn, []) == ([], None)


def test_vars_come_from_the_project_and_the_command_line() -> None:
    assert build_vars([])["lookback_days"] == 3
    assert build_vars(["--vars={lookback_days: 0}"])["lookback_days"] == 0
    assert build_vars(["--vars", "{as_of: '2026-11-20'}"])["as_of"] == "2026-11-20"
