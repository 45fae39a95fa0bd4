"""Load raw files into the `raw` schema: all of a file or none of it, validated in bulk.

How a file travels:
1. Its content hash is looked up in `raw.load_ledger` (`ledger.py`): the same bytes load
   once.
2. Its rows are COPYed into typed landing tables in `raw_landing`, created for this load
   (`copy_in.py`, `landing.py`; reading the files: `formats.py`). A large uncompressed CSV
   is split at a record boundary and copied by two connections at once (PostgreSQL parses
   one COPY per core). `on_error ignore` makes COPY report each row whose text is not of
   its column's type instead of failing the file.
3. One set-based query per landing table names each remaining row's first broken rule
   (`rules.py`); those rows leave the landing table for `raw.quarantine`.
4. One transaction then writes the ledger row and the quarantine, and publishes the rows
   (`publication.py`): a large file's landing tables join `raw.<stream>` by inheritance (no
   second copy), a small file's rows are appended to it. Until that commit nothing of the
   file is visible; landing tables of a load that died are dropped by the next load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import psycopg

from loaders import copy_in, ledger
from loaders.formats import content_hash, file_format
from loaders.landing import SESSION_SETTINGS, drop_abandoned_landings, drop_landing
from loaders.publication import publish
from loaders.results import FileResult, PartResult, RejectedFile
from loaders.schema import ensure_raw_schema
from loaders.streams import STREAMS, Stream, stream_for_file_name

__all__ = ["FileResult", "Loader", "discover", "file_format", "load_paths"]


class Loader:
    """Loads files one after the other on one connection (a large CSV borrows a second)."""

    def __init__(
        self, conn: psycopg.Connection, progress: bool | None = None, workers: int | None = None
    ) -> None:
        self.conn = conn
        if progress is None:
            progress = sys.stderr.isatty() or os.environ.get("WAREHOUSE_PROGRESS") == "1"
        self.progress = progress
        self.workers = workers or min(2, os.cpu_count() or 1)
        conn.execute(SESSION_SETTINGS)
        conn.commit()
        ensure_raw_schema(conn)
        drop_abandoned_landings(conn)

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
            if ledger.already_loaded(self.conn, digest):
                result.status = "already_loaded"
                return result
            return self._load(path, stream, fmt, digest, result)
        except RejectedFile as rejection:
            self.conn.rollback()
            result.status = "rejected"
            result.reason = f"{path.name}: {rejection}"
            ledger.record_rejection(self.conn, path, stream, result.reason, digest)
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

    def _load(
        self, path: Path, stream: Stream, fmt: str, digest: str, result: FileResult
    ) -> FileResult:
        conn = self.conn
        load_id = ledger.begin_load(conn)
        parts: list[PartResult] = []
        try:
            if fmt == "csv":
                parts = copy_in.land_csv(
                    conn, path, stream, load_id, self.workers, self.progress
                )
            elif fmt == "ndjson":
                parts = [copy_in.land_ndjson(conn, path, stream, load_id, self.progress)]
            else:
                parts = [copy_in.land_parquet(conn, path, stream, load_id)]
            return publish(conn, path, stream, fmt, digest, load_id, parts, result)
        finally:
            conn.rollback()
            for part in parts:
                drop_landing(conn, part.table)
            ledger.end_load(conn, load_id)


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
    """Load files and folders (see `discover`) one after the other; one result per file."""
    stream = STREAMS[stream_name] if stream_name else None
    loader = Loader(conn, progress=progress)
    files, skipped = discover(paths)
    results = [FileResult(path, None, "skipped", reason="not a data file") for path in skipped]
    results += [loader.load_file(path, stream) for path in files]
    return results
