"""Publishing a landed file in one transaction: its ledger row, its problems into
`raw.quarantine`, and its rows into `raw.<stream>`: a large file's landing tables become
children of the stream's table by inheritance (no second copy), a small file's rows are
appended so cron-sized deliveries add no tables."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from loaders import ledger
from loaders.erasure import scrub_problems
from loaders.results import FileResult, PartResult, Problem
from loaders.schema import record_key_index_ddl
from loaders.streams import Stream

# a file with at least this many good rows keeps its landing tables as children of the
# stream's table; smaller ones are appended
OWN_TABLE_MIN_ROWS = 100_000


def publish(
    conn: psycopg.Connection, path: Path, stream: Stream, fmt: str, digest: str, load_id: int,
    parts: list[PartResult], result: FileResult,
) -> FileResult:
    """Make the file's rows visible, or nothing of it when the same content was published
    meanwhile. `parts` is emptied when its tables became part of raw.<stream>."""
    rows_read = sum(part.rows_read for part in parts)
    rows_good = sum(part.rows_good for part in parts)
    problems = [problem for part in parts for problem in part.problems]
    with conn.transaction():
        if not ledger.record_load(conn, load_id, stream, path, fmt, digest, rows_read,
                                  rows_good, len(problems)):
            result.status = "already_loaded"
            return result
        if problems:
            scrub_problems(conn, problems)
            quarantine(conn, load_id, stream, path, problems)
        if rows_good >= OWN_TABLE_MIN_ROWS:
            attach(conn, stream, path, parts)
            ledger.record_storage(conn, load_id, [part.table for part in parts])
            parts.clear()  # published: nothing left to drop
        else:
            append(conn, stream, parts)
        ledger.record_published(conn, load_id)
    result.load_id = load_id
    result.rows_read = rows_read
    result.rows_loaded = rows_good
    result.rows_quarantined = len(problems)
    ordered = sorted(problems, key=lambda problem: problem.row_number)
    result.problems = [f"{problem.location}: {problem.reason}" for problem in ordered[:3]]
    return result


def quarantine(
    conn: psycopg.Connection, load_id: int, stream: Stream, path: Path, problems: list[Problem]
) -> None:
    with conn.cursor().copy(
        "copy raw.quarantine (load_id, stream, file_name, row_number, location,"
        " raw_row, reason) from stdin"
    ) as copy:
        for problem in problems:
            copy.write_row((
                load_id, stream.name, path.name, problem.row_number,
                problem.location, _storable(problem.raw_row), _storable(problem.reason),
            ))


def _storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold a NUL byte: the quarantine shows it as \\x00."""
    return text.replace("\x00", "\\x00") if text is not None and "\x00" in text else text


def attach(conn: psycopg.Connection, stream: Stream, path: Path, parts: list[PartResult]) -> None:
    """The landing tables move to schema raw as children of raw.<stream>."""
    parent = sql.Identifier("raw", stream.name)
    for part in parts:
        landing = sql.Identifier("raw_landing", part.table)
        conn.execute(sql.SQL("alter table {} set schema raw").format(landing))
        child = sql.Identifier("raw", part.table)
        if stream.version_column is not None:
            conn.execute(record_key_index_ddl(stream, part.table))
        conn.execute(sql.SQL("alter table {} inherit {}").format(child, parent))
        conn.execute(sql.SQL("comment on table {} is {}").format(
            child, sql.Literal(f"Rows of {path.name}; part of raw.{stream.name}.")))


def append(conn: psycopg.Connection, stream: Stream, parts: list[PartResult]) -> None:
    """The landing tables' rows are inserted into raw.<stream>."""
    parent = sql.Identifier("raw", stream.name)
    columns = sql.SQL(", ").join(
        sql.Identifier(name)
        for name in (*stream.column_names, "_extra", "_load_id", "_row_number")
    )
    for part in parts:
        conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
            parent, columns, columns, sql.Identifier("raw_landing", part.table)))
