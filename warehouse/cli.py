"""The `warehouse` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from loaders.streams import STREAMS
from warehouse.dbt_runner import build_arguments, run_dbt

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


class _Commands(click.Group):
    """Every command stops with one sentence on a server older than the supported ones."""

    def invoke(self, ctx: click.Context) -> Any:
        from loaders.server import UnsupportedServer

        try:
            return super().invoke(ctx)
        except UnsupportedServer as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Commands)
@click.version_option(package_name="training-warehouse")
def main() -> None:
    """Training-analytics warehouse: load raw files, build with dbt, export, check."""


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Manage the embedded PostgreSQL server (used when PGHOST is not set)."""


def _embedded_or_exit():
    from warehouse.db import using_embedded
    from warehouse.embedded import EmbeddedServer

    if not using_embedded():
        return None
    return EmbeddedServer()


@db.command("start")
@click.option("--listen", "listen", default=None, metavar="ADDRESS[:PORT]",
              help="Also accept TCP connections (password only) on this address, e.g. "
                   "0.0.0.0:5433; remembered for later starts; `off` for the socket only.")
def db_start(listen: str | None) -> None:
    """Start the embedded server (initialising it on first use)."""
    from warehouse.embedded import Listen

    server = _embedded_or_exit()
    if server is None:
        click.echo(f"PGHOST is set ({os.environ['PGHOST']}): using that server, nothing to start")
        return
    if listen is not None:
        try:
            server.remember_listen(Listen.parse(listen, server.port))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--listen") from error
    try:
        status = server.start()
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    where = f"socket {status.socket_dir}"
    if server.listen:
        where += f", TCP {server.listen.address}:{server.port} (password required)"
    click.echo(f"embedded PostgreSQL running (pid {status.pid}), {where}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    server = _embedded_or_exit()
    if server is None:
        click.echo("PGHOST is set: the external server is not managed here")
        return
    click.echo("stopped" if server.stop() else "not running")


def _server_version(**connect: Any) -> str:
    import psycopg

    from warehouse.db import scalar

    with psycopg.connect(connect_timeout=5, **connect) as conn:
        return str(scalar(conn, "show server_version"))


@db.command("distribute")
def db_distribute() -> None:
    """Make this warehouse distributed (Citus), once: facts sharded by org_id, dimensions
    as reference tables (docs/scaling.md).

    Needs the citus extension and the workers registered on the server PG* points at.
    Records the choice in the database (table ops.citus_distribution): every later build,
    `warehouse run` and --full-refresh keeps the warehouse distributed, no flag to repeat.
    Tables already built move to the shards now (their rows included); the others are
    distributed by their first build. Safe to run again."""
    sys.exit(run_dbt(["run-operation", "citus_distribute_warehouse"]))


@db.command("status")
def db_status() -> None:
    """Tell whether the database answers."""
    import psycopg

    server = _embedded_or_exit()
    if server is None:
        try:
            version = _server_version()
            click.echo(f"external PostgreSQL {version} at {os.environ['PGHOST']}: reachable")
        except psycopg.Error as error:
            click.echo(f"external PostgreSQL at {os.environ['PGHOST']}: not reachable: {error}")
            sys.exit(1)
        return
    status = server.status()
    if not status.running:
        click.echo(f"stopped, data {status.data_dir}")
        sys.exit(3)
    try:
        version = _server_version(**server.connect_kwargs())
    except psycopg.Error as error:
        click.echo(f"running (pid {status.pid}) but not reachable: {error}")
        sys.exit(1)
    tcp = f", TCP {server.listen.address}:{server.port}" if server.listen else ""
    click.echo(
        f"embedded PostgreSQL {version} running (pid {status.pid}), data {status.data_dir}, "
        f"socket {status.socket_dir}{tcp}: reachable"
    )


def _role_option(function):
    return click.option(
        "--role", default=None,
        help="Connect as this role (default: PGUSER, else the warehouse's owner).",
    )(function)


@db.command("url")
@_role_option
@click.option("--url-only", is_flag=True, help="Only the libpq URL, for scripts.")
def db_url(role: str | None, url_only: bool) -> None:
    """Print the connection details a BI tool asks for, and libpq, SQLAlchemy and JDBC URLs."""
    from warehouse.connection_info import describe

    server = _embedded_or_exit()
    role = role or os.environ.get("PGUSER") or None
    if server is not None:
        try:
            server.start()
        except RuntimeError as error:
            raise click.ClickException(str(error)) from error
    info = describe(server, role)
    click.echo(info.libpq_url())
    if not url_only:
        click.echo(info.text())


@db.command("env")
def db_env() -> None:
    """Print `export PG...=` lines: eval "$(warehouse db env)"."""
    from warehouse.db import ensure_env

    for key, value in sorted(ensure_env().items()):
        click.echo(f"export {key}={_quote(value)}")


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


@db.command("shell", context_settings={"ignore_unknown_options": True})
@_role_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_shell(role: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the warehouse database (as PGUSER or --role when given)."""
    import shutil

    from warehouse.db import ensure_env
    from warehouse.embedded import EmbeddedServer

    ensure_env(role or os.environ.get("PGUSER") or None)
    psql = str(EmbeddedServer().psql_path())
    if not Path(psql).exists():
        psql = shutil.which("psql") or "psql"
    os.execvp(psql, [psql, *psql_args])


@db.command("password")
@click.argument("role")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the new password from standard input instead of generating one.")
def db_password(role: str, from_stdin: bool) -> None:
    """Set or rotate ROLE's password (scram-sha-256); it is kept in
    .warehouse/secrets/ROLE.password, readable by you only."""
    from warehouse import access
    from warehouse.db import connect, using_embedded
    from warehouse.embedded import EmbeddedServer
    from warehouse.paths import state_dir

    password = sys.stdin.readline().rstrip("\n") if from_stdin else None
    if from_stdin and len(password or "") < 12:
        raise click.ClickException("a password of at least 12 characters, please")
    with connect() as conn:
        try:
            path = access.set_password(conn, state_dir(), role, password)
        except access.AccessError as error:
            raise click.ClickException(str(error)) from error
    if using_embedded():
        EmbeddedServer().write_pgpass()
    click.echo(f"password of {role} set (scram-sha-256); it is in {path} (readable by you only)")


# --------------------------------------------------------------------------- access


@main.group()
def access() -> None:
    """Who reads the warehouse: organisation roles and the BI roles' timeouts."""


def _timeouts(statement: str | None, lock: str | None, idle: str | None) -> dict[str, str]:
    given = {"statement_timeout": statement, "lock_timeout": lock,
             "idle_in_transaction_session_timeout": idle}
    return {key: value for key, value in given.items() if value is not None}


def _timeout_options(function):
    for name, help_text in reversed((
        ("--statement-timeout", "Longest query, e.g. 5min (default 5min)."),
        ("--lock-timeout", "Longest wait for a lock, e.g. 10s (default 10s)."),
        ("--idle-timeout", "Longest idle open transaction, e.g. 2min (default 2min)."),
    )):
        function = click.option(name, default=None, help=help_text)(function)
    return function


@access.command("org")
@click.argument("org_id")
@click.option("--role", "role", required=True, help="The login role to create or update.")
@_timeout_options
def access_org(org_id: str, role: str, statement_timeout: str | None, lock_timeout: str | None,
               idle_timeout: str | None) -> None:
    """Create or update a login role that reads the marts and export views as reporting
    does, but only ORG_ID's rows."""
    from warehouse import access as access_module
    from warehouse.db import connect, using_embedded
    from warehouse.embedded import EmbeddedServer
    from warehouse.paths import state_dir

    with connect() as conn:
        try:
            created = access_module.grant_org(
                conn, org_id, role, _timeouts(statement_timeout, lock_timeout, idle_timeout))
            path = access_module.set_password(conn, state_dir(), role) if created else None
        except access_module.AccessError as error:
            raise click.ClickException(str(error)) from error
    if path is not None and using_embedded():
        EmbeddedServer().write_pgpass()
    click.echo(f"{role} reads organisation {org_id}'s rows" + (
        f"; its password is in {path} (`warehouse db url --role {role}`)" if path else ""))


@access.command("list")
def access_list() -> None:
    """The BI roles: what each reads and its timeouts."""
    from warehouse import access as access_module
    from warehouse.db import connect

    with connect() as conn:
        try:
            roles = access_module.list_roles(conn)
        except access_module.AccessError as error:
            raise click.ClickException(str(error)) from error
    for role in roles:
        click.echo(role.line())


@access.command("revoke")
@click.argument("role")
def access_revoke(role: str) -> None:
    """Drop an organisation role (its open sessions end)."""
    from warehouse import access as access_module
    from warehouse.db import connect, using_embedded
    from warehouse.embedded import EmbeddedServer
    from warehouse.paths import state_dir

    with connect() as conn:
        try:
            access_module.revoke(conn, state_dir(), role)
        except access_module.AccessError as error:
            raise click.ClickException(str(error)) from error
    if using_embedded():
        EmbeddedServer().write_pgpass()
    click.echo(f"{role} dropped")


@access.command("timeouts")
@click.argument("role")
@_timeout_options
def access_timeouts(role: str, statement_timeout: str | None, lock_timeout: str | None,
                    idle_timeout: str | None) -> None:
    """Change a BI role's default timeouts (reporting or an organisation role)."""
    from warehouse import access as access_module
    from warehouse.db import connect

    timeouts = _timeouts(statement_timeout, lock_timeout, idle_timeout)
    if not timeouts:
        raise click.UsageError("give at least one of the timeouts")
    with connect() as conn:
        try:
            access_module.set_timeouts(conn, role, timeouts)
            (line,) = [item.line() for item in access_module.list_roles(conn)
                       if item.role == role]
        except access_module.AccessError as error:
            raise click.ClickException(str(error)) from error
    click.echo(line)


# --------------------------------------------------------------------------- load


@main.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1, required=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar on large files.")
@click.option("--follow-symlinks", is_flag=True,
              help="Load what symbolic links point to (refused by default).")
def load(args: tuple[str, ...], progress: bool | None, follow_symlinks: bool) -> None:
    """Load files or folders: warehouse load [STREAM] PATH...

    STREAM (orgs, users, scenarios, attempts, sessions, kpi_events) applies to every file;
    without it the stream comes from each file name's prefix.
    """
    from loaders.load import load_paths
    from warehouse.db import connect

    stream_name = None
    paths = list(args)
    if paths and paths[0] in STREAMS and not Path(paths[0]).exists():
        stream_name = paths.pop(0)
    if not paths:
        raise click.UsageError("give at least one file or folder")
    with connect() as conn:
        results = load_paths(
            conn, [Path(p) for p in paths], stream_name, progress=progress,
            follow_symlinks=follow_symlinks,
        )
    for result in results:
        click.echo(result.line(), err=result.status == "rejected")
    if any(result.status == "rejected" for result in results):
        sys.exit(1)


# --------------------------------------------------------------------------- dbt


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def build(dbt_args: tuple[str, ...]) -> None:
    """dbt build (seeds, snapshots, models, tests); extra arguments pass through to dbt.

    Without a selection of your own, tests tagged full_scan (whole-warehouse audits) and the
    dbt unit tests (fixed inputs: they test the SQL, not the data, so dbt advises running
    them in development and CI, not on every production build) are left to
    `warehouse check`; select them with `warehouse build -s tag:full_scan+` or run
    everything with `warehouse build --select fqn:*`.

    A build holds the lock of `warehouse run`: while a run (or another build) is going, it
    waits for it instead of building the same relations at once."""
    from warehouse.db import build_lock

    with build_lock(on_wait=_say):
        code = run_dbt(["build", *build_arguments(dbt_args)])
    sys.exit(code)


# dbt commands that write to the warehouse take the run lock like `warehouse build`
_WRITING_DBT_COMMANDS = ("build", "run", "seed", "snapshot")


def _say(text: str) -> None:
    click.echo(text, err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Any dbt command with the project's profile, e.g. warehouse dbt docs generate."""
    import contextlib

    from warehouse.db import build_lock

    writes = bool(dbt_args) and dbt_args[0] in _WRITING_DBT_COMMANDS
    with build_lock(on_wait=_say) if writes else contextlib.nullcontext():
        code = run_dbt(list(dbt_args))
    sys.exit(code)


# --------------------------------------------------------------------------- data


@main.command()
@click.option("--scale", type=float, default=1.0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--format", "formats", type=click.Choice(["mixed", "csv", "jsonl", "parquet"]),
              default="mixed", show_default=True)
@click.option("--no-bad-rows", is_flag=True, help="Write only valid rows.")
def generate(scale: float, out_dir: Path, seed: int, formats: str, no_bad_rows: bool) -> None:
    """Write deterministic synthetic raw files (no database needed)."""
    from warehouse.generate import generate as write_data

    out_dir.mkdir(parents=True, exist_ok=True)
    counts = write_data(out_dir, scale=scale, seed=seed, formats=formats, bad_rows=not no_bad_rows)
    for stream, rows in counts.items():
        click.echo(f"{stream}: {rows} rows")
    click.echo(f"written to {out_dir}")


# --------------------------------------------------------------------------- demo

DEMO_TOUR = """
The warehouse is built. Try, with `eval "$(.venv/bin/warehouse db env)"` and psql
(`.venv/bin/warehouse db shell`):

  -- this month's leaderboard per organisation
  select org_id, user_id, avg_score, rank from marts.mv_leaderboard_month
  where month = date_trunc('month', now()) order by org_id, rank limit 10;

  -- who is improving, and how fast
  select user_id, metric, trend_direction, velocity_per_week
  from marts.user_metric_trends where trend_direction = 'improving' limit 10;

  -- practice habits in each learner's own time zone
  select user_id, current_streak_days, longest_streak_days, preferred_hour_of_day
  from marts.user_practice_habits order by current_streak_days desc limit 10;

  -- what the loaders set aside, and why
  select file_name, location, reason from raw.quarantine limit 10;

Exports were written to {exports}; pull any view yourself with
  psql -c "\\copy (select * from exports.attempts) to 'attempts.csv' csv header"
Metabase, Superset: `warehouse db password reporting`, `warehouse db start --listen
0.0.0.0:5433`, then `warehouse db url --role reporting` prints what their form asks
(read-only role; sees marts and exports). Step by step: docs/connecting.md.
"""


@main.command()
@click.option("--scale", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where exports go (default: demo_out/ in the project).")
def demo(scale: float, seed: int, out_dir: Path | None) -> None:
    """Generate a realistic synthetic data set, load it, build, export, and show a tour."""
    from loaders.load import load_paths
    from warehouse.db import connect
    from warehouse.generate import generate as write_data
    from warehouse.paths import project_root, state_dir

    data_dir = state_dir() / f"demo-data-scale{scale:g}-seed{seed}"
    if not (data_dir / "manifest.json").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        click.echo(f"generating demo data (scale {scale:g}) in {data_dir}")
        write_data(data_dir, scale=scale, seed=seed)
    with connect() as conn:
        results = load_paths(conn, [data_dir])
    for result in results:
        if result.status != "skipped":
            click.echo(result.line())
    from warehouse.db import build_lock

    with build_lock(on_wait=_say):
        status = run_dbt(["build", *build_arguments([])])
    if status != 0:
        click.echo("dbt build failed: see the output above", err=True)
        sys.exit(status)
    exports_dir = out_dir or project_root() / "demo_out"
    _write_demo_exports(exports_dir)
    click.echo(DEMO_TOUR.format(exports=exports_dir))


def _write_demo_exports(exports_dir: Path) -> None:
    try:
        from warehouse import export as exporter
    except ImportError:
        click.echo("(export module not installed: skipping exports)")
        return
    exports_dir.mkdir(parents=True, exist_ok=True)
    for view in exporter.EXPORT_VIEWS:
        target = exports_dir / f"{view}.csv"
        result = exporter.export_view(view, "csv", target)
        click.echo(f"exported {view}: {result.rows} rows -> {target}")


# --------------------------------------------------------------------------- export, check, run


@main.command("export")
@click.argument("view", required=False)
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson", "parquet"]), default=None,
              help="Output format (default csv; in an archive: csv, documents/events ndjson).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="File to write ('-' = stdout); default exports_out/<view>.<format>.")
@click.option("--org", "org_id", default=None, help="Only this organisation's rows.")
@click.option("--gzip", "compress", is_flag=True,
              help="gzip CSV/NDJSON (Parquet: gzip pages instead of snappy).")
@click.option("--archive", "archive_org", default=None, metavar="ORG_ID",
              help="Zip every export view of one organisation with a manifest.json.")
@click.option("--checksum", is_flag=True, help="Print the SHA-256 of the written file.")
def export_command(view: str | None, fmt: str | None, out: Path | None, org_id: str | None,
                   compress: bool, archive_org: str | None, checksum: bool) -> None:
    """Stream an export view to CSV, NDJSON or Parquet: warehouse export VIEW [options];
    or warehouse export --archive ORG_ID [--out FILE.zip]."""
    from warehouse import export as exporter

    try:
        if archive_org:
            if view:
                raise click.UsageError("give either VIEW or --archive ORG_ID, not both")
            path, manifest = exporter.export_archive(archive_org, out, fmt)
            for item in manifest["files"]:
                click.echo(f"{item['name']}: {item['rows']} rows, sha256 {item['sha256']}")
            click.echo(f"archive written to {path} (export version {manifest['export_version']})")
            return
        if not view:
            raise click.UsageError(
                "name a view (" + ", ".join(exporter.EXPORT_VIEWS) + ") or use --archive"
            )
        to_stdout = out is not None and str(out) == "-"
        result = exporter.export_view(
            view, fmt or "csv", None if to_stdout else out, org_id=org_id, compress=compress,
            to_stdout=to_stdout, checksum=checksum,
        )
        click.echo(result.line(), err=to_stdout)
    except exporter.ExportError as error:
        raise click.ClickException(str(error)) from error


@main.command("check")
@click.option("--vars", "dbt_vars", default=None, help="dbt --vars for the tests, e.g. as_of.")
@click.option("--no-docs", is_flag=True, help="Skip dbt docs and GX Data Docs.")
@click.option("--no-gx", is_flag=True, help="Skip the Great Expectations suite.")
def check_command(dbt_vars: str | None, no_docs: bool, no_gx: bool) -> None:
    """The data-quality suite: dbt tests, source freshness, Great Expectations; writes dbt
    docs and GX Data Docs under target/. Exits 1 when an error-severity check fails."""
    from warehouse.check import run_checks

    report = run_checks(
        dbt_args=["--vars", dbt_vars] if dbt_vars else [], docs=not no_docs,
        gx_suite=not no_gx, progress=lambda text: click.echo(text, err=True),
    )
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


@main.command("run")
@click.option("--inbox", type=click.Path(path_type=Path), default=None,
              help="Folder of new files (default inbox/ in the project).")
@click.option("--wait", is_flag=True, help="Wait for a running job instead of exiting.")
@click.option("--no-check", is_flag=True, help="Skip the checks after the build.")
@click.option("--force-build", is_flag=True, help="Build even when nothing new was loaded.")
@click.option("--min-age", type=float, default=0.0, show_default=True,
              help="Leave files changed less than this many seconds ago for the next run.")
@click.option("--vars", "dbt_vars", default=None, help="dbt --vars for the build and checks.")
def run_command(inbox: Path | None, wait: bool, no_check: bool, force_build: bool,
                min_age: float, dbt_vars: str | None) -> None:
    """The scheduled job: load new inbox files, move them to processed/ or rejected/,
    build, check. A second run while one is going exits 0 (or waits with --wait)."""
    from warehouse.run import log_to_stdout, run

    log_to_stdout()
    outcome = run(
        inbox, wait=wait, check=not no_check, force_build=force_build, min_age=min_age,
        dbt_args=["--vars", dbt_vars] if dbt_vars else [],
    )
    sys.exit(outcome.exit_code)


@main.command("offload")
@click.option("--days-old", type=float, required=True,
              help="Archive processed files moved there more than N days ago.")
@click.option("--inbox", type=click.Path(path_type=Path), default=None,
              help="The run's inbox; processed/ and archives/ are its siblings.")
@click.option("--delete-source", is_flag=True, help="Delete the files once archived.")
def offload_command(days_old: float, inbox: Path | None, delete_source: bool) -> None:
    """Zip old processed inbox files into archives/ with a manifest (the database is
    not touched)."""
    from warehouse.run import offload

    click.echo(offload(days_old, inbox, delete_source=delete_source).line())


# --------------------------------------------------------------------------- forget


@main.command("forget")
@click.option("--user", "user_id", default=None, metavar="USER_ID",
              help="The user id to erase (as delivered in the raw files).")
@click.option("--org", "org_id", default=None, metavar="ORG_ID",
              help="Erase the user in this organisation only (default: every one).")
@click.option("--reason", default=None, help="Why (kept in the audit; the person's "
              "identifiers are cut out of it).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed, per table and "
              "file, with counts; change nothing.")
@click.option("--list", "show_list", is_flag=True, help="Show the audit of past erasures.")
@click.option("--inbox", type=click.Path(path_type=Path), default=None,
              help="The run's inbox (processed/, rejected/, archives/ are its siblings).")
@click.option("--files", "folders", type=click.Path(path_type=Path), multiple=True,
              help="Another folder (or file) of delivered files to rewrite; repeatable.")
def forget_command(user_id: str | None, org_id: str | None, reason: str | None,
                   dry_run: bool, show_list: bool, inbox: Path | None,
                   folders: tuple[Path, ...]) -> None:
    """Erase a person: every row, quarantined text, snapshot, fact and mart naming them,
    and the kept files holding their records; later deliveries of their rows are
    quarantined as 'erased user'. docs/privacy.md describes what is kept and why."""
    from warehouse.db import connect
    from warehouse.forget import forget, list_erasures

    if show_list:
        if user_id:
            raise click.UsageError("give either --user or --list")
        with connect() as conn:
            for line in list_erasures(conn):
                click.echo(line)
        return
    if not user_id or not user_id.strip():
        raise click.UsageError("give --user USER_ID (or --list)")
    if org_id is not None:
        import uuid

        try:
            org_id = str(uuid.UUID(org_id))
        except ValueError as error:
            raise click.UsageError(f"--org must be an organisation id (a UUID), got {org_id!r}") \
                from error
    with connect() as conn:
        erasure = forget(conn, user_id, org_id=org_id, reason=reason, dry_run=dry_run,
                         inbox=inbox, folders=folders)
    for line in erasure.lines():
        click.echo(line)
    if erasure.files.manual:
        sys.exit(2)
