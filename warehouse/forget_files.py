"""The files `warehouse forget` rewrites: every data file the warehouse keeps or knows of
(the inbox, processed/ and rejected/ next to it, the paths in the load ledger and in
`raw.rejected_files`, the export folders exports_out/ and demo_out/, folders named with
`--files`), rewritten without the person's records.

A record is removed when its user_id is the person's (in the erased organisation, with
`--org`), or when any of its values names them (id, e-mail or name, as a whole word); a
record that only points at them (`manager_id`) keeps everything but that value. Untouched
records keep their bytes (CSV and NDJSON are rewritten record by record, gzip included);
a Parquet file is rewritten as a table with the same schema. Each rewrite replaces the
file atomically, then the ledger row of the old content takes the new content's hash,
so the rewritten file is not taken for new data (and the original, delivered again, is:
its rows of the person are then quarantined as `erased user`). Zip archives
(`warehouse offload`) and files that cannot be parsed are listed for the operator.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from loaders.erasure import USER_REFERENCE_COLUMNS
from loaders.formats import content_hash, file_format, normalise

CHUNK = 1 << 20


@dataclass
class Places:
    files: list[Path] = field(default_factory=list)
    archives: list[Path] = field(default_factory=list)


@dataclass
class Rewritten:
    path: Path
    removed: int
    cleared: int


@dataclass
class FileReport:
    rewritten: list[Rewritten] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would rewrite" if dry_run else "rewritten"
        out = [
            f"  file {verb}: {item.path} ({item.removed} records removed"
            + (f", {item.cleared} references cleared)" if item.cleared else ")")
            for item in self.rewritten
        ]
        out += [f"  remove by hand (cannot be rewritten): {item}" for item in self.manual]
        if not self.rewritten and not self.manual:
            out.append("  no kept file holds this person's records")
        return out

    def summary(self) -> dict[str, Any]:
        """For the audit: paths and counts (file names carry no record content)."""
        return {
            "rewritten": [
                {"path": str(item.path), "removed": item.removed, "cleared": item.cleared}
                for item in self.rewritten
            ],
            "manual": list(self.manual),
        }


@dataclass
class Matcher:
    """Decides what happens to one record of a file."""

    user_id: str
    org_id: str | None
    names_person: re.Pattern[str]

    def judge(self, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """('drop' | 'clear' | 'keep', the record to write for 'clear')."""
        keys = {normalise(key): key for key in record}
        owner = record.get(keys.get("user_id", ""))
        if isinstance(owner, str) and owner.strip() == self.user_id:
            org = str(record.get(keys.get("org_id", "")) or "").strip().lower()
            if self.org_id is None or org in ("", self.org_id.lower()):
                return "drop", record
            return "keep", record
        cleared = dict(record)
        changed = False
        for name in USER_REFERENCE_COLUMNS:
            key = keys.get(name)
            value = cleared.get(key) if key else None
            if key and isinstance(value, str) and value.strip() == self.user_id:
                cleared[key] = None
                changed = True
        if any(self.names_person.search(_text(value)) for value in cleared.values()):
            return "drop", record
        return ("clear" if changed else "keep"), cleared

    def names_text(self, text: str) -> bool:
        return bool(self.names_person.search(text))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# --------------------------------------------------------------------------- where to look


def places(conn: psycopg.Connection, inbox: Path | None, folders: tuple[Path, ...]) -> Places:
    from warehouse.paths import project_root
    from warehouse.run import default_inbox, siblings

    inbox = (inbox or default_inbox()).resolve()
    processed, rejected, archives = siblings(inbox)
    exported = (project_root() / "exports_out", project_root() / "demo_out")
    found = Places()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        path = path.resolve()
        if path in seen or not path.is_file():
            return
        seen.add(path)
        if path.name.lower().endswith(".zip"):
            found.archives.append(path)
        elif file_format(path) is not None:
            found.files.append(path)

    for root in (inbox, processed, rejected, archives, *exported, *folders):
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                add(path)
        elif root.is_file():
            add(root)
    for known in _known_paths(conn):
        add(Path(known))
    return found


def _known_paths(conn: psycopg.Connection) -> list[str]:
    paths: list[str] = []
    for table in ("raw.load_ledger", "raw.rejected_files"):
        row = conn.execute("select to_regclass(%s)", (table,)).fetchone()
        if row is not None and row[0] is not None:
            paths += [path for (path,) in conn.execute(
                f"select distinct file_path from {table}").fetchall()]
    conn.rollback()
    return paths


# --------------------------------------------------------------------------- rewriting


def erase_files(
    conn: psycopg.Connection, user_id: str, org_id: str | None, identifiers: list[str],
    names_person: re.Pattern[str], where: Places, dry_run: bool,
) -> FileReport:
    matcher = Matcher(user_id, org_id, names_person)
    needles = _needles([user_id, *identifiers])
    report = FileReport()
    for path in where.files:
        try:
            if file_format(path) != "parquet" and not _mentions(_chunks_of(path), needles):
                continue
            old_hash = content_hash(path)
            change = rewrite(path, matcher, dry_run)
        except (OSError, ValueError, EOFError, csv.Error, pa.ArrowException) as error:
            report.manual.append(f"{path} ({type(error).__name__})")
            continue
        if change is not None:
            report.rewritten.append(change)
            if not dry_run:
                follow_in_ledger(conn, old_hash, path)
    for archive in where.archives:
        report.manual += _archive_members(archive, matcher, needles)
    if not dry_run:
        _scrub_paths(report, names_person)
    return report


def _scrub_paths(report: FileReport, names_person: re.Pattern[str]) -> None:
    for item in report.rewritten:
        if names_person.search(str(item.path)):
            item.path = Path(names_person.sub("[erased]", str(item.path)))


def _needles(values: list[str]) -> list[bytes]:
    forms: set[bytes] = set()
    for value in values:
        if not value:
            continue
        for form in (value, value.lower(), json.dumps(value)[1:-1]):
            forms.add(form.encode("utf-8"))
            forms.add(form.encode("utf-8").lower())
    return sorted(forms)


def _chunks_of(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        while block := handle.read(CHUNK):
            yield block


def _mentions(chunks: Iterator[bytes], needles: list[bytes]) -> bool:
    """Whether the bytes hold any needle (case-insensitive for ASCII)."""
    overlap = max((len(needle) for needle in needles), default=0)
    tail = b""
    for chunk in chunks:
        window = (tail + chunk).lower()
        if any(needle in window or needle in tail + chunk for needle in needles):
            return True
        tail = (tail + chunk)[-overlap:]
    return False


def rewrite(path: Path, matcher: Matcher, dry_run: bool) -> Rewritten | None:
    """The file without the person's records (replaced atomically unless `dry_run`)."""
    fmt = file_format(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    target = Path(temporary)
    try:
        if fmt == "parquet":
            removed, cleared = _rewrite_parquet(path, target, matcher)
        else:
            zipped = path.name.lower().endswith(".gz")
            with _open_out(target, zipped) as out, _open_in(path, zipped) as source:
                if fmt == "csv":
                    removed, cleared = _rewrite_csv(source, out, matcher)
                else:
                    removed, cleared = _rewrite_ndjson(source, out, matcher)
        if removed == 0 and cleared == 0:
            return None
        if not dry_run:
            os.chmod(target, path.stat().st_mode & 0o7777)
            os.replace(target, path)
        return Rewritten(path, removed, cleared)
    finally:
        target.unlink(missing_ok=True)


def follow_in_ledger(conn: psycopg.Connection, old_hash: str, path: Path) -> None:
    """The ledger row of the file's old content takes its new content's hash (unless that
    content is already recorded)."""
    new_hash = content_hash(path)
    with conn.transaction():
        for table, extra in (("raw.load_ledger", ", file_bytes = %s"), ("raw.rejected_files", "")):
            if conn.execute("select to_regclass(%s)", (table,)).fetchone() in (None, (None,)):
                continue
            taken = conn.execute(
                f"select exists (select from {table} where content_sha256 = %s)", (new_hash,)
            ).fetchone()
            if taken is not None and taken[0]:
                continue
            params: tuple[Any, ...] = (new_hash, path.stat().st_size, old_hash) if extra else (
                new_hash, old_hash)
            conn.execute(
                f"update {table} set content_sha256 = %s{extra} where content_sha256 = %s",
                params,
            )


def _open_in(path: Path, zipped: bool) -> IO[bytes]:
    if zipped:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _open_out(path: Path, zipped: bool) -> IO[bytes]:
    if zipped:
        return cast(IO[bytes], gzip.GzipFile(path, "wb", mtime=0))
    return open(path, "wb")


def _records(source: IO[bytes]) -> Iterator[bytes]:
    """CSV records as their bytes: a newline inside quotes does not end a record."""
    pending = b""
    for line in source:
        pending += line
        if pending.count(b'"') % 2 == 0:
            yield pending
            pending = b""
    if pending:
        yield pending


def _rewrite_csv(source: IO[bytes], out: IO[bytes], matcher: Matcher) -> tuple[int, int]:
    records = _records(source)
    header_bytes = next(records, b"")
    out.write(header_bytes)
    header = next(csv.reader([_decode(header_bytes).lstrip("\ufeff").rstrip("\r\n")]), [])
    removed = cleared = 0
    for raw in records:
        text = _decode(raw)
        ending = text[len(text.rstrip("\r\n")):]
        try:
            values = next(csv.reader(io.StringIO(text.rstrip("\r\n"), newline="")), [])
        except csv.Error:
            values = []
        if len(values) != len(header):
            verdict = "drop" if matcher.names_text(text) else "keep"
            record: dict[str, Any] = {}
        else:
            verdict, record = matcher.judge(dict(zip(header, values, strict=True)))
        if verdict == "drop":
            removed += 1
            continue
        if verdict == "clear":
            cleared += 1
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator=ending or "\n").writerow(
                ["" if record[name] is None else record[name] for name in header])
            out.write(buffer.getvalue().encode("utf-8", "surrogateescape"))
            continue
        out.write(raw)
    return removed, cleared


def _rewrite_ndjson(source: IO[bytes], out: IO[bytes], matcher: Matcher) -> tuple[int, int]:
    removed = cleared = 0
    for raw in source:
        text = _decode(raw)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("_type") == "schema":
            verdict = "drop" if matcher.names_text(text) else "keep"
            record: dict[str, Any] = {}
        else:
            verdict, record = matcher.judge(parsed)
        if verdict == "drop":
            removed += 1
        elif verdict == "clear":
            cleared += 1
            ending = text[len(text.rstrip("\r\n")):]
            out.write((json.dumps(record, ensure_ascii=False) + (ending or "\n")).encode())
        else:
            out.write(raw)
    return removed, cleared


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _rewrite_parquet(path: Path, target: Path, matcher: Matcher) -> tuple[int, int]:
    table = pq.read_table(path)
    removed, cleared, table = _filter_table(table, matcher)
    if removed or cleared:
        pq.write_table(table, target)
    return removed, cleared


def _filter_table(table: Any, matcher: Matcher) -> tuple[int, int, Any]:
    """(records removed, references cleared, the table without the person)."""
    rows = table.to_pylist()
    keep: list[bool] = []
    cleared_rows: dict[int, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        verdict, record = matcher.judge(row)
        keep.append(verdict != "drop")
        if verdict == "clear":
            cleared_rows[index] = record
    removed = keep.count(False)
    if not removed and not cleared_rows:
        return 0, 0, table
    if cleared_rows:
        columns = []
        for name in table.column_names:
            values = [
                cleared_rows[index][name] if index in cleared_rows else row[name]
                for index, row in enumerate(rows)
            ]
            columns.append(pa.array(values, table.schema.field(name).type))
        table = pa.table(columns, schema=table.schema)
    return removed, len(cleared_rows), table.filter(pa.array(keep))


def _archive_members(archive: Path, matcher: Matcher, needles: list[bytes]) -> list[str]:
    """Data files inside a zip archive that hold the person's records."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                fmt = file_format(Path(member))
                if fmt is None:
                    continue
                data = handle.read(member)
                if member.lower().endswith(".gz"):
                    data = gzip.decompress(data)
                if fmt == "parquet":
                    table = pq.read_table(pa.BufferReader(data))
                    if _filter_table(table, matcher)[0]:
                        found.append(f"{archive}:{member}")
                elif _mentions(iter([data]), needles):
                    found.append(f"{archive}:{member}")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, pa.ArrowException) as error:
        found.append(f"{archive} (cannot be read: {type(error).__name__})")
    return found
