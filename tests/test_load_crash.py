"""A load killed with SIGKILL leaves nothing of its file visible and the next run loads it
whole, exactly once; two loads of the same file started at once load it once.

The kills happen at two points: in the middle of the COPY (seen in pg_stat_progress_copy),
and after the rows have landed but before they are published (the test holds a lock on the
ledger so that the loader waits right there, with its landing tables committed).
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from loader_fixtures import (
    BigCsv,
    assert_ledger_balanced,
    count,
    database_fixtures,
    landing_tables,
    ledger,
    load,
    other_backends,
    quarantine,
    shared_big_kpi_csv,
    start_load,
    summary_line,
    wait_for,
)

from loaders.ledger import LOAD_LOCK_CLASS

module_database, empty_database = database_fixtures("crash")


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> BigCsv:
    return shared_big_kpi_csv(tmp_path_factory)


def copy_in_progress(db) -> bool:
    return db.query(
        "select count(*) from pg_stat_progress_copy "
        "where datname = current_database() and tuples_processed > 0"
    )[0][0] > 0


def kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, "the load finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def assert_nothing_visible(db) -> None:
    assert count(db, "raw.kpi_events") == 0
    assert ledger(db) == []
    assert quarantine(db) == []


def assert_loaded_once(db, big: BigCsv, result: subprocess.CompletedProcess) -> None:
    assert summary_line(big.path, "kpi_events", big.rows, big.good_rows, 4) in result.stdout
    assert db.query("select count(*), count(distinct event_id), sum(timestamp_ms) "
                    "from raw.kpi_events") == [
        (big.good_rows, big.good_rows, big.sum_timestamp_ms)]
    (entry,) = ledger(db)
    assert (entry["rows_read"], entry["rows_loaded"]) == (big.rows, big.good_rows)
    assert len(quarantine(db)) == 4
    assert landing_tables(db) == []
    assert_ledger_balanced(db)


def test_killed_during_copy_then_rerun(empty_database, big_csv: BigCsv):
    db = empty_database
    process = start_load(db, big_csv.path)
    try:
        assert wait_for(lambda: copy_in_progress(db) or process.poll() is not None, 60)
        kill(process)
    finally:
        if process.poll() is None:
            process.kill()
    # the server notices the dead client; then nothing of the file is visible
    assert wait_for(lambda: other_backends(db) == 0, 30, interval=0.05)
    assert_nothing_visible(db)
    result = load(db, big_csv.path)
    assert_loaded_once(db, big_csv, result)


def test_killed_after_landing_before_publishing_then_rerun(empty_database, big_csv: BigCsv):
    db = empty_database
    process = start_load(db, big_csv.path)
    try:
        assert wait_for(lambda: copy_in_progress(db) or process.poll() is not None, 60)
        with db.connect() as blocker:
            # the loader's ledger insert waits for this lock: it is caught after landing
            blocker.execute("lock table raw.load_ledger in share mode")
            assert wait_for(lambda: db.query(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock'")[0][0] >= 1, 60, interval=0.02)
            abandoned = landing_tables(db)
            kill(process)
            blocker.rollback()
    finally:
        if process.poll() is None:
            process.kill()
    # (today the two pieces' landing tables are committed at this point, not yet published)
    assert wait_for(lambda: other_backends(db) == 0, 30, interval=0.05)
    assert_nothing_visible(db)
    assert landing_tables(db) == abandoned  # left behind by the dead load ...
    result = load(db, big_csv.path)
    assert_loaded_once(db, big_csv, result)  # ... and dropped by the next one


def load_holders(db) -> int:
    """Sessions holding a load's advisory lock: loads past their start-up."""
    return db.query(
        "select count(distinct pid) from pg_locks where locktype = 'advisory' "
        "and database = (select oid from pg_database where datname = current_database()) "
        "and classid = %s", (LOAD_LOCK_CLASS,)
    )[0][0]


def test_two_loads_of_one_file_at_once(empty_database, big_csv: BigCsv):
    """Both loads land the whole file; the test holds them just before publishing until
    both are there, so they race for the ledger: exactly one publishes, the other reports
    the file as already loaded and leaves nothing behind."""
    db = empty_database
    processes = [start_load(db, big_csv.path) for _ in range(2)]
    try:
        assert wait_for(lambda: load_holders(db) >= 2
                        or any(p.poll() is not None for p in processes), 60)
        with db.connect() as blocker:
            blocker.execute("lock table raw.load_ledger in share mode")
            both_waiting = wait_for(lambda: db.query(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock'")[0][0] >= 2, 90, interval=0.05)
            blocker.rollback()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert both_waiting, "both loads should have reached the ledger before either published"
    assert [process.returncode for process in processes] == [0, 0], outputs
    stdouts = [stdout for stdout, _ in outputs]
    loaded = summary_line(big_csv.path, "kpi_events", big_csv.rows, big_csv.good_rows, 4)
    assert sorted(loaded in stdout for stdout in stdouts) == [False, True], stdouts
    assert sum(f"{big_csv.path}: kpi_events: already loaded" in stdout
               for stdout in stdouts) == 1, stdouts
    assert db.query("select count(*), count(distinct event_id) from raw.kpi_events") == [
        (big_csv.good_rows, big_csv.good_rows)]
    assert len(ledger(db)) == 1 and len(quarantine(db)) == 4
    assert landing_tables(db) == []
    assert len(ledger(db)[0]["storage_table"].split(", ")) == 2
    assert_ledger_balanced(db)
