"""Load raw files into the `raw` schema: one transaction per file, validated in bulk.

A file's rows are COPYed (text as delivered) into a landing table created inside the load's
transaction, so PostgreSQL writes it without WAL where it can. One set-based query then
names every bad row's first problem (see `rules.py`); those rows move to
`raw.quarantine`. Big files keep their landing table, which joins the stream's table by
inheritance (no second copy); small files are appended to the stream's table. The
content hash in `raw.load_ledger` makes a second delivery of the same bytes a no-op.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from loaders.rules import problem_expression
from loaders.schema import ensure_raw_schema
from loaders.streams import STREAMS, Stream, stream_for_file_name

CSV_EXTENSIONS = (".csv", ".csv.gz")
NDJSON_EXTENSIONS = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_EXTENSIONS = (".parquet",)
# files with at least this many rows keep their own landing table (no second copy)
OWN_TABLE_MIN_ROWS = 100_000
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 1 << 20
# characters that cannot occur unescaped in a JSON line: used as CSV quote and delimiter so
# COPY takes each NDJSON line verbatim
_NO_QUOTE = "\x01"
_NO_DELIMITER = "\x02"


class RejectedFile(Exception):
    """The file as a whole cannot be loaded; nothing of it is."""


@dataclass
class FileResult:
    path: Path
    stream: str | None
    status: str  # loaded | already_loaded | rejected | skipped
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str = ""
    load_id: int | None = None
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        name = str(self.path)
        if self.status == "loaded":
            text = (
                f"{name}: {self.stream}: {self.rows_read} rows read, {self.rows_loaded} loaded, "
                f"{self.rows_quarantined} quarantined"
            )
            if self.problems:
                text += " (e.g. " + "; ".join(self.problems[:3]) + ")"
            return text
        if self.status == "already_loaded":
            return f"{name}: {self.stream}: already loaded (same content), nothing changed"
        if self.status == "skipped":
            return f"{name}: skipped ({self.reason})"
        return f"{name}: REJECTED: {self.reason}"


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_EXTENSIONS):
        return "csv"
    if name.endswith(NDJSON_EXTENSIONS):
        return "ndjson"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return None


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _progress(path: Path, enabled: bool):
    from tqdm import tqdm

    size = path.stat().st_size
    show = enabled and size >= PROGRESS_MIN_BYTES
    return tqdm(
        total=size, unit="B", unit_scale=True, desc=path.name, disable=not show,
        file=sys.stderr, leave=False,
    )


class _CountingReader(io.RawIOBase):
    """Reports progress in bytes of the file on disk, compressed or not."""

    def __init__(self, path: Path, bar) -> None:
        self._raw = open(path, "rb")
        self._bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._bar.update(count)
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_with_progress(path: Path, bar) -> IO[bytes]:
    raw = io.BufferedReader(_CountingReader(path, bar), buffer_size=CHUNK_BYTES)
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw  # type: ignore[return-value]


# --------------------------------------------------------------------------- headers


def _normalise(name: str) -> str:
    return name.strip().lower()


def csv_header(path: Path) -> list[str]:
    try:
        with _open_binary(path) as handle:
            first = handle.readline(1 << 20)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise RejectedFile(f"cannot be read as {file_format(path)}: {error}") from error
    if not first.strip():
        raise RejectedFile("is empty: a CSV file needs a header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RejectedFile("header row is not valid UTF-8") from error
    return [_normalise(name) for name in next(csv.reader([text]))]


def _check_columns(stream: Stream, columns: list[str]) -> None:
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise RejectedFile(f"duplicate column(s) in header: {', '.join(duplicates)}")
    missing = [name for name in stream.required if name not in columns]
    if missing:
        raise RejectedFile(
            f"lacks required column(s) {', '.join(missing)} for stream {stream.name}"
        )
    if any(not name for name in columns):
        raise RejectedFile("header has an empty column name")


# --------------------------------------------------------------------------- landing


def _landing_name(stream: Stream, load_id: int) -> str:
    return f"{stream.name}__load_{load_id}"


def _create_landing(
    cur: psycopg.Cursor, stream: Stream, load_id: int, extra_columns: list[str]
) -> sql.Identifier:
    table = sql.Identifier("raw", _landing_name(stream, load_id))
    columns = [sql.SQL("{} text").format(sql.Identifier(name)) for name in stream.column_names]
    columns += [sql.SQL("{} text").format(sql.Identifier(name)) for name in extra_columns]
    columns += [
        sql.SQL("_extra jsonb"),
        sql.SQL("_load_id bigint not null default {}").format(sql.Literal(load_id)),
        sql.SQL("_row_number bigint generated by default as identity (cache 100000)"),
    ]
    cur.execute(sql.SQL("create table {} ({})").format(table, sql.SQL(", ").join(columns)))
    return table


def _extra_name(index: int) -> str:
    return f"_extra_column_{index}"


def _copy_csv_stream(
    cur: psycopg.Cursor, table: sql.Identifier, targets: list[str], handle: IO[bytes]
) -> None:
    statement = sql.SQL("copy {} ({}) from stdin (format csv, header true)").format(
        table, sql.SQL(", ").join(sql.Identifier(name) for name in targets)
    )
    with cur.copy(statement) as copy:
        while chunk := handle.read(CHUNK_BYTES):
            copy.write(chunk)


def _parse_csv_leniently(
    path: Path, header_width: int
) -> Iterator[tuple[int, list[str] | None, str, str]]:
    """Row by row, for files COPY refused: (row number, fields or None, raw text, problem)."""
    with _open_binary(path) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text, strict=True)
        try:
            next(reader)
        except (StopIteration, csv.Error):
            return
        row_number = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                row_number += 1
                yield row_number, None, "", f"malformed CSV ({error}); the rest of the file is unreadable"
                return
            row_number += 1
            raw = ",".join(fields)
            if any("\udc80" <= ch <= "\udcff" for field_ in fields for ch in field_):
                yield row_number, None, raw.encode("utf-8", "replace").decode(), "row is not valid UTF-8"
            elif len(fields) != header_width:
                yield row_number, None, raw, (
                    f"row has {len(fields)} fields, the header has {header_width}"
                )
            else:
                yield row_number, fields, raw, ""


# --------------------------------------------------------------------------- loader


@dataclass
class _Landed:
    table: sql.Identifier
    rows_read: int
    parse_quarantined: int
    raw_row_sql: sql.Composable
    location_word: str
    lines_table: sql.Identifier | None = None
    extra_columns: list[str] = field(default_factory=list)
    extra_sources: list[str] = field(default_factory=list)


class Loader:
    def __init__(self, conn: psycopg.Connection, progress: bool | None = None) -> None:
        self.conn = conn
        if progress is None:
            progress = sys.stderr.isatty() or os.environ.get("WAREHOUSE_PROGRESS") == "1"
        self.progress = progress
        ensure_raw_schema(conn)

    # -- public

    def load_file(self, path: Path, stream: Stream | None = None) -> FileResult:
        path = Path(path)
        stream = stream or stream_for_file_name(path.name)
        fmt = file_format(path)
        result = FileResult(path, stream.name if stream else None, "loaded")
        try:
            if fmt is None:
                raise RejectedFile(
                    "unknown format: expected .csv, .csv.gz, .jsonl, .ndjson, .jsonl.gz, "
                    ".ndjson.gz or .parquet"
                )
            if stream is None:
                raise RejectedFile(
                    "cannot tell the stream from the file name (expected a prefix of "
                    + ", ".join(STREAMS) + ")"
                )
            digest = content_hash(path)
            if self._already_loaded(digest):
                result.status = "already_loaded"
                return result
            return self._load(path, stream, fmt, digest, result)
        except RejectedFile as rejection:
            self.conn.rollback()
            result.status = "rejected"
            result.reason = f"{path.name}: {rejection}"
            self._record_rejection(path, stream, result.reason)
            return result

    # -- steps

    def _already_loaded(self, digest: str) -> bool:
        row = self.conn.execute(
            "select 1 from raw.load_ledger where content_sha256 = %s", (digest,)
        ).fetchone()
        self.conn.rollback()
        return row is not None

    def _record_rejection(self, path: Path, stream: Stream | None, reason: str) -> None:
        digest = content_hash(path) if path.is_file() else None
        with self.conn.transaction():
            self.conn.execute(
                "insert into raw.rejected_files (stream, file_name, file_path, content_sha256,"
                " reason) values (%s, %s, %s, %s, %s)",
                (stream.name if stream else None, path.name, str(path.resolve()), digest, reason),
            )

    def _load(
        self, path: Path, stream: Stream, fmt: str, digest: str, result: FileResult
    ) -> FileResult:
        conn = self.conn
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("set local timezone = 'UTC'")
            row = cur.execute(
                "insert into raw.load_ledger (stream, file_name, file_path, file_format,"
                " file_bytes, content_sha256) values (%s, %s, %s, %s, %s, %s)"
                " on conflict (content_sha256) do nothing returning load_id",
                (stream.name, path.name, str(path.resolve()), fmt, path.stat().st_size, digest),
            ).fetchone()
            if row is None:
                result.status = "already_loaded"
                return result
            load_id = int(row[0])
            if fmt == "csv":
                landed = self._land_csv(cur, path, stream, load_id)
            elif fmt == "ndjson":
                landed = self._land_ndjson(cur, path, stream, load_id)
            else:
                landed = self._land_parquet(cur, path, stream, load_id)
            self._fold_extra_columns(cur, landed)
            bad = self._quarantine(cur, stream, path, load_id, landed)
            loaded = landed.rows_read - landed.parse_quarantined - bad
            storage = self._store(cur, stream, landed, loaded, load_id)
            cur.execute(
                "update raw.load_ledger set rows_read = %s, rows_loaded = %s,"
                " rows_quarantined = %s, storage_table = %s, loaded_at = clock_timestamp()"
                " where load_id = %s",
                (landed.rows_read, loaded, landed.parse_quarantined + bad, storage, load_id),
            )
            problems = cur.execute(
                "select location || ': ' || reason from raw.quarantine where load_id = %s"
                " order by row_number limit 3",
                (load_id,),
            ).fetchall()
        result.load_id = load_id
        result.rows_read = landed.rows_read
        result.rows_loaded = loaded
        result.rows_quarantined = landed.parse_quarantined + bad
        result.problems = [problem for (problem,) in problems]
        return result

    def _land_csv(self, cur: psycopg.Cursor, path: Path, stream: Stream, load_id: int) -> _Landed:
        header = csv_header(path)
        _check_columns(stream, header)
        known = set(stream.column_names)
        extras = [name for name in header if name not in known]
        extra_columns = [_extra_name(index) for index in range(len(extras))]
        targets = [name if name in known else extra_columns[extras.index(name)] for name in header]
        table = _create_landing(cur, stream, load_id, extra_columns)
        cur.execute("savepoint bulk_copy")
        try:
            with _progress(path, self.progress) as bar, _open_with_progress(path, bar) as handle:
                _copy_csv_stream(cur, table, targets, handle)
            rows = cur.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()[0]
            parse_quarantined = 0
        except (psycopg.errors.DataError, psycopg.errors.BadCopyFileFormat,
                psycopg.errors.CharacterNotInRepertoire, OSError, EOFError) as error:
            if isinstance(error, OSError | EOFError) and not isinstance(
                error, gzip.BadGzipFile
            ):
                raise RejectedFile(f"cannot be read: {error}") from error
            cur.execute("rollback to savepoint bulk_copy")
            rows, parse_quarantined = self._copy_csv_leniently(
                cur, path, stream, load_id, table, targets
            )
        raw_row = sql.SQL("concat_ws(',', {})").format(
            sql.SQL(", ").join(
                sql.SQL("case when {c} is null then '' when {c} ~ '[,\"\\n\\r]' then "
                        "'\"' || replace({c}, '\"', '\"\"') || '\"' else {c} end").format(
                    c=sql.Identifier(name)
                )
                for name in targets
            )
        )
        return _Landed(
            table, rows + parse_quarantined, parse_quarantined, raw_row, "row",
            extra_columns=extra_columns, extra_sources=extras,
        )

    def _copy_csv_leniently(
        self, cur: psycopg.Cursor, path: Path, stream: Stream, load_id: int,
        table: sql.Identifier, targets: list[str],
    ) -> tuple[int, int]:
        good = 0
        bad_rows: list[tuple[int, str, str]] = []
        statement = sql.SQL("copy {} ({}, _row_number) from stdin").format(
            table, sql.SQL(", ").join(sql.Identifier(name) for name in targets)
        )
        try:
            with cur.copy(statement) as copy:
                for row_number, fields, raw, problem in _parse_csv_leniently(path, len(targets)):
                    if fields is None:
                        bad_rows.append((row_number, raw, problem))
                        continue
                    values: list[str | int | None] = [value if value != "" else None for value in fields]
                    values.append(row_number)
                    copy.write_row(values)
                    good += 1
        except (OSError, EOFError) as error:
            raise RejectedFile(f"cannot be read: {error}") from error
        self._insert_parse_problems(cur, stream, path, load_id, bad_rows, "row")
        return good, len(bad_rows)

    def _insert_parse_problems(
        self, cur: psycopg.Cursor, stream: Stream, path: Path, load_id: int,
        problems: list[tuple[int, str, str]], location_word: str,
    ) -> None:
        if not problems:
            return
        cur.executemany(
            "insert into raw.quarantine (load_id, stream, file_name, row_number, location,"
            " raw_row, reason) values (%s, %s, %s, %s, %s, %s, %s)",
            [
                (load_id, stream.name, path.name, number, f"{location_word} {number}", raw, why)
                for number, raw, why in problems
            ],
        )

    def _land_ndjson(
        self, cur: psycopg.Cursor, path: Path, stream: Stream, load_id: int
    ) -> _Landed:
        lines = sql.Identifier(f"_lines_{load_id}")
        cur.execute(
            sql.SQL(
                "create temp table {} (line text, line_number bigint generated always as "
                "identity (cache 100000)) on commit drop"
            ).format(lines)
        )
        statement = sql.SQL(
            "copy {} (line) from stdin (format csv, quote {}, delimiter {})"
        ).format(lines, sql.Literal(_NO_QUOTE), sql.Literal(_NO_DELIMITER))
        try:
            with _progress(path, self.progress) as bar, _open_with_progress(path, bar) as handle:
                with cur.copy(statement) as copy:
                    while chunk := handle.read(CHUNK_BYTES):
                        copy.write(chunk)
        except (OSError, EOFError) as error:
            raise RejectedFile(f"cannot be read as gzip/NDJSON: {error}") from error
        except (psycopg.errors.DataError, psycopg.errors.BadCopyFileFormat) as error:
            raise RejectedFile(f"cannot be read as NDJSON: {error.diag.message_primary}") from error
        table = _create_landing(cur, stream, load_id, [])
        known = sql.SQL(", ").join(sql.Literal(name) for name in stream.column_names)
        # blank lines are not records; a schema record is not data
        cur.execute(
            sql.SQL(
                "create temp table {parsed} on commit drop as "
                "select line_number, line, case when pg_input_is_valid(line, 'jsonb') "
                "then line::jsonb end as record from {lines} where btrim(line) <> ''"
            ).format(parsed=sql.Identifier(f"_parsed_{load_id}"), lines=lines)
        )
        parsed = sql.Identifier(f"_parsed_{load_id}")
        cur.execute(
            sql.SQL(
                "delete from {} where jsonb_typeof(record) = 'object' "
                "and record->>'_type' = 'schema'"
            ).format(parsed)
        )
        first = cur.execute(
            sql.SQL(
                "select record from {} where jsonb_typeof(record) = 'object' "
                "order by line_number limit 1"
            ).format(parsed)
        ).fetchone()
        bad_count = cur.execute(
            sql.SQL(
                "insert into raw.quarantine (load_id, stream, file_name, row_number, location,"
                " raw_row, reason) select %s, %s, %s, line_number, 'line ' || line_number, line,"
                " case when record is null then 'line is not valid JSON'"
                " else 'line is a JSON ' || jsonb_typeof(record) || ', not an object' end"
                " from {} where record is null or jsonb_typeof(record) <> 'object'"
            ).format(parsed),
            (load_id, stream.name, path.name),
        ).rowcount
        total = cur.execute(sql.SQL("select count(*) from {}").format(parsed)).fetchone()[0]
        if total > bad_count and first is not None:
            present = set(first[0].keys())
            missing = [name for name in stream.required if name not in present]
            if missing:
                absent = cur.execute(
                    sql.SQL("select {} from {}").format(
                        sql.SQL(", ").join(
                            sql.SQL("not bool_or(record ? {})").format(sql.Literal(name))
                            for name in missing
                        ),
                        parsed,
                    )
                ).fetchone()
                never = [name for name, gone in zip(missing, absent, strict=True) if gone]
                if never:
                    raise RejectedFile(
                        f"lacks required column(s) {', '.join(never)} for stream {stream.name}"
                    )
        cur.execute(
            sql.SQL(
                "insert into {table} ({columns}, _extra, _row_number) "
                "select {values}, nullif(record - array[{known}]::text[], '{{}}'::jsonb), "
                "line_number from {parsed} where jsonb_typeof(record) = 'object'"
            ).format(
                table=table,
                columns=sql.SQL(", ").join(sql.Identifier(n) for n in stream.column_names),
                values=sql.SQL(", ").join(
                    sql.SQL("nullif(record->>{}, '')").format(sql.Literal(n))
                    for n in stream.column_names
                ),
                known=known,
                parsed=parsed,
            )
        )
        raw_row = sql.SQL("(select p.line from {} as p where p.line_number = _row_number)").format(
            parsed
        )
        return _Landed(table, total, bad_count, raw_row, "line", lines_table=lines)

    def _land_parquet(
        self, cur: psycopg.Cursor, path: Path, stream: Stream, load_id: int
    ) -> _Landed:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise RejectedFile(f"cannot be read as Parquet: {error}") from error
        names = [_normalise(name) for name in parquet.schema_arrow.names]
        _check_columns(stream, names)
        known = set(stream.column_names)
        extras = [name for name in names if name not in known]
        extra_columns = [_extra_name(index) for index in range(len(extras))]
        targets = [name if name in known else extra_columns[extras.index(name)] for name in names]
        table = _create_landing(cur, stream, load_id, extra_columns)
        statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
            table, sql.SQL(", ").join(sql.Identifier(name) for name in targets)
        )
        rows = 0
        try:
            with cur.copy(statement) as copy:
                for batch in parquet.iter_batches(batch_size=65_536):
                    copy.write(_batch_as_csv(batch))
                    rows += batch.num_rows
        except (pa.ArrowException, OSError) as error:
            raise RejectedFile(f"cannot be read as Parquet: {error}") from error
        raw_row = sql.SQL("json_build_object({})::text").format(
            sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(source), sql.Identifier(target))
                for source, target in zip(names, targets, strict=True)
            )
        )
        return _Landed(
            table, rows, 0, raw_row, "row", extra_columns=extra_columns, extra_sources=extras
        )

    def _fold_extra_columns(self, cur: psycopg.Cursor, landed: _Landed) -> None:
        if not landed.extra_columns:
            return
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(source), sql.Identifier(target))
            for source, target in zip(landed.extra_sources, landed.extra_columns, strict=True)
        )
        cur.execute(
            sql.SQL(
                "update {} set _extra = nullif(jsonb_strip_nulls(jsonb_build_object({})), "
                "'{{}}'::jsonb)"
            ).format(landed.table, pairs)
        )

    def _quarantine(
        self, cur: psycopg.Cursor, stream: Stream, path: Path, load_id: int, landed: _Landed
    ) -> int:
        bad = cur.execute(
            sql.SQL(
                "insert into raw.quarantine (load_id, stream, file_name, row_number, location,"
                " raw_row, reason) select %s, %s, %s, _row_number, {word} || ' ' || _row_number,"
                " {raw_row}, reason from (select *, {problem} as reason from {table}) as checked"
                " where reason is not null"
            ).format(
                word=sql.Literal(landed.location_word),
                raw_row=landed.raw_row_sql,
                problem=problem_expression(stream),
                table=landed.table,
            ),
            (load_id, stream.name, path.name),
        ).rowcount
        if bad:
            cur.execute(
                sql.SQL(
                    "delete from {} as landed using raw.quarantine as q where q.load_id = %s"
                    " and landed._row_number = q.row_number"
                ).format(landed.table),
                (load_id,),
            )
        return bad

    def _store(
        self, cur: psycopg.Cursor, stream: Stream, landed: _Landed, loaded: int, load_id: int
    ) -> str:
        for column in landed.extra_columns:
            cur.execute(
                sql.SQL("alter table {} drop column {}").format(
                    landed.table, sql.Identifier(column)
                )
            )
        parent = sql.Identifier("raw", stream.name)
        cur.execute(
            sql.SQL("alter table {} alter column _row_number drop identity").format(landed.table)
        )
        if loaded >= OWN_TABLE_MIN_ROWS:
            cur.execute(sql.SQL("alter table {} inherit {}").format(landed.table, parent))
            cur.execute(
                sql.SQL("comment on table {} is {}").format(
                    landed.table,
                    sql.Literal(f"Rows of one loaded file; part of raw.{stream.name}."),
                )
            )
            return f"raw.{_landing_name(stream, load_id)}"
        columns = sql.SQL(", ").join(
            sql.Identifier(name)
            for name in (*stream.column_names, "_extra", "_load_id", "_row_number")
        )
        cur.execute(
            sql.SQL("insert into {} ({}) select {} from {}").format(
                parent, columns, columns, landed.table
            )
        )
        cur.execute(sql.SQL("drop table {}").format(landed.table))
        return f"raw.{stream.name}"


def _batch_as_csv(batch) -> bytes:
    """A Parquet record batch as CSV text: timestamps in UTC ISO 8601, lists as JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            utc = column if kind.tz else pc.assume_timezone(column, "UTC")
            column = pc.strftime(utc.cast(pa.timestamp("us", "UTC")), format="%Y-%m-%dT%H:%M:%S.%fZ")
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind) \
                or pa.types.is_map(kind):
            column = pa.array(
                [None if value is None else json.dumps(value) for value in column.to_pylist()],
                pa.string(),
            )
        elif not pa.types.is_string(kind):
            column = column.cast(pa.string())
        columns.append(column)
    table = pa.table(columns, names=[f"c{index}" for index in range(len(columns))])
    sink = io.BytesIO()
    pacsv.write_csv(
        table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed")
    )
    return sink.getvalue()


# --------------------------------------------------------------------------- discovery

_STREAM_ORDER = {name: index for index, name in enumerate(STREAMS)}


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Expand folders into their data files (streams in dependency order); returns
    (files to load, non-data files skipped in folders)."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
                if candidate.name.startswith("."):
                    continue
                if file_format(candidate) is None:
                    skipped.append(candidate)
                else:
                    files.append(candidate)
        else:
            files.append(path)

    def order(candidate: Path) -> tuple[int, str]:
        stream = stream_for_file_name(candidate.name)
        return (_STREAM_ORDER[stream.name] if stream else len(_STREAM_ORDER), candidate.name)

    return sorted(files, key=order), skipped


def load_paths(
    conn: psycopg.Connection,
    paths: Iterable[Path],
    stream_name: str | None = None,
    progress: bool | None = None,
) -> list[FileResult]:
    stream = STREAMS[stream_name] if stream_name else None
    loader = Loader(conn, progress=progress)
    files, skipped = discover(paths)
    results = [FileResult(path, None, "skipped", reason="not a data file") for path in skipped]
    for path in files:
        if not path.exists():
            results.append(FileResult(path, stream_name, "rejected", reason=f"{path}: no such file"))
            continue
        results.append(loader.load_file(path, stream))
    return results
