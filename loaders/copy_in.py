"""COPY of each format into landing tables (`COPY ... FROM STDIN`).

- CSV: on PostgreSQL 17+, COPY with `on_error ignore` types the columns itself and skips
  each row whose text is not of its column's type (the gaps in `_row_number`; each one's
  reason is then found from its raw text); before 17, COPY into a temporary text table and
  one set-based typing query. A large uncompressed file is split at a record boundary and
  copied by two connections at once. A file COPY cannot parse (ragged rows,
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

from loaders.csv_screen import Screened, screen_piece
from loaders.csv_strict import QuoteScreen, piece_is_strict, raw_text, read_records
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
    read_lines,
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
from loaders.rules import format_problem, input_is_valid, type_problem
from loaders.server import Server, server_of
from loaders.streams import Column, Stream

# characters that cannot occur unescaped in a JSON line: CSV quote and delimiter for COPY,
# so each NDJSON line arrives verbatim
_NO_QUOTE = "\x01"
_NO_DELIMITER = "\x02"


class _NeedsLenientParse(Exception):
    """COPY could not parse the file's structure, or read it more leniently than RFC 4180
    (a stray or unterminated quote): read it record by record, strictly, instead."""


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
                piece_conn, path, stream, load_id, piece, columns, bar.update, header_bytes
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
            return [_land_csv_strictly(conn, path, stream, load_id, columns, header_bytes)]
        raise failures[0]
    _renumber_later_pieces(conn, landed, pieces)
    record_based = [
        problem for part in landed if not part.line_based for problem in part.problems
    ]
    resolve_raw_records(path, record_based)
    explain_skipped_rows(
        conn, stream, columns, [problem for part in landed for problem in part.unexplained]
    )
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
    columns: Columns, advance: Callable[[int], None], header_bytes: int,
) -> PartResult:
    server = server_of(conn)
    screen = QuoteScreen()
    with conn.transaction():
        cur = conn.cursor()
        table = create_landing(
            cur, stream, load_id, piece.index, piece.first_row, columns.extras
        )
        names = sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
        header = sql.SQL("true" if piece.header else "false")
        screened = None
        if not server.copy_on_error and not compressed(path):
            screened = _screen(path, piece, columns, stream, screen)
        if server.copy_on_error:
            # rows whose text is not of its column's type are skipped, leaving gaps in
            # _row_number (its default is drawn before the row is typed)
            target = table
            statement = sql.SQL(
                "copy {} ({}) from stdin (format csv, header {}, force_null *, on_error ignore)"
            ).format(table, names, header)
        elif screened is not None:
            # every value vouched for: typed COPY of the piece, suspect lines blanked
            target = table
            statement = sql.SQL("copy {} ({}) from stdin (format csv, force_null ({}))").format(
                table, names, names)
        else:
            target = _create_text_copy(cur, load_id, piece, columns)
            statement = sql.SQL(
                "copy {} ({}) from stdin (format csv, header {}, force_null ({}))"
            ).format(target, names, header, names)
        newlines = 0
        last_byte = b"\n"
        try:
            with cur.copy(statement) as copy:
                if screened is not None:
                    body = screened.blanked(len(columns.targets))
                    for start in range(0, len(body), CHUNK_BYTES):
                        copy.write(body[start:start + CHUNK_BYTES])
                        advance(min(CHUNK_BYTES, len(body) - start))
                    newlines = screened.data.count(b"\n")
                    last_byte = screened.data[-1:] or b"\n"
                else:
                    with open_binary(path) as handle:
                        newlines, last_byte = _copy_bytes(
                            copy, handle, piece, screen, advance, compressed(path))
            copied = cur.rowcount
        except psycopg.errors.DataError as error:
            # the file's structure or encoding (or, screened, a value COPY still refused):
            # read it strictly, record by record
            if screened is not None or isinstance(error, (
                    psycopg.errors.BadCopyFileFormat, psycopg.errors.CharacterNotInRepertoire,
                    psycopg.errors.UntranslatableCharacter)):
                raise _NeedsLenientParse(str(error)) from error
            raise
        except (OSError, EOFError) as error:
            raise RejectedFile(f"cannot be read: {error}") from error
        header_lines = 1 if piece.header else 0
        if server.copy_on_error:
            records = _records_copied(cur, table, piece, copied)
            skipped = _gaps(cur, table, piece.first_row, records)
            typed: dict[int, tuple[str, str]] = {}
        elif screened is not None:
            records = copied
            typed = _type_suspects(cur, stream, columns, table, server, load_id, piece, screened)
            skipped = sorted(typed)
        else:
            records = copied
            typed = _type_text_copy(cur, stream, columns, target, table, server)
            skipped = sorted(typed)
        physical_lines = newlines + (0 if last_byte == b"\n" else 1)
        part = PartResult(name_of(table), rows_read=records)
        # one line per record (no quoted newlines): rows are located by file line
        part.line_based = physical_lines == records + header_lines
        if not part.line_based and not piece_is_strict(
            path, piece.start + (header_bytes if piece.header else 0), piece.end
        ):
            # COPY read records across lines where strict CSV does not: a quote that
            # swallows lines into one field
            raise _NeedsLenientParse("records read across lines by a stray quote")

        def locate(row_number: int) -> str:
            if part.line_based:
                line = piece.first_line + header_lines + row_number - piece.first_row
                return f"line {line}"
            return row_location(row_number)

        for number in skipped:
            problem = Problem(number, locate(number), None, "")
            if number in typed:
                column, value = typed[number]
                problem.reason = type_problem(stream.column(column), value)
            else:
                part.unexplained.append(problem)
            part.problems.append(problem)
        fold_extra_columns(cur, table, columns)
        for problem in apply_rules(cur, stream, table, columns, locate):
            problem.raw_row = None  # the file's own text is read back verbatim
            part.problems.append(problem)
        part.rows_good = records - len(part.problems)
    if part.line_based and screened is not None:
        # the piece's lines are in memory: no second read of the file
        header_lines = 1 if piece.header else 0
        for problem in part.problems:
            if problem.raw_row is None:
                index = int(problem.location.split()[1]) - piece.first_line - header_lines
                problem.raw_row = screened.line(index).decode("utf-8", "replace")
    elif part.line_based:
        resolve_raw_lines(path, piece, part)
    return part


def _copy_bytes(
    copy: psycopg.Copy, handle, piece: Part, screen: QuoteScreen,
    advance: Callable[[int], None], is_compressed: bool,
) -> tuple[int, bytes]:
    """The piece's bytes to COPY as they are; (newlines seen, last byte)."""
    newlines = 0
    last_byte = b"\n"
    handle.seek(piece.start)
    remaining = None if piece.end is None else piece.end - piece.start
    while remaining is None or remaining > 0:
        size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
        chunk = handle.read(size)
        if not chunk:
            break
        if screen.feed(chunk):
            raise _NeedsLenientParse("a stray quote")
        copy.write(chunk)
        newlines += chunk.count(b"\n")
        last_byte = chunk[-1:]
        if remaining is not None:
            remaining -= len(chunk)
        if not is_compressed:
            advance(len(chunk))
    return newlines, last_byte


def _screen(
    path: Path, piece: Part, columns: Columns, stream: Stream, screen: QuoteScreen
) -> Screened | None:
    """Before 17: the piece's bytes screened by pyarrow (`csv_screen`), or None for the
    slower path."""
    try:
        with open_binary(path) as handle:
            handle.seek(piece.start)
            data = handle.read() if piece.end is None else handle.read(piece.end - piece.start)
    except (OSError, EOFError) as error:
        raise RejectedFile(f"cannot be read: {error}") from error
    if screen.feed(data):
        raise _NeedsLenientParse("a stray quote")
    return screen_piece(data, piece.header, columns.targets, stream)


def _type_suspects(
    cur: psycopg.Cursor, stream: Stream, columns: Columns, table: sql.Identifier,
    server: Server, load_id: int, piece: Part, screened: Screened,
) -> dict[int, tuple[str, str]]:
    """The suspect lines (blanked in the typed COPY) tested exactly: their blank rows leave
    the landing table, the lines are copied as text with their row numbers, and those of
    their type go back typed; the others are returned as in `_type_text_copy`."""
    if not screened.suspects:
        return {}
    numbers = [piece.first_row + index for index in screened.suspects]
    cur.execute(
        sql.SQL("delete from {} where _row_number = any({})").format(table, sql.Literal(numbers))
    )
    text = _create_text_copy(cur, load_id, piece, columns)
    statement = sql.SQL("copy {} ({}, _row_number) from stdin (format csv, force_null ({}))")
    names = sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
    with cur.copy(statement.format(text, names, names)) as copy:
        for index, number in zip(screened.suspects, numbers, strict=True):
            copy.write(screened.line(index) + b"," + str(number).encode() + b"\n")
    return _type_text_copy(cur, stream, columns, text, table, server)


def _create_text_copy(
    cur: psycopg.Cursor, load_id: int, piece: Part, columns: Columns
) -> sql.Identifier:
    """Before PostgreSQL 17 (no `on_error`): a temporary table of text the piece is copied
    into, numbered like the landing table."""
    table = sql.Identifier(f"_text_{load_id}_p{piece.index}")
    cur.execute(
        sql.SQL(
            "create temp table {} ({}, _row_number bigint generated by default as identity"
            " (start with {} cache 100000)) on commit drop"
        ).format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(name)) for name in columns.targets
            ),
            sql.Literal(piece.first_row),
        )
    )
    return table


def _type_text_copy(
    cur: psycopg.Cursor, stream: Stream, columns: Columns, source: sql.Identifier,
    table: sql.Identifier, server: Server,
) -> dict[int, tuple[str, str]]:
    """Typed rows of the text copy go to the landing table, in one statement; the others
    are returned as row number -> (first column, in file order, whose text is not of its
    type; that text), as COPY's `on_error ignore` would skip them."""
    checked = [
        (index, name) for index, name in enumerate(columns.targets)
        if name in stream.column_names and stream.column(name).sql_type != "text"
    ]
    first_bad: sql.Composable = sql.SQL("null::int")
    if checked:
        first_bad = sql.SQL("case {} end").format(sql.SQL(" ").join(
            sql.SQL("when {r} is not null and not {valid} then {index}").format(
                r=sql.Identifier(name),
                valid=input_is_valid(sql.Identifier(name), stream.column(name).sql_type, server),
                index=sql.Literal(index),
            )
            for index, name in checked
        ))
    everything = sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
    rows = cur.execute(
        sql.SQL(
            "select _row_number, bad, {everything} from"
            " (select _row_number, {first_bad} as bad, {everything} from {source}) as checked"
            " where bad is not null"
        ).format(everything=everything, first_bad=first_bad, source=source)
    ).fetchall()
    bad = {row[0]: (columns.targets[row[1]], row[2 + row[1]]) for row in rows}
    casts = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(
            sql.Identifier(name),
            sql.SQL(stream.column(name).sql_type if name in stream.column_names else "text"),
        )
        for name in columns.targets
    )
    cur.execute(
        sql.SQL(
            "insert into {table} ({everything}, _row_number) select {casts}, _row_number"
            " from {source} where _row_number <> all({bad})"
        ).format(table=table, everything=everything, casts=casts, source=source,
                 bad=sql.Literal(list(bad))),
    )
    return bad


def _records_copied(
    cur: psycopg.Cursor, table: sql.Identifier, piece: Part, copied: int
) -> int:
    """Records COPY read, skipped ones included: the last _row_number drawn in this
    session (language-independent, unlike COPY's notices)."""
    sequence = sql.SQL("pg_get_serial_sequence({}, '_row_number')").format(
        sql.Literal(".".join(table._obj)))
    try:
        with cur.connection.transaction():
            row = cur.execute(sql.SQL("select currval({})").format(sequence)).fetchone()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return copied  # no record was read
    assert row is not None
    return int(row[0]) - piece.first_row + 1


def _gaps(cur: psycopg.Cursor, table: sql.Identifier, first: int, records: int) -> list[int]:
    return [
        number for (number,) in cur.execute(
            sql.SQL(
                "select number from generate_series(%s::bigint, %s::bigint) as number"
                " except select _row_number from {} order by 1"
            ).format(table),
            (first, first + records - 1),
        ).fetchall()
    ]


def explain_skipped_rows(
    conn: psycopg.Connection, stream: Stream, columns: Columns, problems: list[Problem]
) -> None:
    """The reason of each row COPY skipped for a value not of its column's type: the
    row's first such value, found by parsing its raw text and asking the server."""
    if not problems:
        return
    numbers: list[int] = []
    positions: list[int] = []
    values: list[str] = []
    types: list[str] = []
    for problem in problems:
        fields = next(csv.reader(io.StringIO(problem.raw_row or "")), [])
        for position, (name, value) in enumerate(zip(columns.targets, fields, strict=False)):
            if name in stream.column_names and value != "":
                sql_type = stream.column(name).sql_type
                if sql_type != "text":
                    numbers.append(problem.row_number)
                    positions.append(position)
                    values.append(value)
                    types.append(sql_type)
    invalid = conn.execute(
        "select number, position from unnest(%s::bigint[], %s::int[], %s::text[], %s::text[])"
        " as checked (number, position, value, type_name)"
        " where not pg_input_is_valid(value, type_name) order by number, position",
        (numbers, positions, values, types),
    ).fetchall()
    conn.commit()
    first: dict[int, int] = {}
    for number, position in invalid:
        first.setdefault(number, position)
    for problem in problems:
        fields = next(csv.reader(io.StringIO(problem.raw_row or "")), [])
        found = first.get(problem.row_number)
        if found is None:
            problem.reason = "a value is not of its column's type"
            continue
        problem.reason = type_problem(stream.column(columns.targets[found]), fields[found])


def _land_csv_strictly(
    conn: psycopg.Connection, path: Path, stream: Stream, load_id: int, columns: Columns,
    header_bytes: int,
) -> PartResult:
    """Record by record with the strict RFC 4180 grammar (`csv_strict`), for a file COPY
    cannot parse or would read more leniently: a record that breaks the grammar (a stray or
    unterminated quote), is not UTF-8, holds a NUL byte or has the wrong number of fields
    is quarantined with its line; good records are COPYed as text, then typed."""
    problems: list[Problem] = []
    lines: dict[int, int] = {}  # row number -> file line, for the typed rows' problems
    multiline: set[int] = set()  # row numbers of records over several lines
    read = 0
    width = len(columns.targets)
    with conn.transaction():
        cur = conn.cursor()
        text_stream = as_text(stream)
        table = create_landing(cur, text_stream, load_id, 0, 1, columns.extras)
        statement = sql.SQL("copy {} ({}, _row_number) from stdin").format(
            table, sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
        )
        with cur.copy(statement) as copy:
            for record in read_records(path, header_bytes):
                read = record.row_number
                lines[read] = record.line
                if record.raw.count(b"\n") > 1:
                    multiline.add(read)
                location = f"line {record.line}"
                if record.problem is not None:
                    reason = f"malformed CSV: {record.problem}"
                elif b"\x00" in record.raw:
                    reason = "row contains a NUL byte"
                elif record.fields is None:
                    reason = "row is not valid UTF-8"
                elif len(record.fields) != width:
                    reason = f"row has {len(record.fields)} fields, the header has {width}"
                else:
                    copy.write_row([
                        *(value if value != "" else None for value in record.fields), read,
                    ])
                    continue
                problems.append(Problem(read, location, raw_text(record.raw), reason))
        typed, typed_problems = type_text_landing(cur, stream, load_id, table, columns)
    wanted = {
        lines[problem.row_number] for problem in typed_problems
        if problem.row_number not in multiline
    }
    texts = read_lines(path, wanted) if wanted else {}
    for problem in typed_problems:
        line = lines[problem.row_number]
        problem.location = f"line {line}"
        # a one-line record: the file's own text; one over several lines keeps its fields
        problem.raw_row = texts.get(line, problem.raw_row)
    problems += typed_problems
    return PartResult(name_of(typed), read, read - len(problems), problems)


# --------------------------------------------------------------------------- NDJSON

# deeper JSON is not believed (PostgreSQL's parser would fail the whole statement on it)
MAX_JSON_DEPTH = 512
_NDJSON_SUSPECT = (b"\x00", _NO_QUOTE.encode(), _NO_DELIMITER.encode(), b"\r")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


def json_depth(line: bytes) -> int:
    """How deep a JSON text nests (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", line))
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        deepest = max(deepest, depth)
    return deepest


class NdjsonScreen:
    """Passes an NDJSON file's bytes on to COPY, whole lines at a time; a line COPY or the
    JSON parser cannot take (not UTF-8, a NUL or other control byte, a carriage return
    inside it) is sent as an empty line instead and kept in `bad`
    (line number -> (text, reason)) to be quarantined. A byte-order mark is dropped."""

    def __init__(self) -> None:
        self.bad: dict[int, tuple[str, str]] = {}
        self._carry = b""
        self._lines = 0  # lines passed on so far
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        if not self._started:
            self._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        data = self._carry + chunk
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        return self._block(data[:cut])

    def finish(self) -> bytes:
        rest, self._carry = self._carry, b""
        return self._block(rest)

    def _block(self, block: bytes) -> bytes:
        if not block:
            return block
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
        suspect = any(marker in block for marker in _NDJSON_SUSPECT)
        if not suspect:
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                suspect = True
        if not suspect:
            self._lines += block.count(b"\n")
            return block
        out = []
        pieces = block.split(b"\n")
        last = pieces.pop() if not block.endswith(b"\n") else None
        if last is None:
            pieces.pop()  # the empty piece after the final newline
        for piece in [*pieces, *([last] if last is not None else [])]:
            self._lines += 1
            reason = _ndjson_line_problem(piece)
            if reason is None:
                out.append(piece)
            else:
                self.bad[self._lines] = (piece.decode("utf-8", "replace"), reason)
                out.append(b"")
        text = b"\n".join(out)
        return text + b"\n" if last is None else text


def _ndjson_line_problem(line: bytes) -> str | None:
    if b"\x00" in line:
        return "line contains a NUL byte"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"line is not valid UTF-8 (byte 0x{line[error.start]:02x} at {error.start + 1})"
    for marker in (_NO_QUOTE.encode(), _NO_DELIMITER.encode()):
        if marker in line:
            return f"line is not valid JSON (control byte 0x{marker[0]:02x})"
    if b"\r" in line:
        return "line is not valid JSON (a carriage return inside the line)"
    return None


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
        screen = NdjsonScreen()
        try:
            with cur.copy(statement) as copy, open_binary(path) as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    copy.write(screen.feed(chunk))
                    bar.update(len(chunk))
                copy.write(screen.finish())
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
        # a line with many brackets is parsed only once it is known not to nest too deep
        # for PostgreSQL's parser (which would fail the statement, not the line)
        deep = sql.SQL("length(line) - length(translate(line, '[{{', '')) > {}").format(
            sql.Literal(MAX_JSON_DEPTH))
        _parse_lines(cur, lines, parsed, deep, server_of(conn))
        too_deep = _check_depth(cur, parsed, deep, server_of(conn))
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
                    "select line_number, line, case when line_number = any(%s) then "
                    + f"'line is nested deeper than {MAX_JSON_DEPTH} levels' "
                    + "when record is null then "
                    "'line is not valid JSON' else 'line is a JSON ' || jsonb_typeof(record)"
                    " || ', not an object' end from {} "
                    "where record is null or jsonb_typeof(record) <> 'object'"
                ).format(parsed), (too_deep,),
            ).fetchall()
        ]
        problems += [
            Problem(number, f"line {number}", text, reason)
            for number, (text, reason) in sorted(screen.bad.items())
        ]
        total = _scalar(cur, sql.SQL("select count(*) from {}").format(parsed)) + len(screen.bad)
        if total == 0 and not _scalar(
            cur, sql.SQL("select exists (select from {} where btrim(line) <> '')").format(lines)
        ):
            raise RejectedFile("is empty: no records")
        _reject_absent_required(cur, stream, parsed)

        def value_of(column: Column) -> sql.Composable:
            return sql.SQL("record->>{}").format(sql.Literal(column.name))

        format_reason = format_problem(stream, value_of, server_of(conn))
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


def _parse_lines(
    cur: psycopg.Cursor, lines: sql.Identifier, parsed: sql.Identifier, deep: sql.Composable,
    server: Server,
) -> None:
    """The lines as JSON (null where not valid JSON). Before PostgreSQL 16 (no
    pg_input_is_valid) every line is cast at once, and only a file holding a line that is
    not JSON is tested line by line."""
    statement = sql.SQL(
        "create temp table {parsed} on commit drop as "
        "select line_number, line, case when {deep} then null {valid} end as record "
        "from {lines} where btrim(line) <> ''"
    )
    if not server.input_is_valid:
        try:
            with cur.connection.transaction():
                cur.execute(statement.format(
                    parsed=parsed, lines=lines, deep=deep, valid=sql.SQL("else line::jsonb")))
            return
        except psycopg.errors.DataError:
            pass
    cur.execute(statement.format(
        parsed=parsed, lines=lines, deep=deep,
        valid=sql.SQL("when {} then line::jsonb").format(
            input_is_valid(sql.Identifier("line"), "jsonb", server)),
    ))


def _check_depth(
    cur: psycopg.Cursor, parsed: sql.Identifier, deep: sql.Composable, server: Server
) -> list[int]:
    """Parse the lines with many brackets that nest at most MAX_JSON_DEPTH levels; the line
    numbers of those that nest deeper."""
    rows = cur.execute(
        sql.SQL("select line_number, line from {} where {}").format(parsed, deep)
    ).fetchall()
    fine = [number for number, line in rows if json_depth(line.encode()) <= MAX_JSON_DEPTH]
    if fine:
        cur.execute(
            sql.SQL(
                "update {} set record = case when {} then line::jsonb end"
                " where line_number = any(%s)"
            ).format(parsed, input_is_valid(sql.Identifier("line"), "jsonb", server)),
            (fine,),
        )
    return sorted(set(number for number, _ in rows) - set(fine))


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
        targets = sql.SQL(", ").join(sql.Identifier(name) for name in columns.targets)
        statement = sql.SQL("copy {} ({}) from stdin (format csv, force_null ({}))").format(
            text_table, targets, targets
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
