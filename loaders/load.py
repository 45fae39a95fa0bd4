"""Load raw files into the `raw` schema: all of a file or none of it, validated in bulk.

How a file travels:
1. Its content hash is looked up in `raw.load_ledger`: the same bytes load once.
2. Its rows are COPYed into typed landing tables in `raw_landing`, created for this load.
   A large uncompressed CSV is split at a record boundary and copied by two connections
   at once (PostgreSQL parses one COPY per core). `on_error ignore` makes COPY report each
   row whose text is not of its column's type instead of failing the file.
3. One set-based query per landing table names each remaining row's first broken rule
   (`rules.py`); those rows leave the landing table for `raw.quarantine`.
4. One transaction then writes the ledger row and the quarantine, and publishes the rows:
   a large file's landing tables join `raw.<stream>` by inheritance (no second copy), a
   small file's rows are appended to it. Until that commit nothing of the file is visible;
   landing tables of a load that died are dropped by the next load.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from loaders.rules import format_problem, rule_problem, type_problem
from loaders.schema import ensure_raw_schema, record_key_index_ddl
from loaders.streams import STREAMS, Stream, stream_for_file_name

CSV_EXTENSIONS = (".csv", ".csv.gz")
NDJSON_EXTENSIONS = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_EXTENSIONS = (".parquet",)
# a file with at least this many good rows keeps its landing tables as children of the
# stream's table; smaller ones are appended so cron-sized deliveries add no tables
OWN_TABLE_MIN_ROWS = 100_000
# an uncompressed CSV at least this big is copied by two connections
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 1 << 20
LOAD_LOCK_CLASS = 0x57484C44  # advisory lock class held by a live load ("WHLD")
# characters that cannot occur unescaped in a JSON line: CSV quote and delimiter for COPY,
# so each NDJSON line arrives verbatim
_NO_QUOTE = "\x01"
_NO_DELIMITER = "\x02"
_SKIPPED_ROW = re.compile(
    r'^skipping row due to data type incompatibility at line (\d+) for column "([^"]+)": (.*)$',
    re.DOTALL,
)


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


@dataclass
class Problem:
    row_number: int
    location: str
    raw_row: str | None
    reason: str


@dataclass
class Part:
    """A contiguous piece of a file copied by one connection."""

    index: int
    start: int  # byte offsets in the uncompressed CSV
    end: int | None
    header: bool
    first_row: int  # row number of the piece's first record
    first_line: int  # file line number of the piece's first line


@dataclass
class PartResult:
    table: str
    rows_read: int = 0
    rows_good: int = 0
    problems: list[Problem] = field(default_factory=list)
    line_based: bool = True


# --------------------------------------------------------------------------- files


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_EXTENSIONS):
        return "csv"
    if name.endswith(NDJSON_EXTENSIONS):
        return "ndjson"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return None


def _compressed(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_binary(path: Path) -> IO[bytes]:
    if _compressed(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _normalise(name: str) -> str:
    return name.strip().lower()


def csv_header(path: Path) -> tuple[list[str], int]:
    """Column names of the header row and its length in bytes."""
    try:
        with _open_binary(path) as handle:
            first = handle.readline(1 << 20)
    except (OSError, EOFError) as error:
        raise RejectedFile(f"cannot be read as {file_format(path)}: {error}") from error
    if not first.strip():
        raise RejectedFile("is empty: a CSV file needs a header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RejectedFile("header row is not valid UTF-8") from error
    return [_normalise(name) for name in next(csv.reader([text]))], len(first)


def _check_columns(stream: Stream, columns: list[str]) -> None:
    if any(not name for name in columns):
        raise RejectedFile("header has an empty column name")
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise RejectedFile(f"duplicate column(s) in header: {', '.join(duplicates)}")
    missing = [name for name in stream.required if name not in columns]
    if missing:
        raise RejectedFile(
            f"lacks required column(s) {', '.join(missing)} for stream {stream.name}"
        )


def plan_parts(path: Path, header_bytes: int, workers: int) -> list[Part]:
    """Split an uncompressed CSV into pieces that start at record boundaries.

    A newline ends a record when an even number of quote characters precede it (RFC 4180
    doubles quotes inside quoted fields). Row numbers of later pieces assume one line per
    record, exact unless quoted fields span lines (then they still increase)."""
    size = path.stat().st_size
    if workers < 2 or _compressed(path) or size < PARALLEL_MIN_BYTES:
        return [Part(0, 0, None, True, 1, 1)]
    target = header_bytes + (size - header_bytes) // workers
    with open(path, "rb") as handle:
        head = handle.read(target)
        quotes = head.count(b'"')
        lines = head.count(b"\n")
        split = target
        while True:
            block = handle.read(CHUNK_BYTES)
            if not block:
                return [Part(0, 0, None, True, 1, 1)]
            for position, byte in enumerate(block):
                if byte == 0x22:
                    quotes += 1
                elif byte == 0x0A:
                    lines += 1
                    if quotes % 2 == 0:
                        split += position + 1
                        first_line = lines + 1
                        return [
                            Part(0, 0, split, True, 1, 1),
                            Part(1, split, None, False, first_line - 1, first_line),
                        ]
            split += len(block)


class _Progress:
    def __init__(self, path: Path, enabled: bool) -> None:
        from tqdm import tqdm

        size = path.stat().st_size
        self._bar = tqdm(
            total=size, unit="B", unit_scale=True, desc=path.name, file=sys.stderr,
            disable=not (enabled and size >= PROGRESS_MIN_BYTES), leave=False,
        )
        self._lock = threading.Lock()

    def update(self, count: int) -> None:
        with self._lock:
            self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


def _read_lines(
    path: Path, wanted: set[int], start: int = 0, first_line: int = 1
) -> dict[int, str]:
    """The text of the given 1-based file lines (for quarantine), reading from byte `start`
    (where line `first_line` begins) and skipping whole blocks that hold none of them."""
    found: dict[int, str] = {}
    if not wanted:
        return found
    targets = sorted(wanted)
    next_target = 0
    line = first_line  # number of the line that starts at the current position
    carry = b""
    with _open_binary(path) as handle:
        handle.seek(start)
        while next_target < len(targets):
            block = handle.read(8 * CHUNK_BYTES)
            if not block:
                if carry and line == targets[next_target]:
                    found[line] = carry.rstrip(b"\r\n").decode("utf-8", "replace")
                break
            block = carry + block
            newlines = block.count(b"\n")
            if targets[next_target] > line + newlines:
                cut = block.rfind(b"\n") + 1
                carry = block[cut:]
                line += newlines
                continue
            pieces = block.split(b"\n")
            carry = pieces.pop()
            for piece in pieces:
                if next_target < len(targets) and line == targets[next_target]:
                    found[line] = piece.rstrip(b"\r").decode("utf-8", "replace")
                    next_target += 1
                line += 1
    return found


# --------------------------------------------------------------------------- landing


def _landing_name(stream: Stream, load_id: int, part: int) -> str:
    return f"{stream.name}__load_{load_id}_p{part}"


def _create_landing(
    cur: psycopg.Cursor, stream: Stream, load_id: int, part: int, first_row: int,
    extra_columns: list[str],
) -> sql.Identifier:
    table = sql.Identifier("raw_landing", _landing_name(stream, load_id, part))
    columns = [
        sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.sql_type))
        for column in stream.columns
    ]
    columns += [sql.SQL("{} text").format(sql.Identifier(name)) for name in extra_columns]
    columns += [
        sql.SQL("_extra jsonb"),
        # the check lets the planner skip a published file's table when reading newer loads
        sql.SQL("_load_id bigint not null default {lid} check (_load_id = {lid})").format(
            lid=sql.Literal(load_id)
        ),
        sql.SQL(
            "_row_number bigint generated by default as identity (start with {} cache 100000)"
        ).format(sql.Literal(first_row)),
    ]
    cur.execute(sql.SQL("create table {} ({})").format(table, sql.SQL(", ").join(columns)))
    return table


def _name_of(table: sql.Identifier) -> str:
    """The table name of a schema-qualified identifier."""
    return str(table._obj[-1])


def _extra_name(index: int) -> str:
    return f"_extra_column_{index}"


@dataclass
class _Columns:
    """How a file's columns map onto the landing table."""

    targets: list[str]  # landing column per file column, in file order
    sources: list[str]  # the file's own names, in file order
    extras: list[str] = field(default_factory=list)  # landing names of unknown columns

    @classmethod
    def of(cls, stream: Stream, names: list[str]) -> _Columns:
        known = set(stream.column_names)
        unknown = [name for name in names if name not in known]
        extras = [_extra_name(index) for index in range(len(unknown))]
        targets = [name if name in known else extras[unknown.index(name)] for name in names]
        return cls(targets, names, extras)

    def unknown_pairs(self) -> list[tuple[str, str]]:
        return [
            (source, target)
            for source, target in zip(self.sources, self.targets, strict=True)
            if target in self.extras
        ]


SESSION_SETTINGS = "set timezone = 'UTC'; set datestyle = 'ISO, YMD'"


def _connect_like(conn: psycopg.Connection) -> psycopg.Connection:
    other = psycopg.connect(conn.info.dsn, password=conn.info.password or None)
    other.execute(SESSION_SETTINGS)
    other.commit()
    return other


# --------------------------------------------------------------------------- loader


class Loader:
    def __init__(
        self, conn: psycopg.Connection, progress: bool | None = None, workers: int | None = None
    ) -> None:
        self.conn = conn
        if progress is None:
            progress = sys.stderr.isatty() or os.environ.get("WAREHOUSE_PROGRESS") == "1"
        self.progress = progress
        self.workers = workers or min(2, os.cpu_count() or 1)
        # offset-less timestamps are UTC; slashed dates are read year first (or rejected)
        conn.execute(SESSION_SETTINGS)
        conn.commit()
        ensure_raw_schema(conn)
        self._drop_abandoned_landings()

    # -- public

    def load_file(self, path: Path, stream: Stream | None = None) -> FileResult:
        path = Path(path)
        stream = stream or stream_for_file_name(path.name)
        fmt = file_format(path)
        result = FileResult(path, stream.name if stream else None, "loaded")
        digest: str | None = None
        try:
            if not path.is_file():
                raise RejectedFile("no such file")
            if fmt is None:
                raise RejectedFile(
                    "unknown format: expected .csv, .csv.gz, .jsonl, .ndjson, .jsonl.gz, "
                    ".ndjson.gz or .parquet"
                )
            if stream is None:
                raise RejectedFile(
                    "cannot tell the stream from the file name (expected a name starting with "
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
            self._record_rejection(path, stream, result.reason, digest)
            return result
        except psycopg.Error as error:
            # not the file's fault: report it, leave nothing behind, go on with the next file
            self.conn.rollback()
            result.status = "rejected"
            result.reason = (
                f"{path.name}: database error, nothing loaded; retry later: "
                f"{type(error).__name__}: {error}".strip()
            )
            return result

    # -- bookkeeping

    def _already_loaded(self, digest: str) -> bool:
        row = self.conn.execute(
            "select 1 from raw.load_ledger where content_sha256 = %s", (digest,)
        ).fetchone()
        self.conn.rollback()
        return row is not None

    def _record_rejection(
        self, path: Path, stream: Stream | None, reason: str, digest: str | None
    ) -> None:
        if digest is None and path.is_file():
            digest = content_hash(path)
        with self.conn.transaction():
            self.conn.execute(
                "insert into raw.rejected_files (stream, file_name, file_path, content_sha256,"
                " reason) values (%s, %s, %s, %s, %s)",
                (stream.name if stream else None, path.name, str(path.resolve()), digest, reason),
            )

    def _drop_abandoned_landings(self) -> None:
        """Landing tables whose load died (its session lock is free) are dropped."""
        rows = self.conn.execute(
            "select tablename from pg_tables where schemaname = 'raw_landing'"
        ).fetchall()
        self.conn.commit()
        for (name,) in rows:
            match = re.search(r"__load_(\d+)_p\d+$", name)
            if not match:
                continue
            load_id = int(match.group(1))
            free = self.conn.execute(
                "select pg_try_advisory_lock(%s, %s)", (LOAD_LOCK_CLASS, load_id)
            ).fetchone()[0]
            if free:
                self.conn.execute(sql.SQL("drop table if exists {}").format(
                    sql.Identifier("raw_landing", name)))
                self.conn.execute("select pg_advisory_unlock(%s, %s)", (LOAD_LOCK_CLASS, load_id))
            self.conn.commit()

    # -- one file

    def _load(
        self, path: Path, stream: Stream, fmt: str, digest: str, result: FileResult
    ) -> FileResult:
        conn = self.conn
        load_id = int(conn.execute("select nextval('raw.load_id_seq')").fetchone()[0])
        conn.execute("select pg_advisory_lock(%s, %s)", (LOAD_LOCK_CLASS, load_id))
        conn.commit()
        parts: list[PartResult] = []
        try:
            if fmt == "csv":
                parts = self._land_csv(path, stream, load_id)
            elif fmt == "ndjson":
                parts = [self._land_ndjson(path, stream, load_id)]
            else:
                parts = [self._land_parquet(path, stream, load_id)]
            return self._publish(path, stream, fmt, digest, load_id, parts, result)
        finally:
            conn.rollback()
            for part in parts:
                conn.execute(sql.SQL("drop table if exists {}").format(
                    sql.Identifier("raw_landing", part.table)))
            conn.execute("select pg_advisory_unlock(%s, %s)", (LOAD_LOCK_CLASS, load_id))
            conn.commit()

    def _publish(
        self, path: Path, stream: Stream, fmt: str, digest: str, load_id: int,
        parts: list[PartResult], result: FileResult,
    ) -> FileResult:
        conn = self.conn
        rows_read = sum(part.rows_read for part in parts)
        rows_good = sum(part.rows_good for part in parts)
        problems = [problem for part in parts for problem in part.problems]
        with conn.transaction():
            row = conn.execute(
                "insert into raw.load_ledger (load_id, stream, file_name, file_path, file_format,"
                " file_bytes, content_sha256, rows_read, rows_loaded, rows_quarantined,"
                " storage_table) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (content_sha256) do nothing returning load_id",
                (
                    load_id, stream.name, path.name, str(path.resolve()), fmt,
                    path.stat().st_size, digest, rows_read, rows_good, len(problems),
                    f"raw.{stream.name}",
                ),
            ).fetchone()
            if row is None:
                result.status = "already_loaded"
                return result
            if problems:
                with conn.cursor().copy(
                    "copy raw.quarantine (load_id, stream, file_name, row_number, location,"
                    " raw_row, reason) from stdin"
                ) as copy:
                    for problem in problems:
                        copy.write_row((
                            load_id, stream.name, path.name, problem.row_number,
                            problem.location, problem.raw_row, problem.reason,
                        ))
            parent = sql.Identifier("raw", stream.name)
            if rows_good >= OWN_TABLE_MIN_ROWS:
                for part in parts:
                    landing = sql.Identifier("raw_landing", part.table)
                    conn.execute(sql.SQL("alter table {} set schema raw").format(landing))
                    child = sql.Identifier("raw", part.table)
                    if stream.version_column is not None:
                        conn.execute(record_key_index_ddl(stream, part.table))
                    conn.execute(sql.SQL("alter table {} inherit {}").format(child, parent))
                    conn.execute(sql.SQL("comment on table {} is {}").format(
                        child, sql.Literal(f"Rows of {path.name}; part of raw.{stream.name}.")))
                conn.execute(
                    "update raw.load_ledger set storage_table = %s where load_id = %s",
                    (", ".join(f"raw.{part.table}" for part in parts), load_id),
                )
                parts.clear()  # published: nothing left to drop
            else:
                columns = sql.SQL(", ").join(
                    sql.Identifier(name)
                    for name in (*stream.column_names, "_extra", "_load_id", "_row_number")
                )
                for part in parts:
                    conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
                        parent, columns, columns, sql.Identifier("raw_landing", part.table)))
            conn.execute(
                "update raw.load_ledger set loaded_at = clock_timestamp() where load_id = %s",
                (load_id,),
            )
        result.load_id = load_id
        result.rows_read = rows_read
        result.rows_loaded = rows_good
        result.rows_quarantined = len(problems)
        ordered = sorted(problems, key=lambda problem: problem.row_number)
        result.problems = [f"{problem.location}: {problem.reason}" for problem in ordered[:3]]
        return result

    # -- CSV

    def _land_csv(self, path: Path, stream: Stream, load_id: int) -> list[PartResult]:
        header, header_bytes = csv_header(path)
        _check_columns(stream, header)
        columns = _Columns.of(stream, header)
        pieces = plan_parts(path, header_bytes, self.workers)
        progress = _Progress(path, self.progress)
        results: list[PartResult | BaseException | None] = [None] * len(pieces)

        def run(piece: Part) -> None:
            conn = self.conn if piece.index == 0 else _connect_like(self.conn)
            try:
                results[piece.index] = self._copy_csv_piece(
                    conn, path, stream, load_id, piece, columns, progress.update
                )
            except BaseException as error:  # surfaced in the calling thread
                conn.rollback()
                results[piece.index] = error
            finally:
                if conn is not self.conn:
                    conn.close()

        threads = [threading.Thread(target=run, args=(piece,)) for piece in pieces[1:]]
        for thread in threads:
            thread.start()
        run(pieces[0])
        for thread in threads:
            thread.join()
        progress.close()
        landed = [part for part in results if isinstance(part, PartResult)]
        failures = [part for part in results if isinstance(part, BaseException)]
        if failures:
            for part in landed:
                self.conn.execute(sql.SQL("drop table if exists {}").format(
                    sql.Identifier("raw_landing", part.table)))
            self.conn.commit()
            if any(isinstance(error, _NeedsLenientParse) for error in failures):
                return [self._land_csv_leniently(path, stream, load_id, columns)]
            raise failures[0]
        self._renumber_later_pieces(landed, pieces)  # type: ignore[arg-type]
        record_based = [
            problem for part in landed if not part.line_based  # type: ignore[union-attr]
            for problem in part.problems  # type: ignore[union-attr]
        ]
        _resolve_raw_records(path, record_based)
        return landed  # type: ignore[return-value]

    def _renumber_later_pieces(self, parts: list[PartResult], pieces: list[Part]) -> None:
        """A later piece's first row number was planned from line counts; once the earlier
        pieces are read, quoted newlines in them may shift it."""
        next_row = 1
        for part, piece in zip(parts, pieces, strict=True):
            shift = next_row - piece.first_row
            if shift:
                self.conn.execute(
                    sql.SQL("update {} set _row_number = _row_number + %s").format(
                        sql.Identifier("raw_landing", part.table)),
                    (shift,),
                )
                self.conn.commit()
                for problem in part.problems:
                    problem.row_number += shift
                    if not part.line_based:
                        problem.location = _row_location(problem.row_number)
            next_row += part.rows_read

    def _copy_csv_piece(
        self, conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, piece: Part,
        columns: _Columns, advance: Callable[[int], None],
    ) -> PartResult:
        skipped: list[tuple[int, str, str]] = []

        def on_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
            match = _SKIPPED_ROW.match(diagnostic.message_primary or "")
            if match:
                skipped.append((int(match.group(1)), match.group(2), match.group(3)))

        conn.add_notice_handler(on_notice)
        try:
            with conn.transaction():
                cur = conn.cursor()
                table = _create_landing(
                    cur, stream, load_id, piece.index, piece.first_row, columns.extras
                )
                statement = sql.SQL(
                    "copy {} ({}) from stdin (format csv, header {}, force_null *,"
                    " on_error ignore, log_verbosity verbose)"
                ).format(
                    table,
                    sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets),
                    sql.SQL("true" if piece.header else "false"),
                )
                newlines = 0
                last_byte = b"\n"
                try:
                    with cur.copy(statement) as copy, _open_binary(path) as handle:
                        handle.seek(piece.start)
                        remaining = None if piece.end is None else piece.end - piece.start
                        while remaining is None or remaining > 0:
                            size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
                            chunk = handle.read(size)
                            if not chunk:
                                break
                            copy.write(chunk)
                            newlines += chunk.count(b"\n")
                            last_byte = chunk[-1:]
                            if remaining is not None:
                                remaining -= len(chunk)
                            if not _compressed(path):
                                advance(len(chunk))
                    copied = cur.rowcount
                except (psycopg.errors.BadCopyFileFormat, psycopg.errors.CharacterNotInRepertoire,
                        psycopg.errors.UntranslatableCharacter) as error:
                    raise _NeedsLenientParse(str(error)) from error
                except (OSError, EOFError) as error:
                    raise RejectedFile(f"cannot be read: {error}") from error
                header_lines = 1 if piece.header else 0
                records = copied + len(skipped)
                physical_lines = newlines + (0 if last_byte == b"\n" else 1)
                part = PartResult(_name_of(table), rows_read=records)
                # one line per record (no quoted newlines): rows are located by file line
                part.line_based = physical_lines == records + header_lines

                def locate(row_number: int) -> str:
                    if part.line_based:
                        line = piece.first_line + header_lines + row_number - piece.first_row
                        return f"line {line}"
                    return _row_location(row_number)

                if part.line_based:
                    numbers = [piece.first_row + line - header_lines - 1 for line, _, _ in skipped]
                else:
                    # COPY numbers physical lines; the identity column numbers records and
                    # advances over skipped rows, so skipped records are its gaps
                    numbers = [
                        number for (number,) in cur.execute(
                            sql.SQL(
                                "select number from generate_series(%s::bigint, %s::bigint)"
                                " as number except select _row_number from {} order by 1"
                            ).format(table),
                            (piece.first_row, piece.first_row + records - 1),
                        ).fetchall()
                    ]
                for number, (_, column, value) in zip(numbers, skipped, strict=True):
                    reason = (
                        type_problem(stream.column(column), _unquote_notice(value))
                        if column in stream.column_names else f"{column}: {value}"
                    )
                    part.problems.append(Problem(number, locate(number), None, reason))
                self._fold_extra_columns(cur, table, columns)
                for problem in self._apply_rules(cur, stream, table, columns, locate):
                    problem.raw_row = None  # the file's own text is read back verbatim
                    part.problems.append(problem)
                part.rows_good = records - len(part.problems)
            if part.line_based:
                _resolve_raw_lines(path, piece, part)
            return part
        finally:
            conn.remove_notice_handler(on_notice)

    def _land_csv_leniently(
        self, path: Path, stream: Stream, load_id: int, columns: _Columns
    ) -> PartResult:
        """Row by row, for a CSV file COPY cannot parse (ragged rows, bad UTF-8, stray
        quotes): good rows are COPYed as text, broken ones quarantined."""
        conn = self.conn
        problems: list[Problem] = []
        good = 0
        read = 0
        width = len(columns.targets)
        with conn.transaction():
            cur = conn.cursor()
            text_stream = _as_text(stream)
            table = _create_landing(cur, text_stream, load_id, 0, 1, columns.extras)
            statement = sql.SQL("copy {} ({}, _row_number) from stdin").format(
                table, sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
            )
            with cur.copy(statement) as copy, _open_binary(path) as binary:
                text = io.TextIOWrapper(
                    binary, encoding="utf-8", errors="surrogateescape", newline=""
                )
                reader = csv.reader(text, strict=True)
                next(reader, None)
                while True:
                    try:
                        fields = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as error:
                        read += 1
                        problems.append(Problem(
                            read, f"line {reader.line_num}", None,
                            f"malformed CSV ({error}); the rest of the file cannot be read",
                        ))
                        break
                    read += 1
                    raw = ",".join(fields).encode("utf-8", "surrogateescape").decode(
                        "utf-8", "replace")
                    location = f"line {reader.line_num}"
                    if any("\udc80" <= ch <= "\udcff" for value in fields for ch in value):
                        problems.append(Problem(read, location, raw, "row is not valid UTF-8"))
                    elif len(fields) != width:
                        problems.append(Problem(
                            read, location, raw,
                            f"row has {len(fields)} fields, the header has {width}",
                        ))
                    else:
                        values = [value if value != "" else None for value in fields]
                        copy.write_row([*values, read])
                        good += 1
            typed, typed_problems = self._type_text_landing(cur, stream, load_id, table, columns)
            problems += typed_problems
        return PartResult(_name_of(typed), read, read - len(problems), problems)

    def _type_text_landing(
        self, cur: psycopg.Cursor, stream: Stream, load_id: int, text_table: sql.Identifier,
        columns: _Columns,
    ) -> tuple[sql.Identifier, list[Problem]]:
        """Text landing (row-by-row CSV, Parquet) to typed landing: rows whose text is not
        of its type, then rows that break a rule, become problems."""
        typed = _create_landing(cur, stream, load_id, 1, 1, columns.extras)
        problems = self._cast_text_rows(cur, stream, text_table, typed, columns)
        cur.execute(sql.SQL("drop table {}").format(text_table))
        self._fold_extra_columns(cur, typed, columns)
        problems += self._apply_rules(cur, stream, typed, columns, _row_location)
        return typed, problems

    def _cast_text_rows(
        self, cur: psycopg.Cursor, stream: Stream, source: sql.Identifier,
        target: sql.Identifier, columns: _Columns,
    ) -> list[Problem]:
        """Move text rows into the typed table; rows whose text is not of a column's type
        become problems."""
        present = set(columns.targets)

        def value_of(column) -> sql.Composable:
            if column.name in present:
                return sql.Identifier(column.name)
            return sql.SQL("null::text")

        problem = format_problem(stream, value_of)
        rows = cur.execute(
            sql.SQL(
                "select _row_number, {problem} from {source} where {problem} is not null"
            ).format(problem=problem, source=source)
        ).fetchall()
        bad = [row_number for row_number, _ in rows]
        typed_columns = [
            name for name in (*stream.column_names, *columns.extras) if name in present
        ]
        casts = sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(
                stream.column(name).sql_type if name in stream.column_names else "text"))
            for name in typed_columns
        )
        cur.execute(
            sql.SQL(
                "insert into {target} ({names}, _row_number) select {casts}, _row_number "
                "from {source} where _row_number <> all(%s)"
            ).format(
                target=target,
                names=sql.SQL(", ").join(sql.Identifier(name) for name in typed_columns),
                casts=casts, source=source,
            ),
            (bad,),
        )
        raw_rows = dict(cur.execute(
            sql.SQL("select _row_number, concat_ws(',', {}) from {} where _row_number = any(%s)")
            .format(
                sql.SQL(", ").join(
                    sql.SQL("coalesce({}, '')").format(sql.Identifier(name))
                    for name in columns.targets
                ),
                source,
            ),
            (bad,),
        ).fetchall())
        return [
            Problem(row_number, f"row {row_number}", raw_rows.get(row_number), reason)
            for row_number, reason in rows
        ]

    # -- NDJSON

    def _land_ndjson(self, path: Path, stream: Stream, load_id: int) -> PartResult:
        conn = self.conn
        progress = _Progress(path, self.progress)
        with conn.transaction():
            cur = conn.cursor()
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
                with cur.copy(statement) as copy, _open_binary(path) as handle:
                    while chunk := handle.read(CHUNK_BYTES):
                        copy.write(chunk)
                        progress.update(len(chunk))
            except (OSError, EOFError) as error:
                raise RejectedFile(f"cannot be read: {error}") from error
            except (psycopg.errors.DataError, psycopg.errors.BadCopyFileFormat) as error:
                raise RejectedFile(
                    f"cannot be read as NDJSON: {error.diag.message_primary}"
                ) from error
            finally:
                progress.close()
            parsed = sql.Identifier(f"_parsed_{load_id}")
            # blank lines are not records, nor is a schema record
            cur.execute(
                sql.SQL(
                    "create temp table {parsed} on commit drop as "
                    "select line_number, line, case when pg_input_is_valid(line, 'jsonb') "
                    "then line::jsonb end as record from {lines} where btrim(line) <> ''"
                ).format(parsed=parsed, lines=lines)
            )
            cur.execute(
                sql.SQL(
                    "delete from {} where jsonb_typeof(record) = 'object' "
                    "and record->>'_type' = 'schema'"
                ).format(parsed)
            )
            problems = [
                Problem(number, f"line {number}", line, reason)
                for number, line, reason in cur.execute(
                    sql.SQL(
                        "select line_number, line, case when record is null then "
                        "'line is not valid JSON' else 'line is a JSON ' || jsonb_typeof(record)"
                        " || ', not an object' end from {} "
                        "where record is null or jsonb_typeof(record) <> 'object'"
                    ).format(parsed)
                ).fetchall()
            ]
            total = cur.execute(sql.SQL("select count(*) from {}").format(parsed)).fetchone()[0]
            if total == 0 and not cur.execute(
                sql.SQL("select exists (select from {} where btrim(line) <> '')").format(lines)
            ).fetchone()[0]:
                raise RejectedFile("is empty: no records")
            self._reject_absent_required(cur, stream, parsed)

            def value_of(column) -> sql.Composable:
                return sql.SQL("record->>{}").format(sql.Literal(column.name))

            format_reason = format_problem(stream, value_of)
            table = _create_landing(cur, stream, load_id, 0, 1, [])
            bad_format = cur.execute(
                sql.SQL(
                    "select line_number, line, reason from (select line_number, line, {} as reason"
                    " from {} where jsonb_typeof(record) = 'object') as checked"
                    " where reason is not null"
                ).format(format_reason, parsed)
            ).fetchall()
            problems += [
                Problem(number, f"line {number}", line, reason)
                for number, line, reason in bad_format
            ]
            known = sql.SQL(", ").join(sql.Literal(name) for name in stream.column_names)
            cur.execute(
                sql.SQL(
                    "insert into {table} ({columns}, _extra, _row_number) "
                    "select {values}, nullif(record - array[{known}]::text[], '{{}}'::jsonb), "
                    "line_number from {parsed} where jsonb_typeof(record) = 'object' "
                    "and line_number <> all(%s)"
                ).format(
                    table=table,
                    columns=sql.SQL(", ").join(sql.Identifier(n) for n in stream.column_names),
                    values=sql.SQL(", ").join(
                        sql.SQL("(nullif(record->>{}, ''))::{}").format(
                            sql.Literal(column.name), sql.SQL(column.sql_type)
                        )
                        for column in stream.columns
                    ),
                    known=known,
                    parsed=parsed,
                ),
                ([number for number, _, _ in bad_format],),
            )
            rule_problems = self._apply_rules(
                cur, stream, table, _Columns([], []), lambda number: f"line {number}"
            )
            raw_lines = dict(cur.execute(
                sql.SQL("select line_number, line from {} where line_number = any(%s)").format(
                    parsed),
                ([problem.row_number for problem in rule_problems],),
            ).fetchall())
            for problem in rule_problems:
                problem.raw_row = raw_lines.get(problem.row_number)
            problems += rule_problems
        return PartResult(_name_of(table), total, total - len(problems), problems)

    def _reject_absent_required(
        self, cur: psycopg.Cursor, stream: Stream, parsed: sql.Identifier
    ) -> None:
        """A required field that no record of the file has is a missing column."""
        flags = cur.execute(
            sql.SQL("select count(*) filter (where jsonb_typeof(record) = 'object'), {} from {}")
            .format(
                sql.SQL(", ").join(
                    sql.SQL("coalesce(bool_or(record ? {}), false)").format(sql.Literal(name))
                    for name in stream.required
                ),
                parsed,
            )
        ).fetchone()
        if flags[0] == 0:
            return
        missing = [name for name, seen in zip(stream.required, flags[1:], strict=True) if not seen]
        if missing:
            raise RejectedFile(
                f"lacks required column(s) {', '.join(missing)} for stream {stream.name}"
            )

    # -- Parquet

    def _land_parquet(self, path: Path, stream: Stream, load_id: int) -> PartResult:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise RejectedFile(f"cannot be read as Parquet: {error}") from error
        names = [_normalise(name) for name in parquet.schema_arrow.names]
        _check_columns(stream, names)
        columns = _Columns.of(stream, names)
        conn = self.conn
        with conn.transaction():
            cur = conn.cursor()
            text_table = _create_landing(cur, _as_text(stream), load_id, 0, 1, columns.extras)
            statement = sql.SQL("copy {} ({}) from stdin (format csv, force_null *)").format(
                text_table, sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
            )
            rows = 0
            try:
                with cur.copy(statement) as copy:
                    for batch in parquet.iter_batches(batch_size=65_536):
                        copy.write(_batch_as_csv(batch))
                        rows += batch.num_rows
            except (pa.ArrowException, OSError) as error:
                raise RejectedFile(f"cannot be read as Parquet: {error}") from error
            typed, problems = self._type_text_landing(cur, stream, load_id, text_table, columns)
        return PartResult(_name_of(typed), rows, rows - len(problems), problems)

    # -- shared steps

    def _fold_extra_columns(
        self, cur: psycopg.Cursor, table: sql.Identifier, columns: _Columns
    ) -> None:
        pairs = columns.unknown_pairs()
        if not pairs:
            return
        cur.execute(
            sql.SQL(
                "update {} set _extra = nullif(jsonb_strip_nulls(jsonb_build_object({})), "
                "'{{}}'::jsonb)"
            ).format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{}, {}").format(sql.Literal(source), sql.Identifier(target))
                    for source, target in pairs
                ),
            )
        )
        for _, target in pairs:
            cur.execute(
                sql.SQL("alter table {} drop column {}").format(table, sql.Identifier(target))
            )

    def _apply_rules(
        self, cur: psycopg.Cursor, stream: Stream, table: sql.Identifier, columns: _Columns,
        locate: Callable[[int], str],
    ) -> list[Problem]:
        """Rows that break a rule leave the landing table and become problems."""
        names = columns.sources or list(stream.column_names)
        present = [name for name in names if name in stream.column_names]
        raw_row = sql.SQL("concat_ws(',', {})").format(
            sql.SQL(", ").join(
                sql.SQL("coalesce({}::text, '')").format(sql.Identifier(name)) for name in present
            )
        ) if present else sql.SQL("null::text")
        rows = cur.execute(
            sql.SQL(
                "delete from {table} where _row_number in (select _row_number from {table} "
                "where ({problem}) is not null) returning _row_number, {raw_row}, {problem}"
            ).format(table=table, problem=rule_problem(stream), raw_row=raw_row)
        ).fetchall()
        return [Problem(number, locate(number), raw, reason) for number, raw, reason in rows]


def _row_location(row_number: int) -> str:
    return f"row {row_number}"


def _resolve_raw_lines(path: Path, piece: Part, part: PartResult) -> None:
    """Fill in the verbatim file line of each problem of a piece."""
    pending = [problem for problem in part.problems if problem.raw_row is None]
    if not pending:
        return
    lines = _read_lines(
        path, {int(problem.location.split()[1]) for problem in pending},
        start=piece.start, first_line=piece.first_line,
    )
    for problem in pending:
        problem.raw_row = lines.get(int(problem.location.split()[1]))


def _resolve_raw_records(path: Path, problems: list[Problem]) -> None:
    """For files with quoted newlines: find each problem's record with a CSV parser, then
    give its first file line as location and its lines, verbatim, as the raw text."""
    if not problems:
        return
    wanted = {problem.row_number: problem for problem in problems}
    spans: dict[int, tuple[int, int]] = {}
    last = max(wanted)
    with _open_binary(path) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text)
        next(reader, None)
        end_line = reader.line_num
        for number, _ in enumerate(reader, start=1):
            start_line, end_line = end_line + 1, reader.line_num
            if number in wanted:
                spans[number] = (start_line, end_line)
            if number >= last:
                break
    lines = _read_lines(
        path, {line for first, final in spans.values() for line in range(first, final + 1)}
    )
    for number, (first, final) in spans.items():
        wanted[number].location = f"line {first}"
        wanted[number].raw_row = "\n".join(lines.get(line, "") for line in range(first, final + 1))


class _NeedsLenientParse(Exception):
    """COPY could not parse the file's structure; fall back to a row-by-row reader."""


def _as_text(stream: Stream) -> Stream:
    """The same stream with every column as text (landing for row-by-row parsing)."""
    from dataclasses import replace

    from loaders.streams import TEXT

    return replace(stream, columns=tuple(replace(column, kind=TEXT) for column in stream.columns))


def _unquote_notice(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


def _batch_as_csv(batch) -> bytes:
    """A Parquet record batch as CSV text: timestamps in UTC ISO 8601, lists as JSON."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            utc = column if kind.tz else pc.assume_timezone(column, "UTC")
            column = pc.strftime(
                pc.cast(utc, pa.timestamp("us", "UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ"
            )
        elif (
            pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_struct(kind) or pa.types.is_map(kind)
        ):
            column = pa.array(
                [None if value is None else json.dumps(value) for value in column.to_pylist()],
                pa.string(),
            )
        elif not pa.types.is_string(kind):
            column = column.cast(pa.string())
        columns.append(column)
    table = pa.table(columns, names=[f"c{index}" for index in range(len(columns))])
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue()


# --------------------------------------------------------------------------- discovery

_STREAM_ORDER = {name: index for index, name in enumerate(STREAMS)}


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Expand folders into their data files (streams in dependency order, then by name);
    returns (files to load, non-data files seen in folders)."""
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
    results += [loader.load_file(path, stream) for path in files]
    return results
