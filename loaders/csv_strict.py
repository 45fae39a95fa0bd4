"""A strict RFC 4180 reading of CSV, for what PostgreSQL's COPY reads leniently.

COPY treats a quote anywhere in a field as the start of a quoted section, so a stray quote
(`us"er`) or one that is never closed silently swallows the lines after it into one field:
rows vanish into a value. The fast path therefore watches the bytes it sends to COPY:
- `QuoteScreen` finds a quote that can only be stray (an odd run of quotes between two
  characters that are neither a delimiter, a line end nor a quote) at memchr speed;
- a piece whose records COPY read across lines (quoted newlines, or a swallowing quote) is
  validated whole against the strict grammar (`piece_is_strict`).
Either finding sends the file to `read_records`, which reads it record by record with the
strict grammar: a record that breaks it is its physical line, quarantined with the reason,
and reading resumes on the next line, so no line is ever merged into another record.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loaders.formats import CHUNK_BYTES, open_binary

# a record longer than this (quoted newlines included) is not believed: its first line is
# quarantined as an unterminated quoted field
MAX_RECORD_BYTES = 4 * 1024 * 1024

_QUOTED = rb'"(?:[^"]|"")*+"'
_UNQUOTED = rb'[^",\r\n]*+'
_FIELD = rb"(?:" + _QUOTED + rb"|" + _UNQUOTED + rb")"
_RECORD = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*+(?:\r\n|\n)")
_RECORDS = re.compile(rb"(?:" + _FIELD + rb"(?:," + _FIELD + rb")*+(?:\r\n|\n))*+")
# an odd run of quotes with a character on each side that is neither a delimiter, a line
# end nor a quote: stray wherever it is (outside quotes it sits inside an unquoted field;
# inside a quoted field an odd run closes it and the next character must be a delimiter)
_STRAY = re.compile(rb'"(?<=[^,\r\n"]")(?:"")*+(?=[^,\r\n"])')
_QUOTED_AT = re.compile(_QUOTED)
_UNQUOTED_AT = re.compile(_UNQUOTED)


class QuoteScreen:
    """Fed the bytes of a file in order; `stray` becomes the offset (in the fed bytes) of a
    quote that cannot be valid anywhere."""

    def __init__(self) -> None:
        self._tail = b""
        self._offset = 0  # offset of the first byte of `_tail`
        self._started = False
        self.stray: int | None = None

    def feed(self, chunk: bytes) -> bool:
        if self.stray is not None or not chunk:
            return self.stray is not None
        if not self._started:
            self._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):  # a byte-order mark before a quote is fine
                chunk = chunk[3:]
                self._offset = 3
        if b'"' not in chunk and b'"' not in self._tail:
            self._offset += len(self._tail) + len(chunk) - 1
            self._tail = chunk[-1:]
            return False
        data = self._tail + chunk
        match = _STRAY.search(data)
        if match is not None:
            self.stray = self._offset + match.start()
            return True
        # keep the last non-quote byte and the quotes after it: a run cut by the chunk end
        # is seen whole next time
        keep = len(data) - len(data.rstrip(b'"')) + 1
        keep = min(keep, len(data))
        self._offset += len(data) - keep
        self._tail = data[-keep:]
        return False


def piece_is_strict(path: Path, start: int, end: int | None) -> bool:
    """Whether bytes [start, end) of the file are whole records of strict RFC 4180 CSV."""
    pending = b""
    with open_binary(path) as handle:
        handle.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
            chunk = handle.read(size)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            pending += chunk
            matched = _RECORDS.match(pending)
            consumed = matched.end() if matched else 0
            pending = pending[consumed:]
            if len(pending) > MAX_RECORD_BYTES:
                return False
    if pending and not pending.endswith(b"\n"):
        pending += b"\n"
    if not pending:
        return True
    matched = _RECORDS.match(pending)
    return matched is not None and matched.end() == len(pending)


@dataclass
class Record:
    """One record of the file: its number (header excluded), the file line it starts on,
    its fields (None when it breaks the grammar) and the problem, if any."""

    row_number: int
    line: int
    raw: bytes
    fields: list[str] | None
    problem: str | None = None


def _describe(data: bytes) -> str:
    """Why the record starting at data[0] breaks the strict grammar."""
    position = 0
    field = 1
    while True:
        if data[position:position + 1] == b'"':
            quoted = _QUOTED_AT.match(data, position)
            if quoted is None:
                return (
                    f"field {field}: a quote opens a quoted field that is never closed "
                    "(unterminated quote)"
                )
            position = quoted.end()
            after = data[position:position + 1]
            if after == b",":
                position += 1
                field += 1
                continue
            if after in (b"\n", b"") or data[position:position + 2] == b"\r\n":
                return "malformed CSV record"  # not reached: the record would have matched
            spans = data[:position].count(b"\n")
            where = f" (its quoted field runs over {spans + 1} lines)" if spans else ""
            return (
                f"field {field}: text after the closing quote of a quoted field{where}: "
                "a stray or unbalanced quote"
            )
        unquoted = _UNQUOTED_AT.match(data, position)
        assert unquoted is not None
        position = unquoted.end()
        after = data[position:position + 1]
        if after == b",":
            position += 1
            field += 1
            continue
        if after == b'"':
            return (
                f"field {field}: a quote inside an unquoted field (stray quote; RFC 4180 "
                'quotes the whole field and doubles the quote: "us""er")'
            )
        if after == b"\r" and data[position:position + 2] != b"\r\n":
            return f"field {field}: a carriage return inside an unquoted field"
        return "malformed CSV record"


def read_records(path: Path, header_bytes: int) -> Iterator[Record]:
    """Every record after the header, strictly: a record that breaks the grammar is its
    physical line, and the next record starts on the next line."""
    buffer = b""
    position = 0
    eof = False
    line = 2
    number = 0
    with open_binary(path) as handle:
        handle.seek(0)
        handle.read(header_bytes)

        def fill(need: int) -> None:
            nonlocal buffer, position, eof
            if position:
                buffer = buffer[position:]
                position = 0
            while not eof and len(buffer) < need:
                chunk = handle.read(CHUNK_BYTES)
                if not chunk:
                    eof = True
                    if buffer and not buffer.endswith(b"\n"):
                        buffer += b"\n"
                    break
                buffer += chunk

        while True:
            if len(buffer) - position < MAX_RECORD_BYTES:
                fill(MAX_RECORD_BYTES)
            if position >= len(buffer):
                return
            number += 1
            matched = _RECORD.match(buffer, position)
            if matched is not None:
                raw = buffer[position:matched.end()]
                position = matched.end()
                yield Record(number, line, raw, _fields(raw))
                line += raw.count(b"\n")
                continue
            end = buffer.find(b"\n", position)
            end = len(buffer) if end < 0 else end + 1
            reason = _describe(buffer[position:position + MAX_RECORD_BYTES])
            raw = buffer[position:end]
            position = end
            yield Record(number, line, raw, None, reason)
            line += 1


def _fields(raw: bytes) -> list[str] | None:
    """The fields of one strictly valid record (None when it is not UTF-8)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return next(csv.reader([text]), [])


def raw_text(raw: bytes) -> str:
    """A record's bytes as the quarantine shows them (line end dropped)."""
    return raw.rstrip(b"\r\n").decode("utf-8", "replace")
