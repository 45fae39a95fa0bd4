"""Every input format loads into exactly the typed values raw-inputs.md defines.

Each stream's records are written in CSV, CSV.gz, NDJSON (.jsonl, .ndjson with a schema
record and `_schema_version` 1.x, .jsonl.gz) and Parquet (typed columns: timestamps with and
without a time zone, list<string>, JSON text), with columns in another order, header names
in mixed case and an unknown extra column; the rows in raw.<stream> must be exactly the
expected values. A large KPI-event CSV takes the two-connection path and loads exactly,
also with quoted newlines where the splitter cuts it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loader_fixtures import (
    ABSENT,
    MULTILINE_VALUE,
    As,
    BigCsv,
    assert_ledger_balanced,
    count,
    csv_text,
    database_fixtures,
    dicts,
    ledger,
    load,
    quarantine,
    raw_rows,
    sha256,
    shared_big_kpi_csv,
    summary_line,
    uid,
    utc,
    write_csv,
    write_ndjson,
    write_parquet,
)

import loaders.formats as formats
from loaders.load import Loader
from loaders.results import FileResult
from loaders.streams import STREAMS

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

module_database, empty_database = database_fixtures("formats")

ORG_1 = uid(1, "1")
ORG_2 = uid(2, "1")
SCENARIO_1 = uid(1, "5")
ATTEMPT_1 = uid(1, "a")
ATTEMPT_2 = uid(2, "a")
SESSION_1 = uid(1, "b")
SESSION_2 = uid(2, "b")

# --------------------------------------------------------------------------- the records

# one instant written three ways: with Z, with +02:00, and without an offset (= UTC)
T_Z = As("2026-03-01T10:00:00Z", utc(2026, 3, 1, 10, 0, 0))
T_OFFSET = As("2026-03-01T12:30:00+02:00", utc(2026, 3, 1, 10, 30, 0))
T_NAIVE = As("2026-03-01T10:45:00.250", utc(2026, 3, 1, 10, 45, 0, 250_000))
T_SPACE = As("2026-02-28 23:59:59.5-05:00", utc(2026, 3, 1, 4, 59, 59, 500_000))

RECORDS: dict[str, list[dict[str, Any]]] = {
    "orgs": [
        {"org_id": As(str(ORG_1).upper(), ORG_1), "name": 'Acme, "Global" Ltd', "plan": "pro",
         "created_at": T_Z, "updated_at": T_OFFSET, "source_system": "crm"},
        {"org_id": ORG_2, "name": "Zoë Coaching", "plan": ABSENT, "created_at": ABSENT,
         "updated_at": T_NAIVE, "source_system": ABSENT},
    ],
    "users": [
        {"user_id": "user_2NfXabc", "org_id": ORG_1, "name": "Ann Lee", "email": "ann@example.com",
         "role": "trainee", "team": "North", "manager_id": "user_mgr", "timezone": "Europe/Berlin",
         "created_at": T_SPACE, "updated_at": T_Z, "source_system": "idp"},
        {"user_id": "user_mgr", "org_id": ORG_1, "name": ABSENT, "email": ABSENT,
         "role": "manager", "team": ABSENT, "manager_id": ABSENT, "timezone": ABSENT,
         "created_at": ABSENT, "updated_at": T_OFFSET, "source_system": ABSENT},
        {"user_id": "user_admin", "org_id": ORG_2, "name": "Bo", "email": ABSENT,
         "role": "admin", "team": ABSENT, "manager_id": ABSENT, "timezone": "America/New_York",
         "created_at": ABSENT, "updated_at": T_NAIVE, "source_system": ABSENT},
    ],
    "scenarios": [
        {"scenario_id": SCENARIO_1, "org_id": ORG_1, "title": "Cold call, price objection",
         "difficulty": "hard", "category": "sales", "created_at": T_Z, "updated_at": T_OFFSET,
         "source_system": "cms"},
        {"scenario_id": uid(2, "5"), "org_id": ORG_2, "title": "Ordering coffee",
         "difficulty": ABSENT, "category": ABSENT, "created_at": ABSENT, "updated_at": T_NAIVE,
         "source_system": ABSENT},
    ],
    "attempts": [
        {"attempt_id": ATTEMPT_1, "org_id": ORG_1, "user_id": "user_2NfXabc",
         "scenario_id": SCENARIO_1, "status": "completed", "score": 87.5,
         "duration_seconds": 120.25, "talk_ms": 61_000, "listen_ms": 59_250,
         "started_at": As("2026-03-01T11:00:00+02:00", utc(2026, 3, 1, 9)),
         "ended_at": As("2026-03-01T09:02:00Z", utc(2026, 3, 1, 9, 2)),
         "updated_at": T_NAIVE, "source_system": "app"},
        {"attempt_id": ATTEMPT_2, "org_id": ORG_1, "user_id": "user_2NfXabc",
         "scenario_id": ABSENT, "status": "started", "score": ABSENT, "duration_seconds": ABSENT,
         "talk_ms": ABSENT, "listen_ms": ABSENT, "started_at": T_Z, "ended_at": ABSENT,
         "updated_at": T_Z, "source_system": ABSENT},
        {"attempt_id": uid(3, "a"), "org_id": ORG_2, "user_id": "user_admin",
         "scenario_id": ABSENT, "status": "abandoned", "score": 0.0, "duration_seconds": 0.0,
         "talk_ms": 0, "listen_ms": 0, "started_at": T_Z, "ended_at": T_Z,
         "updated_at": T_OFFSET, "source_system": ABSENT},
        {"attempt_id": uid(4, "a"), "org_id": ORG_2, "user_id": "user_admin",
         "scenario_id": ABSENT, "status": "completed", "score": 100.0,
         "duration_seconds": 3.2, "talk_ms": 86_400_000, "listen_ms": 1,  # a day: the limit
         "started_at": T_Z, "ended_at": T_OFFSET, "updated_at": T_OFFSET,
         "source_system": ABSENT},
    ],
    "sessions": [
        {"session_id": SESSION_1, "org_id": ORG_1, "user_id": "user_2NfXabc",
         "attempt_id": ATTEMPT_1, "session_type": "roleplay", "started_at": T_OFFSET,
         "duration_ms": 125_000, "words_spoken": 310, "score": 81.25,
         "pronunciation_score": 100.0, "fluency_score": 0.0, "grammar_score": 66.5,
         "pace_wpm": 142.5, "pitch_hz": 180.0, "volume_db": -12.5, "pauses_per_min": 3.2,
         "clarity": 99.9, "confidence": 0.1, "topics": ["pricing", "objections, hard"],
         "vocabulary_learned": [], "areas_to_improve": ["pace", "Zoë's \"tone\""],
         "metadata": {"device": "ios", "mic": {"gain": 0.5, "ok": True}, "tags": [1, "x"]},
         "updated_at": T_NAIVE, "source_system": "voice"},
        {"session_id": SESSION_2, "org_id": ORG_1, "user_id": "user_2NfXabc",
         "attempt_id": ABSENT, "session_type": "pronunciation", "started_at": T_Z,
         "duration_ms": ABSENT, "words_spoken": ABSENT, "score": ABSENT,
         "pronunciation_score": ABSENT, "fluency_score": ABSENT, "grammar_score": ABSENT,
         "pace_wpm": ABSENT, "pitch_hz": ABSENT, "volume_db": ABSENT, "pauses_per_min": ABSENT,
         "clarity": ABSENT, "confidence": ABSENT, "topics": ABSENT, "vocabulary_learned": ABSENT,
         "areas_to_improve": ABSENT, "metadata": ABSENT, "updated_at": T_Z,
         "source_system": ABSENT},
        {"session_id": uid(3, "b"), "org_id": ORG_2, "user_id": "user_admin",
         "attempt_id": ABSENT, "session_type": "conversation", "started_at": T_SPACE,
         "duration_ms": 0, "words_spoken": 0, "score": 50.0, "pronunciation_score": 1e-3,
         "fluency_score": 2.5e1, "grammar_score": 100.0, "pace_wpm": 0.0, "pitch_hz": 95.5,
         "volume_db": 0.0, "pauses_per_min": 0.0, "clarity": 100.0, "confidence": 0.0,
         "topics": ["small talk"], "vocabulary_learned": ["latte", "to go"],
         "areas_to_improve": [], "metadata": {}, "updated_at": T_OFFSET,
         "source_system": ABSENT},
    ],
    "kpi_events": [
        {"event_id": uid(1, "e"), "attempt_id": ATTEMPT_1, "session_id": SESSION_1,
         "org_id": ORG_1, "user_id": "user_2NfXabc", "scenario_id": SCENARIO_1,
         "event_type": "filler_word", "event_value": {"word": "um"}, "timestamp_ms": 1_500,
         "occurred_at": As("2026-03-01T11:00:01.5+02:00", utc(2026, 3, 1, 9, 0, 1, 500_000)),
         "source_system": "nlp"},
        {"event_id": As(str(uid(2, "e")).upper(), uid(2, "e")), "attempt_id": ATTEMPT_1,
         "session_id": ABSENT, "org_id": ORG_1, "user_id": "user_2NfXabc",
         "scenario_id": ABSENT, "event_type": "brand_new_type", "event_value": ABSENT,
         "timestamp_ms": 0, "occurred_at": ABSENT, "source_system": ABSENT},
        {"event_id": uid(3, "e"), "attempt_id": ATTEMPT_1, "session_id": SESSION_1,
         "org_id": ORG_1, "user_id": "user_2NfXabc", "scenario_id": SCENARIO_1,
         "event_type": "feedback_given",
         "event_value": {"metric": "pace", "message": "Slow down,\nthen \"breathe\"",
                         "severity": "warning"},
         "timestamp_ms": 62_000, "occurred_at": T_NAIVE, "source_system": ABSENT},
        {"event_id": uid(4, "e"), "attempt_id": ATTEMPT_2, "session_id": ABSENT,
         "org_id": ORG_1, "user_id": "user_2NfXabc", "scenario_id": ABSENT,
         "event_type": "recommendation_made",
         "event_value": {"metric": "pace", "priority": "high", "implemented": False},
         "timestamp_ms": 86_399_999, "occurred_at": T_Z, "source_system": ABSENT},
    ],
}


def expected_rows(stream: str, row_numbers: list[int]) -> list[dict[str, Any]]:
    rows = []
    for record, row_number in zip(RECORDS[stream], row_numbers, strict=True):
        row: dict[str, Any] = {}
        for name in STREAMS[stream].column_names:
            value = record.get(name, ABSENT)
            row[name] = None if value is ABSENT else value.value if isinstance(value, As) else value
        extra = record.get("source_system", ABSENT)
        row["_extra"] = None if extra is ABSENT else {"source_system": extra}
        row["_row_number"] = row_number
        rows.append(row)
    return rows


def file_order(stream: str) -> list[str]:
    """Columns in another order than declared, the unknown one in the middle."""
    names = list(reversed(STREAMS[stream].column_names))
    return [*names[:2], "source_system", *names[2:]]


def mixed_case(name: str) -> str:
    if name == "source_system":
        return name
    return name.upper() if len(name) % 2 else name.title()


# --------------------------------------------------------------------------- formats


def _csv(path: Path, stream: str) -> tuple[Path, list[int]]:
    write_csv(path, RECORDS[stream], file_order(stream), header=mixed_case)
    return path, list(range(1, len(RECORDS[stream]) + 1))


def _ndjson(schema_record: bool, version: str | None) -> Callable:
    def write(path: Path, stream: str) -> tuple[Path, list[int]]:
        records = [{name: record.get(name, ABSENT) for name in file_order(stream)}
                   for record in RECORDS[stream]]
        write_ndjson(path, records, stream, schema_record=schema_record, schema_version=version)
        first = 2 if schema_record else 1
        return path, list(range(first, first + len(records)))
    return write


def _parquet(path: Path, stream: str) -> tuple[Path, list[int]]:
    write_parquet(path, RECORDS[stream], stream, columns=file_order(stream), header=mixed_case)
    return path, list(range(1, len(RECORDS[stream]) + 1))


FORMATS: dict[str, tuple[str, str, Callable]] = {
    # id: (extension, ledger file_format, writer)
    "csv": (".csv", "csv", _csv),
    "csv.gz": (".csv.gz", "csv", _csv),
    "jsonl": (".jsonl", "ndjson", _ndjson(False, None)),
    "ndjson-schema-record": (".ndjson", "ndjson", _ndjson(True, "1.2")),
    "jsonl.gz-schema-record": (".jsonl.gz", "ndjson", _ndjson(True, "1")),
    "parquet": (".parquet", "parquet", _parquet),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_stream_loads_exact_typed_values(empty_database, tmp_path: Path, fmt: str):
    extension, file_format, writer = FORMATS[fmt]
    written = {stream: writer(tmp_path / f"{stream}_delivery{extension}", stream)
               for stream in STREAMS}
    result = load(empty_database, tmp_path)
    for stream, (path, row_numbers) in written.items():
        n = len(RECORDS[stream])
        assert summary_line(path, stream, n, n, 0) in result.stdout.splitlines(), result.stdout
        rows = raw_rows(empty_database, stream)
        for row in rows:  # a record's `_schema_version` may be kept with the unknown fields
            if row["_extra"] and "_schema_version" in row["_extra"]:
                del row["_extra"]["_schema_version"]
                row["_extra"] = row["_extra"] or None
        assert rows == expected_rows(stream, row_numbers), stream
    assert quarantine(empty_database) == []
    entries = {entry["stream"]: entry for entry in ledger(empty_database)}
    assert set(entries) == set(STREAMS)
    for stream, (path, _) in written.items():
        entry = entries[stream]
        n = len(RECORDS[stream])
        assert (entry["file_name"], entry["file_format"], entry["file_bytes"]) == (
            path.name, file_format, path.stat().st_size)
        assert entry["content_sha256"] == sha256(path)
        assert (entry["rows_read"], entry["rows_loaded"], entry["rows_quarantined"]) == (n, n, 0)
        loads = empty_database.query(f"select distinct _load_id from raw.{stream}")
        assert loads == [(entry["load_id"],)]
    assert_ledger_balanced(empty_database)


def test_csv_empty_fields_are_null_also_when_quoted(empty_database, tmp_path: Path):
    """RFC 4180: `""` is an empty field like an unquoted one, so it is NULL too (writers
    such as csv.QUOTE_ALL or pandas quote every field)."""
    records = [
        {"attempt_id": ATTEMPT_1, "org_id": ORG_1, "user_id": "user_1", "scenario_id": None,
         "status": "started", "score": None, "duration_seconds": None, "talk_ms": None,
         "listen_ms": None, "started_at": T_Z, "ended_at": None, "updated_at": T_Z},
    ]
    columns = list(STREAMS["attempts"].column_names)
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record[name] is None else (
            record[name].text if isinstance(record[name], As) else str(record[name]))
            for name in columns])
    path = tmp_path / "attempts_quoted.csv"
    path.write_text(out.getvalue())
    result = load(empty_database, path)
    assert summary_line(path, "attempts", 1, 1, 0) in result.stdout
    row = raw_rows(empty_database, "attempts")[0]
    for name in ("scenario_id", "score", "duration_seconds", "talk_ms", "listen_ms", "ended_at"):
        assert row[name] is None, name


def test_csv_crlf_bom_and_quoting(empty_database, tmp_path: Path):
    """Windows line ends, a UTF-8 byte-order mark, quotes, commas and newlines in fields."""
    text = (
        "\ufefforg_id,NAME,plan,updated_at\r\n"
        f'{ORG_1},"Acme, ""Global""\r\nLtd",pro,2026-03-01T10:00:00Z\r\n'
        f"{ORG_2},Plain,,2026-03-01T12:00:00+02:00\r\n"
    )
    path = tmp_path / "orgs_windows.csv"
    path.write_bytes(text.encode("utf-8"))
    result = load(empty_database, path)
    assert summary_line(path, "orgs", 2, 2, 0) in result.stdout
    assert empty_database.query("select org_id, name, plan, updated_at from raw.orgs "
                                "order by _row_number") == [
        (ORG_1, 'Acme, "Global"\r\nLtd', "pro", utc(2026, 3, 1, 10)),
        (ORG_2, "Plain", None, utc(2026, 3, 1, 10)),
    ]


def test_csv_header_only_loads_nothing(empty_database, tmp_path: Path):
    path = tmp_path / "orgs_none.csv"
    path.write_text("org_id,name,updated_at\n")
    result = load(empty_database, path)
    assert summary_line(path, "orgs", 0, 0, 0) in result.stdout
    assert count(empty_database, "raw.orgs") == 0
    assert [(e["rows_read"], e["rows_loaded"]) for e in ledger(empty_database)] == [(0, 0)]


def test_ndjson_keeps_native_json_of_unknown_fields(empty_database, tmp_path: Path):
    path = tmp_path / "orgs_extra.jsonl"
    path.write_text(
        json.dumps({"org_id": str(ORG_1), "name": "A", "updated_at": "2026-03-01T10:00:00Z",
                    "seats": 25, "beta": True, "ctx": {"region": "eu", "ids": [1, 2]}}) + "\n"
        + "\n"  # a blank line is not a record
        + json.dumps({"org_id": str(ORG_2), "name": "B", "updated_at": "2026-03-01T10:00:00Z",
                      "plan": None}) + "\n"
    )
    result = load(empty_database, path)
    assert summary_line(path, "orgs", 2, 2, 0) in result.stdout
    assert empty_database.query("select org_id, plan, _extra, _row_number from raw.orgs "
                                "order by _row_number") == [
        (ORG_1, None, {"seats": 25, "beta": True, "ctx": {"region": "eu", "ids": [1, 2]}}, 1),
        (ORG_2, None, None, 3),
    ]


def test_ndjson_native_types_and_string_forms(empty_database, tmp_path: Path):
    """Numbers may come as JSON numbers or numeric strings; lists as native arrays."""
    path = tmp_path / "sessions_native.jsonl"
    base = {"org_id": str(ORG_1), "user_id": "u", "session_type": "roleplay",
            "started_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z"}
    path.write_text("\n".join(json.dumps(record) for record in [
        {**base, "session_id": str(uid(1, "b")), "score": 70, "duration_ms": 1000,
         "topics": ["a", "b"], "metadata": {"k": [1, {"x": None}]}},
        {**base, "session_id": str(uid(2, "b")), "score": "70.5", "duration_ms": "1000",
         "topics": [], "metadata": {}},
    ]) + "\n")
    load(empty_database, path)
    assert empty_database.query(
        "select score, duration_ms, topics, metadata from raw.sessions order by _row_number"
    ) == [(70.0, 1000, ["a", "b"], {"k": [1, {"x": None}]}), (70.5, 1000, [], {})]


def test_parquet_timestamp_units_and_zones(empty_database, tmp_path: Path):
    """Parquet timestamps in s/ms/us, UTC or another zone or none (= UTC), one instant."""
    instant = utc(2026, 3, 1, 10, 0, 0)
    naive = instant.replace(tzinfo=None)
    table = pa.table({
        "org_id": [str(ORG_1)],
        "name": ["A"],
        "created_at": pa.array([naive], pa.timestamp("s")),
        "updated_at": pa.array([instant], pa.timestamp("ms", tz="Asia/Kolkata")),
    })
    path = tmp_path / "orgs_units.parquet"
    pq.write_table(table, path)
    load(empty_database, path)
    assert empty_database.query("select created_at, updated_at from raw.orgs") == [
        (instant, instant)]


def test_parquet_nanosecond_timestamps_load(empty_database, tmp_path: Path):
    """pandas writes timestamp[ns]; sub-microsecond digits do not make the file unreadable
    (timestamptz keeps microseconds)."""
    nanos = 1_772_359_200_123_456_789  # 2026-03-01T10:00:00.123456789Z
    table = pa.table({
        "org_id": [str(ORG_1)],
        "name": ["A"],
        "updated_at": pa.array([nanos], pa.timestamp("ns", tz="UTC")),
    })
    path = tmp_path / "orgs_ns.parquet"
    pq.write_table(table, path)
    result = load(empty_database, path, check=False)
    assert result.returncode == 0, result.stderr
    (value,) = empty_database.query("select updated_at from raw.orgs")[0]
    assert abs(value - utc(2026, 3, 1, 10, 0, 0, 123_457)) <= dt.timedelta(microseconds=1)


# --------------------------------------------------------------------------- large files


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> BigCsv:
    return shared_big_kpi_csv(tmp_path_factory)


def test_large_csv_takes_two_connections_and_loads_exactly(empty_database, big_csv: BigCsv):
    db = empty_database
    assert big_csv.path.stat().st_size >= formats.PARALLEL_MIN_BYTES
    result = db.warehouse("load", str(big_csv.path), extra_env={"WAREHOUSE_PROGRESS": "1"})
    assert summary_line(big_csv.path, "kpi_events", big_csv.rows, big_csv.good_rows, 4) in (
        result.stdout)
    assert big_csv.path.name in result.stderr and "%" in result.stderr  # a progress bar
    (entry,) = ledger(db)
    assert (entry["rows_read"], entry["rows_loaded"], entry["rows_quarantined"]) == (
        big_csv.rows, big_csv.good_rows, 4)
    children = entry["storage_table"].split(", ")
    assert len(children) == 2, entry["storage_table"]
    inherited = db.query(
        "select inhrelid::regclass::text from pg_inherits "
        "where inhparent = 'raw.kpi_events'::regclass order by 1"
    )
    assert sorted(children) == [name for (name,) in inherited]
    assert db.query(
        "select count(*), count(distinct event_id), sum(timestamp_ms), "
        "count(*) filter (where occurred_at is null), count(distinct _row_number) "
        "from raw.kpi_events"
    ) == [(big_csv.good_rows, big_csv.good_rows, big_csv.sum_timestamp_ms,
           big_csv.null_occurred, big_csv.good_rows)]
    per_type = dict(db.query("select event_type, count(*) from raw.kpi_events group by 1"))
    assert per_type["feedback_given"] == 3 and sum(per_type.values()) == big_csv.good_rows
    assert db.query(
        "select event_value from raw.kpi_events where event_value->>'word' = 'um' limit 1"
    ) == [({"word": "um"},)]
    assert db.query(
        "select event_value->>'keyword' from raw.kpi_events "
        "where event_type = 'keyword_mentioned' limit 1") == [("price, value",)]
    # the pretty-printed values around the split point arrive whole
    values = db.query(
        "select event_id::text, event_value - 'pad' from raw.kpi_events "
        "where event_id::text = any(%s) order by event_id", (big_csv.multiline_ids,)
    )
    assert values == [(event_id, MULTILINE_VALUE) for event_id in big_csv.multiline_ids]
    # each bad row is quarantined with a reason naming its column; those of the first
    # piece (before any multi-line record) also at their exact line, with their own text
    # (the second piece's: test_bad_rows_in_second_piece_after_a_multiline_record)
    problems = quarantine(db)
    assert sorted(p["reason"].split()[0] for p in problems) == sorted(
        column for _, column in big_csv.bad.values())
    first_piece = {n: bad for n, bad in big_csv.bad.items() if n < 1000}
    assert len(first_piece) == 2
    for line_number, (text, column) in first_piece.items():
        (problem,) = [p for p in problems if p["location"] == f"line {line_number}"]
        assert (problem["row_number"], problem["raw_row"]) == (line_number - 1, text)
        assert problem["reason"].startswith(column)
    assert db.query("select count(*) from pg_tables where schemaname = 'raw_landing'") == [(0,)]
    assert_ledger_balanced(db)


def _records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_split_point_never_cuts_a_quoted_field(tmp_path: Path, monkeypatch):
    """Wherever the middle of the file falls (on a quoted newline, an escaped quote, a
    record end), the second piece starts at a record boundary with the right line number."""
    monkeypatch.setattr(formats, "PARALLEL_MIN_BYTES", 0)
    header = "org_id,name,updated_at\n"
    tricky = [
        f'{ORG_1},"two\nlines, and ""quotes""\n",2026-03-01T10:00:00Z\n',
        f'{ORG_1},"""\n""",2026-03-01T10:00:00Z\n',
        f'{ORG_1},"\n\n\n",2026-03-01T10:00:00Z\n',
        f'{ORG_1},plain,2026-03-01T10:00:00Z\n',
    ]
    plain = f"{ORG_2},x,2026-03-01T10:00:00Z\n"
    block = "".join(tricky)
    checked = 0
    width = len(block) + 2
    for before in range(width + 1):
        # padding moved from after the block to before it keeps the file's size (so the
        # middle stays put) and slides the block across the middle byte by byte
        text = (header + plain * 4 + "p" * before + "\n" + block + "q" * (width - before)
                + "\n" + plain * 4)
        data = text.encode()
        path = tmp_path / "orgs_split.csv"
        path.write_bytes(data)
        parts = formats.plan_parts(path, len(header), 2)
        if len(parts) == 1:
            continue
        split = parts[1].start
        assert parts[0].end == split
        assert _records(data[:split]) + _records(data[split:]) == _records(data), before
        assert parts[1].first_line == data[:split].count(b"\n") + 1
        checked += 1
    assert checked > len(block)


def _in_process_split_load(db, path: Path, monkeypatch) -> FileResult:
    """Load one file with the two-connection path forced on a small file."""
    monkeypatch.setattr(formats, "PARALLEL_MIN_BYTES", 0)
    with db.connect() as conn:
        conn.commit()
        result = Loader(conn, progress=False, workers=2).load_file(path)
    return result


def test_small_csv_split_in_two_loads_exactly(empty_database, tmp_path: Path, monkeypatch):
    records = [
        {"org_id": uid(i, "1"), "name": f"Org {i}, \"quoted\"\nsecond line" if i % 3 == 0
         else f"Org {i}", "updated_at": T_Z}
        for i in range(1, 41)
    ]
    path = write_csv(tmp_path / "orgs_small_split.csv", records)
    result = _in_process_split_load(empty_database, path, monkeypatch)
    assert (result.status, result.rows_read, result.rows_loaded) == ("loaded", 40, 40)
    (entry,) = ledger(empty_database)
    assert entry["rows_read"] == 40
    rows = dicts(empty_database, "select org_id, name from raw.orgs order by _row_number")
    assert rows == [{"org_id": r["org_id"], "name": r["name"]} for r in records]
    assert_ledger_balanced(empty_database)


def _bad_rows_after_multiline(tmp_path: Path) -> tuple[Path, str, dict[str, tuple[int, str]]]:
    """An orgs CSV: three records spanning two lines each, then a non-UUID id (a COPY type
    error) and, three records later, an empty required name (a rule): counted by records the
    second is where the first is counted by lines. Returns the path, the text and
    {column named in the reason: (file line, line text)}."""
    lines = ["org_id,name,updated_at"]
    for i in range(1, 4):
        lines.append(f'{uid(i, "1")},"Org {i}\nsecond line",2026-03-01T10:00:00Z')
    lines.append(f"{uid(4, '1')},Org 4,2026-03-01T10:00:00Z")
    lines.append("not-a-uuid,Org 5,2026-03-01T10:00:00Z")
    lines += [f"{uid(i, '1')},Org {i},2026-03-01T10:00:00Z" for i in (6, 7)]
    lines.append(f"{uid(8, '1')},,2026-03-01T10:00:00Z")
    lines.append(f"{uid(9, '1')},Org 9,2026-03-01T10:00:00Z")
    text = "\n".join(lines) + "\n"
    path = tmp_path / "orgs_multiline_bad.csv"
    path.write_text(text)
    physical = text.split("\n")
    found = {
        "org_id": next((n, line) for n, line in enumerate(physical, 1)
                       if line.startswith("not-a-uuid")),
        "name": next((n, line) for n, line in enumerate(physical, 1)
                     if line.startswith(f"{uid(8, '1')},,")),
    }
    return path, text, found


def _assert_bad_rows_after_multiline(db, path: Path, found: dict[str, tuple[int, str]]) -> None:
    problems = quarantine(db, path.name)
    assert len(problems) == 2, problems
    for column, (line, text) in found.items():
        (problem,) = [p for p in problems if p["reason"].startswith(column)]
        assert (problem["location"], problem["raw_row"]) == (f"line {line}", text), problem
    assert [name for (name,) in db.query("select name from raw.orgs order by _row_number")] == [
        "Org 1\nsecond line", "Org 2\nsecond line", "Org 3\nsecond line", "Org 4", "Org 6",
        "Org 7", "Org 9"]
    assert_ledger_balanced(db)


def test_bad_rows_after_multiline_records_are_located(empty_database, tmp_path: Path):
    """Quarantine names the file line and text of a bad row even when earlier records span
    several lines (and the load does not fail on it)."""
    path, _, found = _bad_rows_after_multiline(tmp_path)
    result = load(empty_database, path, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary_line(path, "orgs", 9, 7, 2) in result.stdout
    _assert_bad_rows_after_multiline(empty_database, path, found)


def test_bad_rows_in_second_piece_after_a_multiline_record(
    empty_database, tmp_path: Path, monkeypatch
):
    """The second piece of a split starts with a record spanning three lines; the bad rows
    after it are still located at their own file lines, with their own text."""
    monkeypatch.setattr(formats, "PARALLEL_MIN_BYTES", 0)
    header = "org_id,name,updated_at\n"
    multiline = f'{uid(500, "1")},"Org M\nline two\nline three",2026-03-01T10:00:00Z\n'
    bad_type = "not-a-uuid,Org X,2026-03-01T10:00:00Z\n"
    bad_rule = f"{uid(502, '1')},,2026-03-01T10:00:00Z\n"
    tail = [multiline, f"{uid(501, '1')},Org 501,2026-03-01T10:00:00Z\n", bad_type,
            f"{uid(503, '1')},Org 503,2026-03-01T10:00:00Z\n", bad_rule,
            f"{uid(504, '1')},Org 504,2026-03-01T10:00:00Z\n"]
    path = tmp_path / "orgs_piece.csv"
    for before in range(1, 200):
        # pad the front until the splitter's first record end after the middle is the one
        # right before the multi-line record
        filler = [f"{uid(i, '1')},Filler {i},2026-03-01T10:00:00Z\n" for i in range(before)]
        text = header + "".join(filler) + "".join(tail)
        path.write_text(text)
        parts = formats.plan_parts(path, len(header), 2)
        if len(parts) == 2 and text.encode()[parts[1].start:].startswith(multiline.encode()):
            break
    else:
        pytest.fail("could not place the split before the multi-line record")
    physical = text.split("\n")
    expected = {
        "org_id": (physical.index(bad_type.rstrip("\n")) + 1, bad_type.rstrip("\n")),
        "name": (physical.index(bad_rule.rstrip("\n")) + 1, bad_rule.rstrip("\n")),
    }
    result = _in_process_split_load(empty_database, path, monkeypatch)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (
        before + 6, before + 4, 2)
    problems = quarantine(empty_database, path.name)
    for column, (line, row_text) in expected.items():
        (problem,) = [p for p in problems if p["reason"].startswith(column)]
        assert (problem["location"], problem["raw_row"]) == (f"line {line}", row_text), problem


def test_csv_text_helper_round_trips():
    """The fixtures' own CSV writer quotes what needs quoting."""
    text = csv_text([{"a": 'x, "y"\nz', "b": None}])
    assert _records(text.encode()) == [["a", "b"], ['x, "y"\nz', ""]]
