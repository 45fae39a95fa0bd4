"""COPY of each format into landing tables (`COPY ... FROM STDIN`).

- CSV: COPY with `on_error ignore` types the columns itself and reports each row whose
  text is not of its column's type; a large uncompressed file is split at a record
  boundary and copied by two connections at once. A file COPY cannot parse (ragged rows,
  bad UTF-8, stray quotes) is read row by row instead.
- NDJSON: each line is copied verbatim, then parsed and typed by one query.
- Parquet: record batches are copied as CSV text, then typed by one query.
Each returns the landing tables with their rows' problems; rows that break a rule have
already left them.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from loaders.formats import (
    CHUNK_BYTES,
    Part,
    Progress,
    batch_as_csv,
    check_columns,
    compressed,
    csv_header,
    normalise,
    open_binary,
    plan_parts,
    resolve_raw_lines,
    resolve_raw_records,
    row_location,
)
from loaders.landing import (
    Columns,
    apply_rules,
    as_text,
    connect_like,
    create_landing,
    drop_landing,
    fold_extra_columns,
    name_of,
    type_text_landing,
)
from loaders.results import PartResult, Problem, RejectedFile
from loaders.rules import format_problem, type_problem
from loaders.streams import Column, Stream

# characters that cannot occur unescaped in a JSON line: CSV quote and delimiter for COPY,
# so each NDJSON line arrives verbatim
_NO_QUOTE = "\x01"
_NO_DELIMITER = "\x02"
_SKIPPED_ROW = re.compile(
    r'^skipping row due to data type incompatibility at line (\d+) for column "([^"]+)": (.*)$',
    re.DOTALL,
)


class _NeedsLenientParse(Exception):
    """COPY could not parse the file's structure; fall back to a row-by-row reader."""


def _unquote_notice(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


# --------------------------------------------------------------------------- CSV


def land_csv(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, workers: int,
    progress: bool,
) -> list[PartResult]:
    header, header_bytes = csv_header(path)
    check_columns(stream, header)
    columns = Columns.of(stream, header)
    pieces = plan_parts(path, header_bytes, workers)
    bar = Progress(path, progress)
    results: list[PartResult | BaseException | None] = [None] * len(pieces)

    def run(piece: Part) -> None:
        piece_conn = conn if piece.index == 0 else connect_like(conn)
        try:
            results[piece.index] = _copy_csv_piece(
                piece_conn, path, stream, load_id, piece, columns, bar.update
            )
        except BaseException as error:  # surfaced in the calling thread
            piece_conn.rollback()
            results[piece.index] = error
        finally:
            if piece_conn is not conn:
                piece_conn.close()

    threads = [threading.Thread(target=run, args=(piece,)) for piece in pieces[1:]]
    for thread in threads:
        thread.start()
    run(pieces[0])
    for thread in threads:
        thread.join()
    bar.close()
    landed = [part for part in results if isinstance(part, PartResult)]
    failures = [part for part in results if isinstance(part, BaseException)]
    if failures:
        for part in landed:
            drop_landing(conn, part.table)
        conn.commit()
        if any(isinstance(error, _NeedsLenientParse) for error in failures):
            return [_land_csv_leniently(conn, path, stream, load_id, columns)]
        raise failures[0]
    _renumber_later_pieces(conn, landed, pieces)
    record_based = [
        problem for part in landed if not part.line_based for problem in part.problems
    ]
    resolve_raw_records(path, record_based)
    return landed


def _renumber_later_pieces(
    conn: psycopg.Connection, parts: list[PartResult], pieces: list[Part]
) -> None:
    """A later piece's first row number was planned from line counts; once the earlier
    pieces are read, quoted newlines in them may shift it."""
    next_row = 1
    for part, piece in zip(parts, pieces, strict=True):
        shift = next_row - piece.first_row
        if shift:
            conn.execute(
                sql.SQL("update {} set _row_number = _row_number + %s").format(
                    sql.Identifier("raw_landing", part.table)),
                (shift,),
            )
            conn.commit()
            for problem in part.problems:
                problem.row_number += shift
                if not part.line_based:
                    problem.location = row_location(problem.row_number)
        next_row += part.rows_read


def _copy_csv_piece(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, piece: Part,
    columns: Columns, advance: Callable[[int], None],
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
            table = create_landing(
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
                with cur.copy(statement) as copy, open_binary(path) as handle:
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
                        if not compressed(path):
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
            part = PartResult(name_of(table), rows_read=records)
            # one line per record (no quoted newlines): rows are located by file line
            part.line_based = physical_lines == records + header_lines

            def locate(row_number: int) -> str:
                if part.line_based:
                    line = piece.first_line + header_lines + row_number - piece.first_row
                    return f"line {line}"
                return row_location(row_number)

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
            fold_extra_columns(cur, table, columns)
            for problem in apply_rules(cur, stream, table, columns, locate):
                problem.raw_row = None  # the file's own text is read back verbatim
                part.problems.append(problem)
            part.rows_good = records - len(part.problems)
        if part.line_based:
            resolve_raw_lines(path, piece, part)
        return part
    finally:
        conn.remove_notice_handler(on_notice)


def _land_csv_leniently(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, columns: Columns
) -> PartResult:
    """Row by row, for a CSV file COPY cannot parse (ragged rows, bad UTF-8, stray
    quotes): good rows are COPYed as text, broken ones quarantined."""
    problems: list[Problem] = []
    good = 0
    read = 0
    width = len(columns.targets)
    with conn.transaction():
        cur = conn.cursor()
        text_stream = as_text(stream)
        table = create_landing(cur, text_stream, load_id, 0, 1, columns.extras)
        statement = sql.SQL("copy {} ({}, _row_number) from stdin").format(
            table, sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
        )
        with cur.copy(statement) as copy, open_binary(path) as binary:
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
        typed, typed_problems = type_text_landing(cur, stream, load_id, table, columns)
        problems += typed_problems
    return PartResult(name_of(typed), read, read - len(problems), problems)


# --------------------------------------------------------------------------- NDJSON


def land_ndjson(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, progress: bool
) -> PartResult:
    bar = Progress(path, progress)
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
            with cur.copy(statement) as copy, open_binary(path) as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    copy.write(chunk)
                    bar.update(len(chunk))
        except (OSError, EOFError) as error:
            raise RejectedFile(f"cannot be read: {error}") from error
        except (psycopg.errors.DataError, psycopg.errors.BadCopyFileFormat) as error:
            raise RejectedFile(
                f"cannot be read as NDJSON: {error.diag.message_primary}"
            ) from error
        finally:
            bar.close()
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
        total = _scalar(cur, sql.SQL("select count(*) from {}").format(parsed))
        if total == 0 and not _scalar(
            cur, sql.SQL("select exists (select from {} where btrim(line) <> '')").format(lines)
        ):
            raise RejectedFile("is empty: no records")
        _reject_absent_required(cur, stream, parsed)

        def value_of(column: Column) -> sql.Composable:
            return sql.SQL("record->>{}").format(sql.Literal(column.name))

        format_reason = format_problem(stream, value_of)
        table = create_landing(cur, stream, load_id, 0, 1, [])
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
        rule_problems = apply_rules(
            cur, stream, table, Columns([], []), lambda number: f"line {number}"
        )
        raw_lines: dict[int, str] = dict(cur.execute(
            sql.SQL("select line_number, line from {} where line_number = any(%s)").format(
                parsed),
            ([problem.row_number for problem in rule_problems],),
        ).fetchall())
        for problem in rule_problems:
            problem.raw_row = raw_lines.get(problem.row_number)
        problems += rule_problems
    return PartResult(name_of(table), total, total - len(problems), problems)


def _scalar(cur: psycopg.Cursor, statement: sql.Composed) -> int:
    row = cur.execute(statement).fetchone()
    assert row is not None
    return int(row[0])


def _reject_absent_required(
    cur: psycopg.Cursor, stream: Stream, parsed: sql.Identifier
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
    assert flags is not None
    if flags[0] == 0:
        return
    missing = [name for name, seen in zip(stream.required, flags[1:], strict=True) if not seen]
    if missing:
        raise RejectedFile(
            f"lacks required column(s) {', '.join(missing)} for stream {stream.name}"
        )


# --------------------------------------------------------------------------- Parquet


def land_parquet(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int
) -> PartResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise RejectedFile(f"cannot be read as Parquet: {error}") from error
    names = [normalise(name) for name in parquet.schema_arrow.names]
    check_columns(stream, names)
    columns = Columns.of(stream, names)
    with conn.transaction():
        cur = conn.cursor()
        text_table = create_landing(cur, as_text(stream), load_id, 0, 1, columns.extras)
        statement = sql.SQL("copy {} ({}) from stdin (format csv, force_null *)").format(
            text_table, sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
        )
        rows = 0
        try:
            with cur.copy(statement) as copy:
                for batch in parquet.iter_batches(batch_size=65_536):
                    copy.write(batch_as_csv(batch))
                    rows += batch.num_rows
        except (pa.ArrowException, OSError) as error:
            raise RejectedFile(f"cannot be read as Parquet: {error}") from error
        typed, problems = type_text_landing(cur, stream, load_id, text_table, columns)
    return PartResult(name_of(typed), rows, rows - len(problems), problems)
