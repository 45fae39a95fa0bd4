"""Load raw files into the `raw` schema: all of a file or none of it, validated in bulk.

How a file travels:
1. Its content hash is looked up in `raw.load_ledger` (`ledger.py`): the same bytes load
   once.
2. Its rows are COPYed into typed landing tables in `raw_landing`, created for this load
   (`copy_in.py`, `landing.py`; reading the files: `formats.py`). A large uncompressed CSV
   is split at a record boundary and copied by two connections at once (PostgreSQL parses
   one COPY per core). On PostgreSQL 17+ `on_error ignore` makes COPY skip each row whose
   text is not of its column's type instead of failing the file (the skipped rows are the
   gaps in the landing table's row numbers; no server message is read, so the server's
   language does not matter); on 15 and 16 the file is copied as text into a temporary
   table and typed by one set-based query (`loaders/server.py` chooses, per connection).
3. One set-based query per landing table names each remaining row's first broken rule
   (`rules.py`); those rows leave the landing table for `raw.quarantine`.
4. One transaction then writes the ledger row and the quarantine, and publishes the rows
   (`publication.py`): a large file's landing tables join `raw.<stream>` by inheritance (no
   second copy), a small file's rows are appended to it. Until that commit nothing of the
   file is visible; landing tables of a load that died are dropped by the next load.
"""

from __future__ import annotations

import os
import stat
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
from loaders.server import server_of
from loaders.streams import STREAMS, Stream, stream_for_file_name

__all__ = ["FileResult", "Loader", "discover", "file_format", "load_paths"]

DATA_EXTENSIONS = ".csv, .csv.gz, .jsonl, .ndjson, .jsonl.gz, .ndjson.gz or .parquet"
# SQLSTATE classes of errors that are the database's state, not the file's: a later
# attempt can succeed (connection lost, deadlock or serialization failure, disk full or
# out of memory, server shutting down or the query cancelled, an I/O error); "54" (a
# program limit such as the stack depth) and data errors are the file's and never retried
_RETRYABLE_CLASSES = ("08", "40", "53", "57", "58")
_RETRYABLE_STATES = ("55P03", "55006")  # lock not available, object in use
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def retryable(error: psycopg.Error) -> bool:
    state = error.sqlstate
    if state is None:
        # raised by the client itself: the connection broke
        return isinstance(error, psycopg.OperationalError)
    return state[:2] in _RETRYABLE_CLASSES or state in _RETRYABLE_STATES


# what to do about a database error that retrying cannot fix, by SQLSTATE class or code
_ADVICE = {
    "42501": "the connecting role lacks a privilege: load as the warehouse's owner, or grant it",
    "0A": "the server lacks a feature the loader needs: PostgreSQL 15 to 18 are supported",
    "28": "the connection's role or password is refused: check PGUSER and PGPASSFILE",
    "3D": "the database does not exist: check PGDATABASE",
    "42": "the raw schema differs from what this release expects: run `warehouse load` as the"
          " warehouse's owner once, which updates it",
    "54": "a value exceeds a PostgreSQL limit: fix the file",
}


def advice(error: psycopg.Error) -> str:
    """'; <what to do>' for a database error that retrying cannot fix ('' if unknown)."""
    state = error.sqlstate or ""
    hint = _ADVICE.get(state) or _ADVICE.get(state[:2])
    return f"; {hint}" if hint else ""


def refusal(path: Path, follow_symlinks: bool = False) -> str | None:
    """Why `path` is not loaded as a file (None: a regular file): missing, a folder, a
    symbolic link (unless `follow_symlinks`), or not a regular file at all (a FIFO would
    block the loader, a device never ends)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as error:
        return f"cannot be read: {error.strerror}"
    if stat.S_ISLNK(mode):
        if not follow_symlinks:
            return (
                f"is a symbolic link (to {os.readlink(path)}): refused; files are loaded "
                "from their own location (warehouse load --follow-symlinks loads what a "
                "link points to)"
            )
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return f"is a symbolic link to nothing ({os.readlink(path)})"
    if stat.S_ISDIR(mode):
        return "is a folder"
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return f"is not a regular file but {kind}: refused"
    if not stat.S_ISREG(mode):
        return "is not a regular file: refused"
    return None


class Loader:
    """Loads files one after the other on one connection (a large CSV borrows a second)."""

    def __init__(
        self, conn: psycopg.Connection, progress: bool | None = None, workers: int | None = None
    ) -> None:
        self.conn = conn
        server_of(conn)  # below PostgreSQL 15: UnsupportedServer, before anything is touched
        if progress is None:
            progress = sys.stderr.isatty() or os.environ.get("WAREHOUSE_PROGRESS") == "1"
        self.progress = progress
        self.workers = workers or min(2, os.cpu_count() or 1)
        conn.execute(SESSION_SETTINGS)
        conn.commit()
        ensure_raw_schema(conn)
        drop_abandoned_landings(conn)

    def load_file(
        self, path: Path, stream: Stream | None = None, follow_symlinks: bool = False
    ) -> FileResult:
        path = Path(path)
        requested = stream
        stream = stream or stream_for_file_name(path.name)
        fmt = file_format(path)
        result = FileResult(path, stream.name if stream else None, "loaded")
        digest: str | None = None
        try:
            refused = refusal(path, follow_symlinks)
            if refused is not None:
                raise RejectedFile(refused)
            if fmt is None:
                raise RejectedFile(f"unknown format: expected {DATA_EXTENSIONS}")
            if stream is None:
                raise RejectedFile(
                    "cannot tell the stream from the file name (expected a name starting with "
                    + ", ".join(STREAMS) + ")"
                )
            try:
                digest = content_hash(path)
            except OSError as error:
                raise RejectedFile(f"cannot be read: {error.strerror or error}") from error
            earlier = ledger.already_loaded(self.conn, digest)
            if earlier is not None:
                result.status = "already_loaded"
                result.stream = earlier.stream
                result.load_id = earlier.load_id
                if requested is not None and requested.name != earlier.stream:
                    result.reason = (
                        f"not loaded again as {requested.name}: the same content was "
                        f"loaded as {earlier.stream} from {earlier.file_name}"
                    )
                return result
            return self._load(path, stream, fmt, digest, result)
        except RejectedFile as rejection:
            return self._reject(result, str(rejection), stream, digest)
        except psycopg.Error as error:
            self.conn.rollback()
            if retryable(error):
                # not the file's fault: report it, leave nothing behind, go on with the next
                result.status = "rejected"
                result.retryable = True
                result.reason = (
                    f"{path.name}: database error, nothing loaded; retry later: "
                    f"{type(error).__name__}: {error}".strip()
                )
                return result
            message = (error.diag.message_primary or str(error)).strip()
            return self._reject(
                result, f"cannot be loaded: {message} (nothing loaded{advice(error)})",
                stream, digest,
            )
        except Exception as error:  # a file must never stop the files after it
            self.conn.rollback()
            return self._reject(
                result,
                f"cannot be loaded: {type(error).__name__}: {error} (nothing loaded)",
                stream, digest,
            )

    def _reject(
        self, result: FileResult, reason: str, stream: Stream | None, digest: str | None
    ) -> FileResult:
        """The file is rejected whole: one clear line, and a row of raw.rejected_files."""
        self.conn.rollback()
        result.status = "rejected"
        result.reason = f"{result.path.name}: {reason}"
        ledger.record_rejection(self.conn, result.path, stream, result.reason, digest)
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


def discover(
    paths: Iterable[Path], follow_symlinks: bool = False
) -> tuple[list[Path], list[Path]]:
    """Expand folders into their data files (streams in dependency order, then by name);
    returns (files to load, non-data files seen in folders). Symbolic links found in
    folders (to files or folders: not walked unless `follow_symlinks`), and special files
    (FIFOs, sockets, devices) named like data files, are returned among the files to load,
    for the loader to refuse with its reason."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir() and (follow_symlinks or not path.is_symlink()):
            for folder, folders, names in os.walk(path, followlinks=follow_symlinks):
                entries = [*names, *(name for name in folders if os.path.islink(
                    os.path.join(folder, name)) and not follow_symlinks)]
                for name in sorted(entries):
                    if name.startswith("."):
                        continue
                    candidate = Path(folder) / name
                    if candidate.is_symlink() and not follow_symlinks:
                        files.append(candidate)  # refused by the loader, with its reason
                    elif file_format(candidate) is None:
                        skipped.append(candidate)
                    else:
                        files.append(candidate)
        else:
            files.append(path)

    def order(candidate: Path) -> tuple[int, str]:
        stream = stream_for_file_name(candidate.name)
        return (_STREAM_ORDER[stream.name] if stream else len(_STREAM_ORDER), candidate.name)

    return sorted(files, key=order), sorted(skipped)


def load_paths(
    conn: psycopg.Connection,
    paths: Iterable[Path],
    stream_name: str | None = None,
    progress: bool | None = None,
    follow_symlinks: bool = False,
) -> list[FileResult]:
    """Load files and folders (see `discover`) one after the other; one result per file.
    A folder given that holds no data file is rejected (it is named, never silently
    passed over)."""
    stream = STREAMS[stream_name] if stream_name else None
    loader = Loader(conn, progress=progress)
    paths = [Path(path) for path in paths]
    files, skipped = discover(paths, follow_symlinks)
    results = [FileResult(path, None, "skipped", reason="not a data file") for path in skipped]
    for folder in paths:
        if not (folder.is_dir() and (follow_symlinks or not folder.is_symlink())):
            continue
        if not any(folder in file.parents for file in files):
            result = FileResult(folder, None, "loaded")
            results.append(loader._reject(
                result, f"is a folder holding no data files (expected {DATA_EXTENSIONS})",
                None, None,
            ))
    results += [loader.load_file(path, stream, follow_symlinks) for path in files]
    return results
