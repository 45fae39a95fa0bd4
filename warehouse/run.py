"""`warehouse run`: the scheduled job, and `warehouse offload` for old processed files.

A run:
1. takes a session-level Postgres advisory lock (`pg_try_advisory_lock`) on the warehouse
   database, so two runs never overlap: a second run exits 0 with a message, or waits
   for the lock with `wait=True`; the lock dies with the connection, so a killed run never
   leaves it behind;
2. loads every file of the inbox (`loaders.load.load_paths`: the same bytes never load
   twice, each file loads whole or not at all) and moves each one to `processed/` or
   `rejected/` next to the inbox, keeping its sub-path and never overwriting a file there
   (a name already taken gets `.1`, `.2`, ... before its extension); a rejected file gets a
   `<name>.reason.txt` beside it;
3. builds (`dbt build`) when anything was loaded since the last successful build, when
   the last recorded build failed or is from an earlier day (relative figures move with
   the date), or when forced. dbt builds each table as a new relation and swaps it in
   with a rename inside one transaction, so a build that fails leaves the previous marts
   in place and readable; export views that a failed build dropped on the way (dbt drops
   a replaced table with `cascade`) are re-created from their saved definitions;
4. runs the checks (`warehouse.check.run_checks`) after a successful build.
Each run is recorded in `ops.run_log` (in the warehouse database), and each step is logged
on stdout with its time and level (`2026-12-03 10:01:02 INFO building: dbt build`).

Offload zips processed files older than N days (age = time since the run moved them) into
`archives/` next to the inbox, with a manifest (sha256, size, load ids from the ledger);
the database is not touched, so every figure stays as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from loaders.load import FileResult, discover, file_format
from warehouse.db import RUN_LOCK_CLASS as RUN_LOCK_CLASS
from warehouse.db import RUN_LOCK_KEY as RUN_LOCK_KEY
from warehouse.db import scalar

_IN_FLIGHT_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".filepart", ".crdownload")
_DATA_SUFFIXES = (".csv.gz", ".jsonl.gz", ".ndjson.gz", ".csv", ".jsonl", ".ndjson", ".parquet")

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

RUN_LOG_DDL = """
create schema if not exists ops;
comment on schema ops is 'Bookkeeping of the scheduled job (warehouse run).';
create table if not exists ops.run_log (
    run_id bigint generated always as identity primary key,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    inbox text not null,
    files_loaded integer not null default 0,
    files_already_loaded integer not null default 0,
    files_rejected integer not null default 0,
    build_status text,
    check_status text,
    message text
);
alter table ops.run_log add column if not exists build_started_at timestamptz;
comment on table ops.run_log is
    'One row per warehouse run: files loaded or rejected, build and check outcome.';
"""


@dataclass
class RunOutcome:
    status: str  # done | locked | failed
    message: str = ""
    results: list[FileResult] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)  # source -> destination
    build_status: str | None = None  # success | failed | skipped
    check_status: str | None = None  # ok | failed | skipped

    rejected: int = 0

    @property
    def exit_code(self) -> int:
        """0: done (or another run holds the lock); 1: the build or an error-severity check
        failed; 2: all went well but some files were rejected (see rejected/)."""
        if self.status == "failed":
            return 1
        return 2 if self.rejected else 0


def log_to_stdout(level: int = logging.INFO) -> None:
    """The scheduled job's log lines on stdout, with time and level
    (`2026-12-03 10:01:02 INFO loading 3 file(s) from ...`); dbt's own lines, in between,
    carry dbt's timestamps."""
    logger = logging.getLogger("warehouse")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def default_inbox() -> Path:
    from warehouse.paths import project_root

    return project_root() / "inbox"


def siblings(inbox: Path) -> tuple[Path, Path, Path]:
    """processed/, rejected/ and archives/ next to the inbox."""
    parent = inbox.resolve().parent
    return parent / "processed", parent / "rejected", parent / "archives"


def _split_suffix(name: str) -> tuple[str, str]:
    lowered = name.lower()
    for suffix in _DATA_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if stem else (name, "")


def free_destination(path: Path) -> Path:
    """`path`, or `name.1.ext`, `name.2.ext`, ... when taken: nothing is overwritten."""
    if not path.exists():
        return path
    stem, suffix = _split_suffix(path.name)
    counter = 1
    while True:
        candidate = path.with_name(f"{stem}.{counter}{suffix}")
        if not candidate.exists():
            return candidate
        counter += 1


def move_file(source: Path, inbox: Path, target_root: Path) -> Path:
    """Move `source` (inside `inbox`) to the same sub-path under `target_root`; its
    modification time becomes now, so offload ages count from processing."""
    # the entry itself, not what a symbolic link in the inbox points to
    relative = (source.parent.resolve() / source.name).relative_to(inbox.resolve())
    destination = free_destination(target_root / relative)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        # link + unlink never replaces an existing file, even under a race
        os.link(source, destination, follow_symlinks=False)
        source.unlink()
    except OSError:
        shutil.move(str(source), str(free_destination(destination)))
    os.utime(destination, follow_symlinks=False)
    return destination


def _ensure_run_log(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('warehouse.ops_schema'))")
        conn.execute(RUN_LOG_DDL)


def build_needed(conn: psycopg.Connection) -> bool:
    """The last build failed, none succeeded today (UTC), or a file was loaded since the
    last successful build started (by hand, or by a run killed before its build)."""
    row = conn.execute(
        "select build_status, finished_at, build_started_at from ops.run_log"
        " where build_status in ('success', 'failed') order by run_id desc limit 1"
    ).fetchone()
    if row is None or row[0] != "success" or row[1] is None:
        conn.commit()
        return True
    _, finished_at, build_started_at = row
    if finished_at.astimezone(dt.UTC).date() < dt.datetime.now(dt.UTC).date():
        conn.commit()
        return True
    try:
        newer = scalar(
            conn, "select exists (select from raw.load_ledger where loaded_at >= %s)",
            (build_started_at or finished_at,),
        )
    except psycopg.errors.UndefinedTable:
        newer = True
    conn.rollback()
    return bool(newer)


# --------------------------------------------------------------------------- export views guard

VIEW_GUARD_DDL = """
create schema if not exists ops;
create table if not exists ops.export_view_definitions (
    view_name text primary key,
    definition text not null,
    relation_comment text,
    column_comments jsonb not null default '{}'::jsonb,
    saved_at timestamptz not null default now()
);
comment on table ops.export_view_definitions is
    'Last definition of each exports view; restored when a failed build dropped it.';
"""


def save_export_views(conn: psycopg.Connection) -> int:
    """Remember the definition, comments of every view in schema exports (upsert)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('warehouse.ops_schema'))")
        conn.execute(VIEW_GUARD_DDL)
        cur = conn.execute(
            """
            insert into ops.export_view_definitions
                (view_name, definition, relation_comment, column_comments, saved_at)
            select
                c.relname,
                pg_get_viewdef(c.oid, true),
                obj_description(c.oid, 'pg_class'),
                coalesce((
                    select jsonb_object_agg(a.attname, col_description(c.oid, a.attnum))
                    from pg_attribute as a
                    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                        and col_description(c.oid, a.attnum) is not null
                ), '{}'::jsonb),
                now()
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = 'exports' and c.relkind = 'v'
                and c.relname not like '%%__dbt_tmp' and c.relname not like '%%__dbt_backup'
            on conflict (view_name) do update set
                definition = excluded.definition,
                relation_comment = excluded.relation_comment,
                column_comments = excluded.column_comments,
                saved_at = excluded.saved_at
            """
        )
        return cur.rowcount


def restore_export_views(conn: psycopg.Connection, role: str = "reporting") -> list[str]:
    """Re-create the saved export views that no longer exist (a failed build dropped them
    with the tables they read), with their comments and the reporting role's grant. Views
    are retried until no more can be created (they may depend on each other)."""
    from psycopg import sql

    if scalar(conn, "select to_regclass('ops.export_view_definitions')") is None:
        conn.rollback()
        return []
    pending = conn.execute(
        "select view_name, definition, relation_comment, column_comments"
        " from ops.export_view_definitions"
        " where to_regclass(format('exports.%%I', view_name)) is null order by view_name"
    ).fetchall()
    conn.commit()
    role_exists = scalar(
        conn, "select exists (select from pg_roles where rolname = %s)", (role,)
    )
    conn.commit()
    restored: list[str] = []
    while pending:
        left = []
        for name, definition, comment, column_comments in pending:
            view = sql.Identifier("exports", name)
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("create view {} as {}").format(
                        view, sql.SQL(definition.rstrip().rstrip(";"))))
                    if comment is not None:
                        conn.execute(sql.SQL("comment on view {} is {}").format(
                            view, sql.Literal(comment)))
                    for column, text in (column_comments or {}).items():
                        conn.execute(sql.SQL("comment on column {} is {}").format(
                            sql.Identifier("exports", name, column), sql.Literal(text)))
                    if role_exists:
                        conn.execute(sql.SQL("grant select on {} to {}").format(
                            view, sql.Identifier(role)))
                restored.append(name)
            except psycopg.Error:
                left.append((name, definition, comment, column_comments))
        if len(left) == len(pending):
            break
        pending = left
    return restored


def guarded_build(dbt_args: list[str] | None = None) -> int:
    """`dbt build`; when it fails, export views it dropped on the way (dbt drops a rebuilt
    table's old copy with `cascade`, taking the views that read it) are re-created from
    their definitions saved just before, so BI and psql keep reading the previous figures."""
    from warehouse.db import connect
    from warehouse.dbt_runner import build_arguments, run_dbt

    with connect() as conn:
        save_export_views(conn)
    code = run_dbt(["build", *build_arguments(dbt_args or [])])
    if code != 0:
        with connect() as conn:
            restored = restore_export_views(conn)
        if restored:
            log.warning("build failed: re-created export views " + ", ".join(restored)
                + " from their last definitions")
    return code


def _lock_connection(wait: bool) -> psycopg.Connection | None:
    from warehouse.db import acquire_run_lock

    return acquire_run_lock(wait, "warehouse run", on_wait=log.info)


def run(
    inbox: Path | None = None,
    wait: bool = False,
    check: bool = True,
    force_build: bool = False,
    dbt_args: list[str] | None = None,
    min_age: float = 0.0,
) -> RunOutcome:
    from loaders.load import load_paths
    from warehouse.check import run_checks
    from warehouse.db import connect

    inbox = (inbox or default_inbox()).resolve()
    processed, rejected, _ = siblings(inbox)
    lock = _lock_connection(wait)
    if lock is None:
        message = (
            "another warehouse run or build (or an export) holds the lock on this database:"
            " nothing to do"
        )
        log.info(message)
        return RunOutcome("locked", message)
    outcome = RunOutcome("done")
    try:
        with connect() as conn:
            _ensure_run_log(conn)
            run_id = scalar(
                conn, "insert into ops.run_log (inbox) values (%s) returning run_id", (str(inbox),)
            )
            conn.commit()
            inbox.mkdir(parents=True, exist_ok=True)
            files, others = _inbox_files(inbox, min_age)
            if files:
                log.info(f"loading {len(files)} file(s) from {inbox}")
                outcome.results = load_paths(conn, files)
            for result in outcome.results:
                good = result.status in ("loaded", "already_loaded")
                log.log(logging.INFO if good else logging.WARNING, result.line())
                destination = move_file(result.path, inbox, processed if good else rejected)
                if not good:
                    reason = destination.with_name(destination.name + ".reason.txt")
                    reason.write_text(result.reason + "\n", encoding="utf-8")
                outcome.moved[str(result.path)] = str(destination)
            for path in others:
                log.warning(f"{path}: REJECTED: not a data file ({', '.join(_DATA_SUFFIXES)})")
                destination = move_file(path, inbox, rejected)
                outcome.moved[str(path)] = str(destination)
            loaded = sum(1 for result in outcome.results if result.status == "loaded")
            already = sum(1 for result in outcome.results if result.status == "already_loaded")
            refused = sum(1 for result in outcome.results if result.status == "rejected")
            refused += len(outcome.moved) - len(outcome.results)
            outcome.rejected = refused
            conn.execute(
                "update ops.run_log set files_loaded = %s, files_already_loaded = %s,"
                " files_rejected = %s where run_id = %s",
                (loaded, already, refused, run_id),
            )
            conn.commit()
            if loaded or force_build or build_needed(conn):
                log.info("building: dbt build")
                conn.execute(
                    "update ops.run_log set build_started_at = now() where run_id = %s",
                    (run_id,),
                )
                conn.commit()
                code = guarded_build(dbt_args)
                outcome.build_status = "success" if code == 0 else "failed"
            else:
                log.info("nothing new to load and today's build is done: build skipped")
                outcome.build_status = "skipped"
            # checks follow a build: with nothing new, the last report still holds
            if check and outcome.build_status == "success":
                log.info("checking: dbt tests, source freshness, Great Expectations")
                report = run_checks(dbt_args=_vars_only(dbt_args), progress=log.info)
                log.log(logging.INFO if report.ok else logging.ERROR, report.summary())
                outcome.check_status = "ok" if report.ok else "failed"
            else:
                outcome.check_status = "skipped"
            if outcome.build_status == "failed":
                outcome.status = "failed"
                outcome.message = "dbt build failed: the previous marts stay in place"
            elif outcome.check_status == "failed":
                outcome.status = "failed"
                outcome.message = "data-quality checks failed"
            else:
                outcome.message = (
                    f"{loaded} loaded, {already} already loaded, {refused} rejected;"
                    f" build {outcome.build_status}, checks {outcome.check_status}"
                )
            conn.execute(
                "update ops.run_log set finished_at = now(), build_status = %s,"
                " check_status = %s, message = %s where run_id = %s",
                (outcome.build_status, outcome.check_status, outcome.message, run_id),
            )
            conn.commit()
        log.log(logging.ERROR if outcome.status == "failed" else logging.INFO, outcome.message)
        return outcome
    finally:
        lock.close()


def _in_flight(path: Path) -> bool:
    """An upload still being written: a dot file or a temporary name."""
    name = path.name.lower()
    return name.startswith(".") or name.endswith(_IN_FLIGHT_SUFFIXES)


def _inbox_files(inbox: Path, min_age: float) -> tuple[list[Path], list[Path]]:
    """(data files to load, other files to reject); uploads in flight and files changed
    less than `min_age` seconds ago are left for the next run."""
    files, others = discover([inbox])
    horizon = time.time() - min_age

    def settled(path: Path) -> bool:
        return not _in_flight(path) and (min_age <= 0 or path.lstat().st_mtime <= horizon)

    return [path for path in files if settled(path)], [path for path in others if settled(path)]


def _vars_only(dbt_args: list[str] | None) -> list[str]:
    """The `--vars` of a build's arguments, for the checks that follow it."""
    args = list(dbt_args or [])
    kept: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--vars" and index + 1 < len(args):
            kept += [arg, args[index + 1]]
        elif arg.startswith("--vars="):
            kept.append(arg)
    return kept


# --------------------------------------------------------------------------- offload


@dataclass
class OffloadOutcome:
    archive: Path | None
    files: list[dict[str, object]]
    deleted: int = 0

    def line(self) -> str:
        if self.archive is None:
            return "nothing to offload"
        verb = f", {self.deleted} source files deleted" if self.deleted else ""
        return f"{len(self.files)} file(s) archived to {self.archive}{verb}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _ledger_entries(digests: list[str]) -> dict[str, dict[str, object]]:
    """load_id, stream and row counts per content hash, when the database answers."""
    from warehouse.db import connect

    try:
        with connect() as conn:
            rows = conn.execute(
                "select content_sha256, load_id, stream, rows_read, rows_loaded,"
                " rows_quarantined, loaded_at from raw.load_ledger"
                " where content_sha256 = any(%s)",
                (digests,),
            ).fetchall()
    except psycopg.Error:
        return {}
    return {
        digest: {
            "load_id": load_id, "stream": stream, "rows_read": rows_read,
            "rows_loaded": rows_loaded, "rows_quarantined": rows_quarantined,
            "loaded_at": loaded_at.isoformat() if loaded_at else None,
        }
        for digest, load_id, stream, rows_read, rows_loaded, rows_quarantined, loaded_at in rows
    }


def _already_archived(archives: Path) -> set[tuple[str, str]]:
    """(sub-path, sha256) of every file in an earlier offload's manifest."""
    seen: set[tuple[str, str]] = set()
    for archive in sorted(archives.glob("processed_*.zip")):
        try:
            with zipfile.ZipFile(archive) as handle:
                manifest = json.loads(handle.read("manifest.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            continue
        seen |= {(item["path"], item["sha256"]) for item in manifest.get("files", [])}
    return seen


def offload(
    days_old: float,
    inbox: Path | None = None,
    delete_source: bool = False,
    now: float | None = None,
) -> OffloadOutcome:
    """Zip processed files older than `days_old` days into archives/processed_<stamp>.zip
    with manifest.json; with `delete_source` the archived files are removed once the zip is
    written and verified. A file already in an earlier archive (same sub-path and content)
    is not archived again."""
    inbox = (inbox or default_inbox()).resolve()
    processed, _, archives = siblings(inbox)
    now = time.time() if now is None else now
    cutoff = now - days_old * 86400
    candidates = sorted(
        path for path in processed.rglob("*")
        if path.is_file() and path.stat().st_mtime < cutoff
    ) if processed.exists() else []
    archives.mkdir(parents=True, exist_ok=True)
    seen = _already_archived(archives)
    entries = []
    for path in candidates:
        digest = _sha256(path)
        relative = path.relative_to(processed).as_posix()
        entries.append((path, relative, digest, (relative, digest) in seen))
    fresh = [entry for entry in entries if not entry[3]]
    if not fresh:
        deleted = 0
        if delete_source:
            for path, _, _, _ in entries:
                path.unlink()
                deleted += 1
        return OffloadOutcome(None, [], deleted)
    ledger = _ledger_entries([digest for _, _, digest, _ in fresh])
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = free_destination(archives / f"processed_{stamp}.zip")
    files: list[dict[str, object]] = []
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path, relative, digest, _ in fresh:
            handle.write(path, f"processed/{relative}")
            stat = path.stat()
            files.append({
                "path": relative,
                "bytes": stat.st_size,
                "sha256": digest,
                "processed_at": dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(),
                "format": file_format(path),
                "ledger": ledger.get(digest),
            })
        manifest = {
            "manifest_version": 1,
            "created_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
            "days_old": days_old,
            "source": str(processed),
            "files": files,
        }
        handle.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
    with zipfile.ZipFile(partial) as handle:
        broken = handle.testzip()
    if broken is not None:
        partial.unlink()
        raise OSError(f"archive verification failed at {broken}")
    partial.rename(archive)
    deleted = 0
    if delete_source:
        for path, _, _, _ in entries:
            path.unlink()
            deleted += 1
        for directory in sorted(
            (path for path in processed.rglob("*") if path.is_dir()), reverse=True
        ):
            if not any(directory.iterdir()):
                directory.rmdir()
    return OffloadOutcome(archive, files, deleted)
