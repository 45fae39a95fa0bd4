"""Reading the files: formats by extension, CSV headers, the split of a large CSV into
pieces copied in parallel, the file's own text of a quarantined row, Parquet batches as CSV."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.results import PartResult, Problem, RejectedFile
from loaders.streams import Stream

CSV_EXTENSIONS = (".csv", ".csv.gz")
NDJSON_EXTENSIONS = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_EXTENSIONS = (".parquet",)
# an uncompressed CSV at least this big is copied by two connections
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 1 << 20


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_EXTENSIONS):
        return "csv"
    if name.endswith(NDJSON_EXTENSIONS):
        return "ndjson"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return None


def compressed(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    if compressed(path):
        return gzip.GzipFile(path, "rb")
    return open(path, "rb")


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def normalise(name: str) -> str:
    """A column name as the loader compares it."""
    return name.strip().lower()


def csv_header(path: Path) -> tuple[list[str], int]:
    """Column names of the header row and its length in bytes."""
    try:
        with open_binary(path) as handle:
            first = handle.readline(1 << 20)
    except (OSError, EOFError) as error:
        raise RejectedFile(f"cannot be read as {file_format(path)}: {error}") from error
    if not first.strip():
        raise RejectedFile("is empty: a CSV file needs a header row")
    if b"\r" in first.rstrip(b"\r\n") or (b"\r" in first and not first.endswith(b"\n")):
        raise RejectedFile(
            "line 1: carriage returns alone end its lines (old Mac style); CSV lines end "
            "with \\n or \\r\\n (RFC 4180): nothing loaded"
        )
    if not first.endswith(b"\n") and len(first) >= 1 << 20:
        raise RejectedFile("line 1: the header row is longer than 1 MB: not a CSV header")
    if b"\x00" in first:
        raise RejectedFile("line 1: the header row contains a NUL byte")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RejectedFile("header row is not valid UTF-8") from error
    try:
        names = next(csv.reader([text.rstrip("\r\n")], strict=True), [])
    except csv.Error as error:
        raise RejectedFile(f"line 1: the header row is not valid CSV ({error})") from error
    if '"' in text and not all(
        part.startswith('"') or '"' not in part for part in text.split(",")
    ):
        raise RejectedFile("line 1: the header row has a stray quote inside a column name")
    return [normalise(name) for name in names], len(first)


def check_columns(stream: Stream, columns: list[str]) -> None:
    """A file's column names: none empty or repeated, every required one present."""
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


@dataclass
class Part:
    """A contiguous piece of a file copied by one connection."""

    index: int
    start: int  # byte offsets in the uncompressed CSV
    end: int | None
    header: bool
    first_row: int  # row number of the piece's first record
    first_line: int  # file line number of the piece's first line


def plan_parts(path: Path, header_bytes: int, workers: int) -> list[Part]:
    """Split an uncompressed CSV into pieces that start at record boundaries.

    A newline ends a record when an even number of quote characters precede it (RFC 4180
    doubles quotes inside quoted fields). Row numbers of later pieces assume one line per
    record, exact unless quoted fields span lines (then they still increase)."""
    size = path.stat().st_size
    if workers < 2 or compressed(path) or size < PARALLEL_MIN_BYTES:
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


class Progress:
    """A progress bar on stderr for a large file (shared by the threads copying it)."""

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


def read_lines(
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
    with open_binary(path) as handle:
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


def row_location(row_number: int) -> str:
    return f"row {row_number}"


def resolve_raw_lines(path: Path, piece: Part, part: PartResult) -> None:
    """Fill in the verbatim file line of each problem of a piece."""
    pending = [problem for problem in part.problems if problem.raw_row is None]
    if not pending:
        return
    lines = read_lines(
        path, {int(problem.location.split()[1]) for problem in pending},
        start=piece.start, first_line=piece.first_line,
    )
    for problem in pending:
        problem.raw_row = lines.get(int(problem.location.split()[1]))


def resolve_raw_records(path: Path, problems: list[Problem]) -> None:
    """For files with quoted newlines: find each problem's record with a CSV parser, then
    give its first file line as location and its lines, verbatim, as the raw text."""
    if not problems:
        return
    wanted = {problem.row_number: problem for problem in problems}
    spans: dict[int, tuple[int, int]] = {}
    last = max(wanted)
    with open_binary(path) as binary:
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
    lines = read_lines(
        path, {line for first, final in spans.values() for line in range(first, final + 1)}
    )
    for number, (first, final) in spans.items():
        wanted[number].location = f"line {first}"
        wanted[number].raw_row = "\n".join(lines.get(line, "") for line in range(first, final + 1))


def batch_as_csv(batch: Any) -> bytes:
    """A Parquet record batch as CSV text: timestamps in UTC ISO 8601, lists as JSON."""
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
