"""Stream the `exports` views to CSV, NDJSON or Parquet files, and zip one organisation.

Nothing is loaded whole into memory:
- CSV is PostgreSQL's own `COPY (select ...) TO STDOUT (format csv, header)`, written
  chunk by chunk as the server sends it;
- NDJSON is `COPY (select row_to_json(...)) TO STDOUT` in CSV mode with a quote and a
  delimiter that cannot occur in JSON text, so every line arrives verbatim;
- Parquet reads a server-side cursor in batches and writes one row group per batch with
  pyarrow.

`export_archive` writes every export view of one organisation into a zip with a
`manifest.json` (row counts, export version, SHA-256 of each member).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import shutil
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from warehouse.db import RUN_LOCK_CLASS, RUN_LOCK_KEY, scalar

SCHEMA = "exports"
# the contract's export views, in archive order
EXPORT_VIEWS = ("attempts", "sessions", "user_summary", "user_profile_json", "kpi_events")
FORMATS = ("csv", "ndjson", "parquet")
EXTENSIONS = {"csv": ".csv", "ndjson": ".ndjson", "parquet": ".parquet"}
# in an archive, documents and events read best as one JSON object a line
ARCHIVE_FORMATS = {
    "attempts": "csv",
    "sessions": "csv",
    "user_summary": "csv",
    "user_profile_json": "ndjson",
    "kpi_events": "ndjson",
}
PARQUET_BATCH_ROWS = 50_000
WRITE_BUFFER_BYTES = 1 << 20
# control characters never appear unescaped in JSON text: COPY's CSV mode then quotes nothing
_NO_QUOTE = "\x01"
_NO_DELIMITER = "\x02"


class ExportError(Exception):
    """The export cannot be made (unknown view or organisation, bad option)."""


@dataclass
class Column:
    name: str
    type_name: str  # as format_type() spells it, e.g. "timestamp with time zone"


@dataclass
class ExportResult:
    view: str
    format: str
    path: str
    rows: int
    bytes: int
    sha256: str | None
    gzip: bool = False
    org_id: str | None = None
    columns: list[str] = field(default_factory=list)

    def line(self) -> str:
        scope = f" (org {self.org_id})" if self.org_id else ""
        text = f"{SCHEMA}.{self.view}{scope} -> {self.path}: {self.rows} rows, {self.bytes} bytes"
        return text + (f", sha256 {self.sha256}" if self.sha256 else "")


# --------------------------------------------------------------------------- catalogue


def view_name(name: str) -> str:
    """`attempts` or `exports.attempts` -> `attempts`."""
    if "." in name:
        schema, _, name = name.partition(".")
        if schema != SCHEMA:
            raise ExportError(f"only views of schema {SCHEMA} can be exported, not {schema}.{name}")
    return name


def columns_of(conn: psycopg.Connection, view: str) -> list[Column]:
    rows = conn.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        (SCHEMA, view),
    ).fetchall()
    if not rows:
        known = available_views(conn)
        raise ExportError(
            f"no view {SCHEMA}.{view}"
            + (f" (available: {', '.join(known)})" if known else " (is the warehouse built?)")
        )
    return [Column(name, type_name) for name, type_name in rows]


def available_views(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('v', 'm', 'r', 'p') order by 1",
        (SCHEMA,),
    ).fetchall()
    return [name for (name,) in rows]


def export_version(conn: psycopg.Connection) -> str | None:
    """The export version the views were built with (view exports.export_metadata)."""
    try:
        row = conn.execute(
            "select export_version from exports.export_metadata limit 1"
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    return row[0] if row else None


def _org_uuid(org_id: str | None) -> str | None:
    if org_id is None:
        return None
    try:
        return str(uuid.UUID(org_id))
    except ValueError as error:
        raise ExportError(f"--org must be an organisation id (a UUID), got {org_id!r}") from error


def select_statement(
    view: str, columns: list[Column], org_id: str | None, casts: dict[str, str] | None = None
) -> sql.Composed:
    """`select <columns> from exports.<view> [where org_id = ...]` (explicit column list)."""
    casts = casts or {}
    names = [column.name for column in columns]
    if org_id is not None and "org_id" not in names:
        raise ExportError(f"{SCHEMA}.{view} has no org_id column: --org cannot filter it")
    items = [
        sql.SQL("{}::{} as {}").format(
            sql.Identifier(column.name), sql.SQL(casts[column.name]), sql.Identifier(column.name)
        )
        if column.name in casts
        else sql.Identifier(column.name)
        for column in columns
    ]
    statement = sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(items), sql.Identifier(SCHEMA, view)
    )
    if org_id is not None:
        statement += sql.SQL(" where org_id = {}::uuid").format(sql.Literal(org_id))
    return statement


# --------------------------------------------------------------------------- output


class _HashingWriter(io.RawIOBase):
    """Counts (and, if asked, hashes) what passes through to the underlying binary file."""

    def __init__(self, target: IO[bytes], checksum: bool) -> None:
        self.target = target
        self.digest = hashlib.sha256() if checksum else None
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        if self.digest is not None:
            self.digest.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


@contextmanager
def _open_output(
    out: Path | None, compress: bool, checksum: bool
) -> Iterator[tuple[IO[bytes], _HashingWriter]]:
    """A buffered binary stream to `out` (stdout when None), gzip-compressed if asked; the
    second item counts (and hashes, with `checksum`) the bytes as stored in the file."""
    if out is None:
        target: IO[bytes] = sys.stdout.buffer
        close_target = False
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        target = open(out, "wb")  # noqa: SIM115 - closed below
        close_target = True
    hashing = _HashingWriter(target, checksum)
    buffered = io.BufferedWriter(hashing, buffer_size=WRITE_BUFFER_BYTES)
    try:
        if compress:
            with gzip.GzipFile(fileobj=buffered, mode="wb", compresslevel=6, mtime=0) as zipped:
                yield zipped, hashing  # type: ignore[misc]
        else:
            yield buffered, hashing
        buffered.flush()
    finally:
        if close_target:
            target.close()
        else:
            target.flush()


@contextmanager
def pause_runs(
    conn: psycopg.Connection, say: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the `warehouse run` lock in shared mode while exporting: an export waits for a
    running build to finish (dbt re-creates the export views during a build), and a run
    that starts meanwhile exits and leaves the work to the next one."""
    conn.rollback()
    got = scalar(
        conn, "select pg_try_advisory_lock_shared(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY)
    )
    if not got:
        (say or (lambda text: print(text, file=sys.stderr)))(
            "a warehouse run is building: waiting for it to finish before exporting"
        )
        conn.execute("select pg_advisory_lock_shared(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(
            "select pg_advisory_unlock_shared(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY)
        )
        conn.commit()


def _copy_to(conn: psycopg.Connection, statement: sql.Composed, handle: IO[bytes]) -> int:
    cur = conn.cursor()
    write = handle.write
    with cur.copy(statement) as copy:
        for chunk in copy:
            write(chunk)
    return max(cur.rowcount, 0)


def _copy_csv(conn: psycopg.Connection, select: sql.Composable, handle: IO[bytes]) -> int:
    statement = sql.SQL("copy ({}) to stdout with (format csv, header)").format(select)
    return _copy_to(conn, statement, handle)


def _copy_ndjson(conn: psycopg.Connection, select: sql.Composable, handle: IO[bytes]) -> int:
    statement = sql.SQL(
        "copy (select row_to_json(export_row) from ({}) as export_row)"
        " to stdout with (format csv, quote {}, delimiter {})"
    ).format(select, sql.Literal(_NO_QUOTE), sql.Literal(_NO_DELIMITER))
    return _copy_to(conn, statement, handle)


# Postgres type -> (arrow type factory, SQL cast applied when reading)
def _arrow_type(type_name: str) -> tuple[Any, str | None]:
    import pyarrow as pa

    base = type_name.split("(")[0].strip()
    if type_name.endswith("[]"):
        return pa.string(), "text"
    mapping: dict[str, tuple[Any, str | None]] = {
        "boolean": (pa.bool_(), None),
        "smallint": (pa.int16(), None),
        "integer": (pa.int32(), None),
        "bigint": (pa.int64(), None),
        "real": (pa.float32(), None),
        "double precision": (pa.float64(), None),
        "numeric": (pa.float64(), "double precision"),
        "text": (pa.string(), None),
        "character varying": (pa.string(), None),
        "character": (pa.string(), None),
        "date": (pa.date32(), None),
        "timestamp with time zone": (pa.timestamp("us", tz="UTC"), None),
        "timestamp without time zone": (pa.timestamp("us"), None),
    }
    # uuid, json, jsonb, interval and anything else travel as their text form
    return mapping.get(base, (pa.string(), "text"))


def _write_parquet(
    conn: psycopg.Connection, view: str, columns: list[Column], org_id: str | None,
    handle: IO[bytes], compress: bool,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {column.name: _arrow_type(column.type_name) for column in columns}
    casts = {name: cast for name, (_, cast) in types.items() if cast}
    schema = pa.schema([pa.field(column.name, types[column.name][0]) for column in columns])
    select = select_statement(view, columns, org_id, casts)
    rows = 0
    with conn.transaction(), conn.cursor(name=f"export_{view}") as cur:
        cur.itersize = PARQUET_BATCH_ROWS
        cur.execute(select)
        with pq.ParquetWriter(
            handle, schema, compression="gzip" if compress else "snappy"
        ) as writer:
            while True:
                batch = cur.fetchmany(PARQUET_BATCH_ROWS)
                if not batch:
                    break
                arrays = [
                    pa.array(list(values), type=field_.type)
                    for values, field_ in zip(zip(*batch, strict=True), schema, strict=True)
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += len(batch)
            if rows == 0:
                writer.write_table(schema.empty_table())
    return rows


# --------------------------------------------------------------------------- public API


def default_path(view: str, fmt: str, compress: bool, org_id: str | None = None) -> Path:
    from warehouse.paths import project_root

    suffix = EXTENSIONS[fmt] + (".gz" if compress and fmt != "parquet" else "")
    name = view if org_id is None else f"{view}_{org_id}"
    return project_root() / "exports_out" / f"{name}{suffix}"


def export_view(
    view: str,
    fmt: str = "csv",
    out: Path | None = None,
    *,
    org_id: str | None = None,
    compress: bool = False,
    to_stdout: bool = False,
    checksum: bool = False,
    conn: psycopg.Connection | None = None,
) -> ExportResult:
    """Write one export view to `out` (stdout when `to_stdout`). With `compress`, CSV and
    NDJSON are gzip files and Parquet uses gzip pages instead of snappy. With `checksum`
    the result carries the SHA-256 of the written bytes (costs about 1 s per 300 MB).
    Connects with the PG* settings unless given a connection."""
    if conn is None:
        from warehouse.db import connect

        with connect() as own, pause_runs(own):
            return export_view(
                view, fmt, out, org_id=org_id, compress=compress, to_stdout=to_stdout,
                checksum=checksum, conn=own,
            )
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    view = view_name(view)
    org_id = _org_uuid(org_id)
    conn.execute("set timezone = 'UTC'")
    columns = columns_of(conn, view)
    conn.commit()
    if not to_stdout and out is None:
        out = default_path(view, fmt, compress, org_id)
    target = None if to_stdout else out
    with _open_output(target, compress and fmt != "parquet", checksum) as (handle, hashing):
        if fmt == "csv":
            rows = _copy_csv(conn, select_statement(view, columns, org_id), handle)
        elif fmt == "ndjson":
            rows = _copy_ndjson(conn, select_statement(view, columns, org_id), handle)
        else:
            rows = _write_parquet(conn, view, columns, org_id, handle, compress)
    conn.commit()
    return ExportResult(
        view=view, format=fmt, path="-" if target is None else str(target), rows=rows,
        bytes=hashing.size, gzip=compress, org_id=org_id,
        sha256=hashing.digest.hexdigest() if hashing.digest is not None else None,
        columns=[column.name for column in columns],
    )


def org_exists(conn: psycopg.Connection, org_id: str) -> bool:
    for statement in (
        "select 1 from marts.dim_orgs where org_id = %s::uuid",
        "select 1 from exports.user_summary where org_id = %s::uuid limit 1",
    ):
        try:
            if conn.execute(statement, (org_id,)).fetchone():
                return True
        except psycopg.errors.UndefinedTable:
            pass
        finally:
            conn.rollback()
    return False


def export_archive(
    org_id: str,
    out: Path | None = None,
    fmt: str | None = None,
    views: tuple[str, ...] = EXPORT_VIEWS,
    conn: psycopg.Connection | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Zip every export view of one organisation, with `manifest.json` (row counts, export
    version, sha256 and size of each member as extracted). `fmt` forces one format for all
    views; by default the flat views are CSV, the documents and events NDJSON."""
    if conn is None:
        from warehouse.db import connect

        with connect() as own, pause_runs(own):
            return export_archive(org_id, out, fmt, views, conn=own)
    org = _org_uuid(org_id)
    assert org is not None
    if not org_exists(conn, org):
        raise ExportError(f"organisation {org} is not in the warehouse")
    exported_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if out is None:
        from warehouse.paths import project_root

        stamp = exported_at.strftime("%Y%m%dT%H%M%SZ")
        out = project_root() / "exports_out" / f"org_{org}_{stamp}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    version = export_version(conn)
    files: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="warehouse_archive_") as tmp:
        partial = Path(tmp) / "archive.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for view in views:
                view_format = fmt or ARCHIVE_FORMATS.get(view, "csv")
                member = f"{view}{EXTENSIONS[view_format]}"
                local = Path(tmp) / member
                result = export_view(
                    view, view_format, local, org_id=org, checksum=True, conn=conn
                )
                archive.write(local, member)
                local.unlink()
                files.append({
                    "name": member,
                    "view": f"{SCHEMA}.{view}",
                    "format": view_format,
                    "rows": result.rows,
                    "bytes": result.bytes,
                    "sha256": result.sha256,
                    "columns": result.columns,
                })
            manifest = {
                "manifest_version": 1,
                "org_id": org,
                "export_version": version,
                "exported_at": exported_at.isoformat().replace("+00:00", "Z"),
                "files": files,
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        shutil.move(str(partial), out)
    return out, manifest


def result_dict(result: ExportResult) -> dict[str, Any]:
    return asdict(result)
