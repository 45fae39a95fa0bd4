"""Delivery semantics and whole-file rejection (raw-inputs.md "Delivery semantics", "Bad
input"): the same content loads once whatever its name; re-delivered records keep every
raw version and staging shows the newest; a file that cannot be read, or lacks a required
column, is rejected whole with a message naming the file and the problem, exit code 1,
while the other files of the same call load.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loader_fixtures import (
    ABSENT,
    ROOT,
    As,
    assert_ledger_balanced,
    count,
    database_fixtures,
    dicts,
    ledger,
    load,
    own_database,
    quarantine,
    summary_line,
    uid,
    utc,
    write_csv,
    write_ndjson,
    write_parquet,
)

from loaders.streams import STREAMS

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

module_database, empty_database = database_fixtures("delivery")

ORG = uid(1, "1")
T0 = As("2026-03-01T10:00:00Z", utc(2026, 3, 1, 10))
T1 = As("2026-03-02T10:00:00Z", utc(2026, 3, 2, 10))
T2 = As("2026-03-03T10:00:00+02:00", utc(2026, 3, 3, 8))

GOOD: dict[str, dict[str, Any]] = {
    "orgs": {"org_id": ORG, "name": "Acme", "updated_at": T0},
    "users": {"user_id": "user_1", "org_id": ORG, "role": "trainee", "updated_at": T0},
    "scenarios": {"scenario_id": uid(1, "5"), "org_id": ORG, "title": "Cold call",
                  "updated_at": T0},
    "attempts": {"attempt_id": uid(1, "a"), "org_id": ORG, "user_id": "user_1",
                 "status": "completed", "score": 50.0, "started_at": T0, "updated_at": T0},
    "sessions": {"session_id": uid(1, "b"), "org_id": ORG, "user_id": "user_1",
                 "session_type": "roleplay", "started_at": T0, "updated_at": T0},
    "kpi_events": {"event_id": uid(1, "e"), "attempt_id": uid(1, "a"), "org_id": ORG,
                   "user_id": "user_1", "event_type": "filler_word", "timestamp_ms": 10},
}


def attempt(n: int, score: float, updated: As, status: str = "completed") -> dict[str, Any]:
    return {**GOOD["attempts"], "attempt_id": uid(n, "a"), "score": score, "status": status,
            "updated_at": updated}


# --------------------------------------------------------------------------- same file


def test_same_file_twice_loads_once(empty_database, tmp_path: Path):
    db = empty_database
    path = write_csv(tmp_path / "attempts_day1.csv", [
        attempt(1, 50.0, T0), attempt(2, 150.0, T0), attempt(3, 60.0, T0)])
    first = load(db, path)
    assert summary_line(path, "attempts", 3, 2, 1) in first.stdout
    before = (ledger(db), quarantine(db), dicts(db, "select * from raw.attempts"))
    second = load(db, path)
    assert second.returncode == 0
    assert "already loaded" in second.stdout and str(path) in second.stdout
    assert "rows read" not in second.stdout
    assert (ledger(db), quarantine(db), dicts(db, "select * from raw.attempts")) == before
    assert db.query("select count(*) from raw.rejected_files") == [(0,)]


def test_same_content_under_another_name_or_folder_is_already_loaded(
    empty_database, tmp_path: Path
):
    db = empty_database
    path = write_csv(tmp_path / "attempts_day1.csv", [attempt(1, 50.0, T0)])
    load(db, path)
    renamed = tmp_path / "other" / "attempts_resent_2026-03-02.csv"
    renamed.parent.mkdir()
    shutil.copy(path, renamed)
    result = load(db, renamed)
    assert f"{renamed}: attempts: already loaded" in result.stdout
    # and within one call: the copy after the original
    again = tmp_path / "attempts_zz_copy.csv"
    shutil.copy(path, again)
    fresh = write_csv(tmp_path / "attempts_day2.csv", [attempt(2, 70.0, T1)])
    result = load(db, fresh, again)
    assert "already loaded" in result.stdout.split(str(again))[1].splitlines()[0]
    assert summary_line(fresh, "attempts", 1, 1, 0) in result.stdout
    assert count(db, "raw.attempts") == 2
    assert len(ledger(db)) == 2


def test_two_copies_in_one_call_load_once(empty_database, tmp_path: Path):
    db = empty_database
    path = write_ndjson(tmp_path / "kpi_events_a.jsonl", [GOOD["kpi_events"]])
    copy = tmp_path / "kpi_events_b.jsonl"
    shutil.copy(path, copy)
    result = load(db, path, copy)
    lines = result.stdout.splitlines()
    assert summary_line(path, "kpi_events", 1, 1, 0) in lines
    assert any(line.startswith(f"{copy}: kpi_events: already loaded") for line in lines)
    assert count(db, "raw.kpi_events") == 1


# --------------------------------------------------------------------------- re-deliveries


# per versioned stream: the column that tells the versions apart, and its value in the
# first delivery (T1), a newer one (T2) and an older one (T0)
VERSIONS: dict[str, tuple[str, tuple[Any, Any, Any]]] = {
    "orgs": ("name", ("Acme v1", "Acme v2", "Acme v0")),
    "users": ("team", ("North", "South", "West")),
    "scenarios": ("title", ("Call v1", "Call v2", "Call v0")),
    "sessions": ("score", (50.0, 70.0, 10.0)),
}


def _redeliveries(tmp_path: Path) -> list[Path]:
    """Attempt 1: v1 (T1, 50), then a newer v2 (T2, 70) in NDJSON, then an older v0
    (T0, 10) in Parquet. Attempt 2: twice with the same updated_at (first loaded wins).
    KPI event 1 twice (first loaded wins). Orgs, users, scenarios, sessions: v1 (T1), a
    newer v2 (T2), an older v0 (T0), each in its own file."""
    paths = [
        write_csv(tmp_path / "attempts_1.csv", [
            attempt(1, 50.0, T1), attempt(2, 20.0, T1, status="started")]),
        write_ndjson(tmp_path / "attempts_2.jsonl", [attempt(1, 70.0, T2), attempt(2, 25.0, T1)]),
        write_parquet(tmp_path / "attempts_3.parquet", [attempt(1, 10.0, T0)], "attempts",
                      as_text=True),
        write_csv(tmp_path / "kpi_events_1.csv", [{**GOOD["kpi_events"], "timestamp_ms": 100}]),
        write_ndjson(tmp_path / "kpi_events_2.jsonl", [
            {**GOOD["kpi_events"], "timestamp_ms": 999},
            {**GOOD["kpi_events"], "event_id": uid(2, "e"), "timestamp_ms": 5}]),
    ]
    for stream, (column, values) in VERSIONS.items():
        for n, (value, updated) in enumerate(zip(values, (T1, T2, T0), strict=True), 1):
            record = {**GOOD[stream], column: value, "updated_at": updated}
            paths.append(write_ndjson(tmp_path / f"{stream}_{n}.jsonl", [record]) if n == 2
                         else write_csv(tmp_path / f"{stream}_{n}.csv", [record]))
    return paths


def test_redelivered_records_keep_every_raw_version(empty_database, tmp_path: Path):
    db = empty_database
    paths = _redeliveries(tmp_path)
    # one call: files load stream by stream, each stream's files in name (= delivery) order
    load(db, *paths)
    assert [entry["file_name"] for entry in ledger(db)] == [
        name for stream in STREAMS for name in sorted(p.name for p in paths
                                                      if p.name.startswith(stream))]
    rows = db.query(
        "select a.attempt_id, a.score, a.updated_at, l.file_name from raw.attempts a "
        "join raw.load_ledger l on l.load_id = a._load_id order by a._load_id, a._row_number"
    )
    assert rows == [
        (uid(1, "a"), 50.0, T1.value, "attempts_1.csv"),
        (uid(2, "a"), 20.0, T1.value, "attempts_1.csv"),
        (uid(1, "a"), 70.0, T2.value, "attempts_2.jsonl"),
        (uid(2, "a"), 25.0, T1.value, "attempts_2.jsonl"),
        (uid(1, "a"), 10.0, T0.value, "attempts_3.parquet"),
    ]
    load_ids = [entry["load_id"] for entry in ledger(db)]
    assert load_ids == sorted(load_ids) and len(set(load_ids)) == 5 + 3 * len(VERSIONS)
    assert db.query("select timestamp_ms from raw.kpi_events order by _load_id, _row_number") == [
        (100,), (999,), (5,)]
    for stream, (column, values) in VERSIONS.items():
        assert db.query(
            f"select {column}, updated_at from raw.{stream} order by _load_id, _row_number"
        ) == [(values[0], T1.value), (values[1], T2.value), (values[2], T0.value)], stream
    assert_ledger_balanced(db)


STAGING = ROOT / "models" / "staging"


def test_staging_shows_the_newest_version(fresh_database, tmp_path: Path):
    if not (STAGING / "stg_attempts.sql").exists():
        pytest.skip("models/staging/stg_attempts.sql is not there yet")
    db = fresh_database
    load(db, *_redeliveries(tmp_path))
    build = db.build("-s", "staging", check=False)
    attempts = db.query(
        "select attempt_id, score, status, updated_at from staging.stg_attempts "
        "order by attempt_id"
    ) if db.query("select to_regclass('staging.stg_attempts') is not null")[0][0] else None
    assert attempts is not None, build.stdout[-4000:]
    assert attempts == [
        (uid(1, "a"), 70.0, "completed", T2.value),  # newest updated_at, not the last loaded
        (uid(2, "a"), 20.0, "started", T1.value),  # equal updated_at: first loaded wins
    ]
    if (STAGING / "stg_kpi_events.sql").exists():
        assert db.query(
            "select event_id, timestamp_ms from staging.stg_kpi_events order by event_id"
        ) == [(uid(1, "e"), 100), (uid(2, "e"), 5)]
    for stream, (column, values) in VERSIONS.items():
        if (STAGING / f"stg_{stream}.sql").exists():
            assert db.query(f"select {column}, updated_at from staging.stg_{stream}") == [
                (values[1], T2.value)], stream


# --------------------------------------------------------------------------- rejections


def _without(stream: str, column: str) -> list[dict[str, Any]]:
    return [{name: value for name, value in GOOD[stream].items() if name != column}]


@dataclass
class Rejections:
    db: Any
    stdout: str
    stderr: str
    returncode: int
    files: dict[str, tuple[Path, str]]  # file name -> (path, what the message must name)
    good: list[Path]


def _write_missing_columns(folder: Path) -> dict[str, tuple[Path, str]]:
    files = {}
    for stream in STREAMS:
        for column in STREAMS[stream].required:
            records = _without(stream, column)
            for fmt in ("csv", "jsonl", "parquet"):
                path = folder / f"{stream}_without_{column}.{fmt}"
                if fmt == "csv":
                    write_csv(path, records)
                elif fmt == "jsonl":
                    write_ndjson(path, records)
                else:
                    write_parquet(path, records, stream, as_text=True)
                files[path.name] = (path, column)
    return files


def _write_unreadable(folder: Path) -> dict[str, tuple[Path, str]]:
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, data: bytes, problem: str) -> None:
        path = folder / name
        path.write_bytes(data)
        files[name] = (path, problem)

    csv_text = b"org_id,name,updated_at\n" + (
        f"{ORG},Acme,2026-03-01T10:00:00Z\n".encode() * 2000)
    compressed = gzip.compress(csv_text)
    # empty files share one content hash: the NDJSON one comes last (kpi_events) so that
    # its outcome cannot turn the others into "already loaded"
    add("orgs_empty.csv", b"", "empty")
    add("orgs_empty.parquet", b"", "parquet")
    add("kpi_events_empty.jsonl", b"", "empty")
    add("orgs_not_gzip.csv.gz", b"org_id,name,updated_at\n", "gzip")
    add("orgs_truncated.csv.gz", compressed[: len(compressed) // 2], "")
    add("sessions_not_gzip.jsonl.gz", b'{"session_id": "x"}\n', "gzip")
    add("kpi_events_not_parquet.parquet", b"event_id,attempt_id\n1,2\n", "parquet")
    add("attempts_parquet_named.csv", b"PAR1\x15\x04\x15\x00\xff\xfe\x00PAR1", "")
    add("orgs_duplicate_header.csv",
        f"org_id,name,NAME,updated_at\n{ORG},a,b,2026-03-01T10:00:00Z\n".encode(), "name")
    add("events_unknown_stream.csv", b"a,b\n1,2\n", "stream")
    return files


@pytest.fixture(scope="module")
def rejections(server_env, tmp_path_factory) -> Iterator[Rejections]:
    """One call with every kind of file to reject and two good files, into one database."""
    folder = tmp_path_factory.mktemp("rejections")
    files = {**_write_missing_columns(folder), **_write_unreadable(folder)}
    good = [write_csv(folder / "orgs_good.csv", [GOOD["orgs"]]),
            write_ndjson(folder / "attempts_good.jsonl", [GOOD["attempts"]])]
    # a folder skips files of no known format; named explicitly, one is rejected
    odd = tmp_path_factory.mktemp("odd") / "orgs_unknown.format"
    odd.write_bytes(b"a,b\n1,2\n")
    files[odd.name] = (odd, "format")
    with own_database(server_env, "rejections") as db:
        result = db.warehouse("load", str(folder), str(odd), check=False)
        yield Rejections(db, result.stdout, result.stderr, result.returncode, files, good)


def test_rejected_call_exits_non_zero_and_good_files_load(rejections: Rejections):
    r = rejections
    assert r.returncode != 0
    assert summary_line(r.good[0], "orgs", 1, 1, 0) in r.stdout
    assert summary_line(r.good[1], "attempts", 1, 1, 0) in r.stdout
    assert "Traceback" not in r.stderr
    assert {p.name for p in r.good} <= {e["file_name"] for e in ledger(r.db)}
    assert count(r.db, "raw.orgs") == 1 and count(r.db, "raw.attempts") == 1
    for stream in ("users", "scenarios", "sessions", "kpi_events"):
        assert count(r.db, f"raw.{stream}") == 0, stream
    assert quarantine(r.db) == []
    assert r.db.query("select count(*) from pg_tables where schemaname = 'raw_landing'") == [
        (0,)]


def _message_for(r: Rejections, name: str) -> str:
    lines = [line for line in (r.stdout + r.stderr).splitlines() if name in line]
    assert len(lines) == 1, (name, lines)
    return lines[0]


MISSING = [f"{stream}_without_{column}.{fmt}" for stream in STREAMS
           for column in STREAMS[stream].required for fmt in ("csv", "jsonl", "parquet")]


@pytest.mark.parametrize("name", MISSING)
def test_file_missing_a_required_column_is_rejected_whole(rejections: Rejections, name: str):
    path, column = rejections.files[name]
    after = _message_for(rejections, name).split(name, 1)[1]
    assert "reject" in after.lower(), after
    assert column in after, after
    rows = dicts(rejections.db, "select * from raw.rejected_files where file_name = %s",
                 (name,))
    assert len(rows) == 1, rows
    assert column in rows[0]["reason"] and rows[0]["file_path"] == str(path.resolve())
    assert rows[0]["stream"] == name.split("_without_")[0]
    assert rejections.db.query(
        "select count(*) from raw.load_ledger where file_name = %s", (name,)) == [(0,)]


UNREADABLE = ["orgs_empty.csv", "orgs_empty.parquet", "kpi_events_empty.jsonl",
              "orgs_not_gzip.csv.gz", "orgs_truncated.csv.gz", "sessions_not_gzip.jsonl.gz",
              "kpi_events_not_parquet.parquet", "attempts_parquet_named.csv",
              "orgs_duplicate_header.csv", "events_unknown_stream.csv", "orgs_unknown.format"]


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_file_is_rejected_with_a_clear_message(rejections: Rejections, name: str):
    _, problem = rejections.files[name]
    after = _message_for(rejections, name).split(name, 1)[1]
    assert "reject" in after.lower(), after
    assert problem.lower() in after.lower(), after
    assert rejections.db.query(
        "select count(*) from raw.rejected_files where file_name = %s", (name,)) == [(1,)]
    assert rejections.db.query(
        "select count(*) from raw.load_ledger where file_name = %s", (name,)) == [(0,)]


def test_rejected_file_is_retried_and_a_fixed_one_loads(empty_database, tmp_path: Path):
    db = empty_database
    path = write_csv(tmp_path / "orgs_broken.csv", _without("orgs", "updated_at"))
    for _ in range(2):  # a rejection is not recorded as loaded: the next run tries again
        result = load(db, path, check=False)
        assert result.returncode == 1
        assert "already loaded" not in result.stdout + result.stderr
    assert count(db, "raw.rejected_files") == 2
    write_csv(path, [GOOD["orgs"], {**GOOD["orgs"], "org_id": uid(2, "1"), "name": ABSENT}])
    result = load(db, path)
    assert summary_line(path, "orgs", 2, 1, 1) in result.stdout
    assert count(db, "raw.orgs") == 1
