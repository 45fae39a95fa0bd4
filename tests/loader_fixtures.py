"""Helpers for the loader tests: small exact input files in every format, a large KPI-event
CSV written quickly, and queries on what a load left in the database.

Values in a record are Python values; each writer renders them the way its format carries
them (CSV cell text, NDJSON native JSON, Parquet typed columns):
- `As(text, value)`: written as `text` in CSV/NDJSON (and Parquet string columns), meaning
  `value` (a timestamp's instant, which Parquet writes as a timestamp, or an upper-case UUID)
- `Raw(text)`: a deliberately broken value, written verbatim as text in every format
- `ABSENT`: the field is missing (empty CSV cell, key left out of an NDJSON object, Parquet
  null); `None` is an explicit null (empty CSV cell, JSON null, Parquet null)
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.streams import INTEGER, JSON_ARRAY, NUMBER, STREAMS, TIMESTAMP

UTC = dt.UTC
ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = str(Path(sys.executable).with_name("warehouse"))


@dataclass(frozen=True)
class As:
    text: str
    value: Any


@dataclass(frozen=True)
class Raw:
    text: str


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def uid(n: int, prefix: str = "0") -> uuid.UUID:
    """A readable UUID: uid(3, 'a') == aaaaaaaa-0000-4000-8000-000000000003."""
    return uuid.UUID(f"{prefix * 8}-0000-4000-8000-{n:012x}")


# --------------------------------------------------------------------------- writers


def cell_text(value: Any) -> str:
    """A value as a CSV cell (or a Parquet string) would carry it."""
    if value is None or value is ABSENT:
        return ""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, As):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Raw | As):
        return value.text
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _columns_of(records: Sequence[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for record in records:
        for name in record:
            if name not in columns:
                columns.append(name)
    return columns


def _write_bytes(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def csv_text(
    records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
    header: Callable[[str], str] = str,
) -> str:
    columns = list(columns or _columns_of(records))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header(name) for name in columns])
    for record in records:
        writer.writerow([cell_text(record.get(name, ABSENT)) for name in columns])
    return out.getvalue()


def write_csv(
    path: Path, records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
    header: Callable[[str], str] = str,
) -> Path:
    """CSV (gzip when the name ends in .gz); returns the path."""
    return _write_bytes(path, csv_text(records, columns, header).encode())


def ndjson_lines(
    records: Sequence[dict[str, Any]], stream: str | None = None, schema_record: bool = False,
    schema_version: str | None = None,
) -> list[str]:
    lines = []
    if schema_record:
        assert stream
        lines.append(json.dumps({
            "_type": "schema", "_version": "1.0.0", "stream": stream,
            "fields": [{"name": column.name, "type": column.kind}
                       for column in STREAMS[stream].columns],
        }))
    for record in records:
        shown = {name: _json_value(value) for name, value in record.items() if value is not ABSENT}
        if schema_version is not None:
            shown = {"_schema_version": schema_version, **shown}
        lines.append(json.dumps(shown, ensure_ascii=False))
    return lines


def write_ndjson(
    path: Path, records: Sequence[dict[str, Any]], stream: str | None = None,
    schema_record: bool = False, schema_version: str | None = None,
) -> Path:
    lines = ndjson_lines(records, stream, schema_record, schema_version)
    return _write_bytes(path, ("\n".join(lines) + "\n").encode())


_TZ_OF_COLUMN = {"started_at": "Europe/Berlin", "occurred_at": "+02:00", "created_at": "UTC"}


def _arrow_type(stream: str, name: str) -> pa.DataType:
    known = {column.name: column.kind for column in STREAMS[stream].columns}
    kind = known.get(name)
    if kind == TIMESTAMP:
        tz = _TZ_OF_COLUMN.get(name)
        return pa.timestamp("us", tz=tz) if tz else pa.timestamp("us")
    if kind == NUMBER:
        return pa.float64()
    if kind == INTEGER:
        return pa.int64()
    if kind == JSON_ARRAY:
        return pa.list_(pa.string())
    if name == "event_type":
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def _arrow_value(value: Any, kind: pa.DataType) -> Any:
    if value is None or value is ABSENT:
        return None
    if isinstance(value, As) and not pa.types.is_timestamp(kind):
        return value.text
    if isinstance(value, As):
        if kind.tz is None:  # naive timestamp column: UTC wall time
            return value.value.astimezone(UTC).replace(tzinfo=None)
        return value.value
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def parquet_table(
    records: Sequence[dict[str, Any]], stream: str, columns: Sequence[str] | None = None,
    header: Callable[[str], str] = str, as_text: bool = False,
) -> pa.Table:
    """Typed columns (timestamps with and without tz, list<string>, JSON text) or, with
    `as_text`, every column as strings."""
    columns = list(columns or _columns_of(records))
    arrays = []
    for name in columns:
        values = [record.get(name, ABSENT) for record in records]
        if as_text:
            arrays.append(pa.array(
                [None if v is None or v is ABSENT else cell_text(v) for v in values], pa.string()
            ))
            continue
        kind = _arrow_type(stream, name)
        if pa.types.is_dictionary(kind):
            arrays.append(pa.array([_arrow_value(v, kind) for v in values], pa.string())
                          .dictionary_encode())
        else:
            arrays.append(pa.array([_arrow_value(v, kind) for v in values], kind))
    return pa.table(arrays, names=[header(name) for name in columns])


def write_parquet(path: Path, records: Sequence[dict[str, Any]], stream: str, **options) -> Path:
    pq.write_table(parquet_table(records, stream, **options), path)
    return path


FORMATS = ("csv", "jsonl", "parquet")


def write_any(path_stem: Path, fmt: str, records: Sequence[dict[str, Any]], stream: str,
              columns: Sequence[str] | None = None) -> Path:
    """The records in one of FORMATS; Parquet columns as text so any broken value fits."""
    path = path_stem.with_name(f"{path_stem.name}.{fmt}")
    if fmt == "csv":
        return write_csv(path, records, columns)
    if fmt == "jsonl":
        return write_ndjson(path, records)
    return write_parquet(path, records, stream, columns=columns, as_text=True)


# --------------------------------------------------------------------------- database


@contextlib.contextmanager
def own_database(server_env: dict[str, str], name: str) -> Iterator[Any]:
    """An empty database shared by the tests of one module (like `fresh_database`)."""
    from conftest import Database

    def admin() -> psycopg.Connection:
        return psycopg.connect(
            host=server_env["PGHOST"], port=server_env.get("PGPORT"),
            user=server_env.get("PGUSER"), dbname="postgres", autocommit=True,
        )

    name = f"t_{name}_{uuid.uuid4().hex[:6]}".lower()
    with admin() as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield Database({**server_env, "PGDATABASE": name})
    finally:
        if os.environ.get("WAREHOUSE_KEEP_TEST_DBS") != "1":
            with admin() as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')


def reset_raw(db):
    """Empty the database the way a new one is empty for the loader: no raw schemas."""
    with db.connect(autocommit=True) as conn:
        conn.execute("drop schema if exists raw, raw_landing cascade")
    return db


def database_fixtures(name: str) -> tuple[Any, Any]:
    """(`module_database`, `empty_database`) fixtures for a test module: one database per
    module, emptied before each test. Like `fresh_database`, but dropping a database forces
    a checkpoint on the shared server, which costs seconds per test when it is busy."""

    @pytest.fixture(scope="module")
    def module_database(server_env):
        with own_database(server_env, name) as db:
            yield db

    @pytest.fixture
    def empty_database(module_database):
        return reset_raw(module_database)

    return module_database, empty_database


def load(db, *paths: Path | str, check: bool = True) -> subprocess.CompletedProcess:
    return db.warehouse("load", *(str(path) for path in paths), check=check)


def dicts(db, statement: str, params: tuple | None = None) -> list[dict[str, Any]]:
    with db.connect() as conn:
        cur = conn.execute(statement, params)
        names = [column.name for column in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def raw_rows(db, stream: str) -> list[dict[str, Any]]:
    columns = ", ".join([*STREAMS[stream].column_names, "_extra", "_row_number"])
    return dicts(db, f"select {columns} from raw.{stream} order by _load_id, _row_number")


def count(db, table: str) -> int:
    return db.query(f"select count(*) from {table}")[0][0]


def quarantine(db, file_name: str | None = None) -> list[dict[str, Any]]:
    where = "where file_name = %s" if file_name else ""
    return dicts(
        db,
        "select load_id, stream, file_name, row_number, location, raw_row, reason "
        f"from raw.quarantine {where} order by load_id, row_number",
        (file_name,) if file_name else None,
    )


def ledger(db) -> list[dict[str, Any]]:
    return dicts(db, "select * from raw.load_ledger order by load_id")


def assert_ledger_balanced(db) -> None:
    """rows read = loaded + quarantined for every file, and the counts match the tables."""
    for entry in ledger(db):
        assert entry["rows_read"] == entry["rows_loaded"] + entry["rows_quarantined"], entry
        quarantined = db.query(
            "select count(*) from raw.quarantine where load_id = %s", (entry["load_id"],)
        )[0][0]
        assert quarantined == entry["rows_quarantined"], entry
        loaded = db.query(
            f"select count(*) from raw.{entry['stream']} where _load_id = %s",
            (entry["load_id"],),
        )[0][0]
        assert loaded == entry["rows_loaded"], entry


def summary_line(path: Path, stream: str, read: int, loaded: int, quarantined: int) -> str:
    return f"{path}: {stream}: {read} rows read, {loaded} loaded, {quarantined} quarantined"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landing_tables(db) -> list[str]:
    return [name for (name,) in db.query(
        "select tablename from pg_tables where schemaname = 'raw_landing' order by 1")]


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def start_load(db, *paths: Path) -> subprocess.Popen:
    """`warehouse load` as a child process (to kill it, or to race another one)."""
    env = {**os.environ, **db.env}
    return subprocess.Popen(
        [WAREHOUSE, "load", *(str(path) for path in paths)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def other_backends(db) -> int:
    return db.query(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and backend_type = 'client backend'"
    )[0][0]


# --------------------------------------------------------------------------- a large CSV

KPI_HEADER = (
    "event_id,attempt_id,session_id,org_id,user_id,scenario_id,event_type,event_value,"
    "timestamp_ms,occurred_at\n"
)
BIG_ORG = uid(1, "c")
BIG_SCENARIO = uid(1, "d")
_VALUES = (
    ("filler_word", '"{""word"": ""um""}"'),
    ("interruption", ""),
    ("question_asked", '"{""kind"": ""open""}"'),
    ("keyword_mentioned", '"{""keyword"": ""price, value""}"'),
    ("long_pause", '"{""seconds"": 6.5}"'),
)


def big_event_id(index: int) -> str:
    return f"e{index:07x}-0000-4000-8000-{index:012x}"


def big_timestamp_ms(index: int) -> int:
    return 10_000 + index % 90_000


def big_line(index: int) -> str:
    """Its length depends only on index % 35."""
    event_type, value = _VALUES[index % len(_VALUES)]
    attempt = f"a{index // 40:07x}-0000-4000-8000-{index // 40:012x}"
    occurred = "" if index % 7 == 0 else f"2026-03-01T10:{index % 60:02d}:00Z"
    return (
        f"{big_event_id(index)},{attempt},,{BIG_ORG},user_{index % 997:03d},{BIG_SCENARIO},"
        f"{event_type},{value},{big_timestamp_ms(index)},{occurred}\n"
    )


# a feedback event whose JSON value is pretty-printed: quoted newlines and commas in a cell
MULTILINE_VALUE = {"metric": "pace", "message": "Slow down, then breathe", "severity": "info"}


def multiline_line(index: int, pad: int) -> str:
    text = json.dumps({**MULTILINE_VALUE, "pad": "x" * pad}, indent=1)
    cell = '"' + text.replace('"', '""') + '"'
    return (
        f"{big_event_id(index)},{uid(index, 'a')},,{BIG_ORG},user_ml,{BIG_SCENARIO},"
        f"feedback_given,{cell},{index},2026-03-01T10:00:00Z\n"
    )


@dataclass
class BigCsv:
    path: Path
    rows: int  # data records
    good_rows: int
    sum_timestamp_ms: int  # over the good rows
    null_occurred: int  # good rows without occurred_at
    multiline_ids: list[str]
    bad: dict[int, tuple[str, str]]  # file line -> (line text, column named in the reason)
    middle: int  # byte offset where plan_parts starts looking for a record end


def write_big_kpi_csv(path: Path, rows: int = 300_000) -> BigCsv:
    """`rows` KPI events (about 75 bytes of UUIDs each, ~60 MB) with a few bad rows in each
    half and pretty-printed JSON values (quoted newlines and commas) placed so that the
    byte where the splitter starts looking for a record end lies inside a quoted newline."""
    half = -(-(rows - 3) // 70) * 35  # a multiple of 35: both halves have the same size
    first = [big_line(i) for i in range(half)]
    second = [big_line(i) for i in range(half + 3, half + 3 + half)]
    # bad rows: a rule (negative timestamp_ms) and a type error (non-UUID id) in each half
    bad_positions = {100: "timestamp_ms", 101: "event_id", half + 100: "timestamp_ms",
                     half + 101: "event_id"}

    def broken(text: str, column: str) -> str:
        fields = text.rstrip("\n").split(",")
        if column == "timestamp_ms":
            fields[-2] = "-5"
        else:
            fields[0] = "not-a-uuid"
        return ",".join(fields) + "\n"

    for position, column in bad_positions.items():
        if position < half:
            first[position] = broken(first[position], column)
        else:
            second[position - half] = broken(second[position - half], column)
    # the first and second halves have equal byte sizes (same line shapes): the split
    # target is then the middle of the three multiline records; the middle one's quoted
    # newlines straddle it
    body_first = "".join(first)
    body_second = "".join(second)
    assert len(body_first) == len(body_second)
    pads = [200, 0, 200]
    middle_rows = [multiline_line(half + k, pad) for k, pad in enumerate(pads)]
    header_bytes = len(KPI_HEADER)
    data_bytes = len(body_first) + len("".join(middle_rows)) + len(body_second)
    within = header_bytes + data_bytes // 2 - header_bytes - len(body_first)
    # aim right after the first quoted newline of the second record: moving padding from
    # the third record to the first keeps the size (and the middle) and shifts the records
    aim = len(middle_rows[0]) + middle_rows[1].index("\n", middle_rows[1].index('"')) + 1
    shift = within - aim
    pads = [200 + shift, 0, 200 - shift]
    assert min(pads) >= 0
    middle_rows = [multiline_line(half + k, pad) for k, pad in enumerate(pads)]
    text = KPI_HEADER + body_first + "".join(middle_rows) + body_second
    data = text.encode()
    middle = header_bytes + (len(data) - header_bytes) // 2
    assert data[middle - 1:middle] == b"\n" and data[:middle].count(b'"') % 2 == 1
    path.write_bytes(data)
    bad_lines = {
        number: (line, "event_id" if line.startswith("not-a-uuid,") else "timestamp_ms")
        for number, line in enumerate(text.split("\n"), start=1)
        if line.startswith("not-a-uuid,") or ",-5," in line
    }
    assert len(bad_lines) == len(bad_positions)
    good_indexes = [i for i in range(half) if i not in bad_positions]
    good_indexes += [i for i in range(half + 3, half + 3 + half)
                     if i - 3 not in bad_positions]
    total_ts = sum(big_timestamp_ms(i) for i in good_indexes) + sum(range(half, half + 3))
    null_occurred = sum(1 for i in good_indexes if i % 7 == 0)
    return BigCsv(
        path=path, rows=2 * half + 3, good_rows=2 * half + 3 - len(bad_positions),
        sum_timestamp_ms=total_ts, null_occurred=null_occurred,
        multiline_ids=[big_event_id(i) for i in range(half, half + 3)], bad=bad_lines,
        middle=middle,
    )


_BIG_FILES: dict[int, BigCsv] = {}


def shared_big_kpi_csv(tmp_path_factory, rows: int = 300_000) -> BigCsv:
    """One large file per size for the whole test session (modules share it)."""
    if rows not in _BIG_FILES:
        folder = tmp_path_factory.mktemp(f"big_{rows}")
        _BIG_FILES[rows] = write_big_kpi_csv(folder / f"kpi_events_{rows}.csv", rows)
    return _BIG_FILES[rows]
