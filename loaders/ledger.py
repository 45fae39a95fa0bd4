"""The load ledger: `raw.load_ledger` (one row per loaded file, keyed by its content hash:
the same bytes load once), `raw.rejected_files`, and the advisory lock a live load holds
on its load id."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import psycopg

from loaders.formats import content_hash
from loaders.streams import Stream

LOAD_LOCK_CLASS = 0x57484C44  # advisory lock class held by a live load ("WHLD")


def begin_load(conn: psycopg.Connection) -> int:
    """A new load id, locked by this session until `end_load` (or its end): landing tables
    of a load whose lock is free belong to a load that died."""
    row = conn.execute("select nextval('raw.load_id_seq')").fetchone()
    assert row is not None
    load_id = int(row[0])
    conn.execute("select pg_advisory_lock(%s, %s)", (LOAD_LOCK_CLASS, load_id))
    conn.commit()
    return load_id


def end_load(conn: psycopg.Connection, load_id: int) -> None:
    conn.execute("select pg_advisory_unlock(%s, %s)", (LOAD_LOCK_CLASS, load_id))
    conn.commit()


@dataclass(frozen=True)
class Earlier:
    """The load that already holds a file's content."""

    load_id: int
    stream: str
    file_name: str


def already_loaded(conn: psycopg.Connection, digest: str) -> Earlier | None:
    row = conn.execute(
        "select load_id, stream, file_name from raw.load_ledger where content_sha256 = %s",
        (digest,),
    ).fetchone()
    conn.rollback()
    return Earlier(*row) if row is not None else None


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def record_rejection(
    conn: psycopg.Connection, path: Path, stream: Stream | None, reason: str,
    digest: str | None,
) -> None:
    if digest is None and _regular(path):
        try:
            digest = content_hash(path)
        except OSError:
            digest = None
    with conn.transaction():
        conn.execute(
            "insert into raw.rejected_files (stream, file_name, file_path, content_sha256,"
            " reason) values (%s, %s, %s, %s, %s)",
            # the path as given: a refused link is named, not what it points to
            (stream.name if stream else None, path.name or str(path), os.path.abspath(path),
             digest, reason),
        )


def record_load(
    conn: psycopg.Connection, load_id: int, stream: Stream, path: Path, fmt: str, digest: str,
    rows_read: int, rows_loaded: int, rows_quarantined: int,
) -> bool:
    """The file's ledger row, inside the publishing transaction; False when the same
    content was recorded meanwhile (by a concurrent load)."""
    row = conn.execute(
        "insert into raw.load_ledger (load_id, stream, file_name, file_path, file_format,"
        " file_bytes, content_sha256, rows_read, rows_loaded, rows_quarantined,"
        " storage_table) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " on conflict (content_sha256) do nothing returning load_id",
        (
            load_id, stream.name, path.name, str(path.resolve()), fmt,
            path.stat().st_size, digest, rows_read, rows_loaded, rows_quarantined,
            f"raw.{stream.name}",
        ),
    ).fetchone()
    return row is not None


def record_storage(conn: psycopg.Connection, load_id: int, tables: list[str]) -> None:
    """The tables that hold the load's rows (a large file's own children of raw.<stream>)."""
    conn.execute(
        "update raw.load_ledger set storage_table = %s where load_id = %s",
        (", ".join(f"raw.{table}" for table in tables), load_id),
    )


def record_published(conn: psycopg.Connection, load_id: int) -> None:
    """The time the load's rows became visible (read by incremental builds)."""
    conn.execute(
        "update raw.load_ledger set loaded_at = clock_timestamp() where load_id = %s",
        (load_id,),
    )
