"""How the warehouse runs dbt: one environment and one command line for every caller
(`warehouse build`, `warehouse run`, `warehouse check`, `warehouse dbt ...`).

`dbt build` runs through this module (`python -m loaders.dbt_runner build ...`), which
invokes dbt's own command line in-process and differs in two things. First, dbt rewrites
`target/manifest.json` (2 MB) twice per build, before and after the run, and pickles the
graph, about half a second of a scheduled incremental build that only reads the manifest
it parsed. Here a build writes `target/run_results.json` (the artifact monitoring reads:
each node's status, timing and message) and leaves the manifest as `dbt parse`, `dbt
compile` or `dbt docs generate` last wrote it. DBT_WRITE_JSON=true (or `--write-json`)
gives dbt's own behaviour back.

Second, each dbt thread keeps its database session from one node to the next. dbt
closes the connection after every node (seed, model, test, hook), so a build of 130 nodes
started 140 server processes, each with cold catalog caches: 6% of a scheduled
incremental build. Between nodes the session is returned to a new one's state instead
(`ROLLBACK`, then `DISCARD ALL`: temporary tables, settings, prepared plans and locks
gone); a session that cannot be reset is closed as dbt would. WAREHOUSE_DBT_NEW_SESSIONS=1
turns this off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from loaders.paths import project_root


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "y", "on")


def target_path(args: list[str] | None = None) -> Path:
    """dbt's target folder: `--target-path` among `args`, DBT_TARGET_PATH, else `target`
    in the project."""
    args = args or []
    given = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--target-path"]
    given += [arg.split("=", 1)[1] for arg in args if arg.startswith("--target-path=")]
    configured = given[-1] if given else os.environ.get("DBT_TARGET_PATH")
    root = project_root()
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else root / path
    return root / "target"


def dbt_env() -> dict[str, str]:
    """The environment of every dbt invocation: the PG* connection (the embedded server's
    when PGHOST is unset), the project's profile, no tracking."""
    from loaders.db import ensure_env

    ensure_env()
    env = dict(os.environ)
    env.setdefault("DBT_PROFILES_DIR", str(project_root()))
    env["DO_NOT_TRACK"] = "1"
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # one dbt thread per core: the builds are CPU-bound in the database (on 2 cores, 3 or 4
    # threads measured no faster than 2, within run-to-run noise). profiles.yml reads it.
    env.setdefault("WAREHOUSE_DBT_THREADS", str(os.cpu_count() or 2))
    # the file log keeps dbt's info lines (each node's start, result and timing), not the
    # text of every SQL statement: writing those cost a tenth of a scheduled incremental
    # build. DBT_LOG_LEVEL_FILE=debug brings them back; target/run/ holds each model's SQL.
    env.setdefault("DBT_LOG_LEVEL_FILE", "info")
    return env


def dbt_executable() -> str:
    dbt = Path(sys.executable).with_name("dbt")
    return str(dbt) if dbt.exists() else "dbt"


def dbt_command_line(args: list[str]) -> list[str]:
    if args[:1] == ["build"]:
        return [sys.executable, "-m", "loaders.dbt_runner", *args]
    return [dbt_executable(), *args]


def run_dbt(args: list[str], log: Path | None = None, echo: bool = False) -> int:
    """Run dbt with the project's profile; its output goes to `log` (and the terminal with
    `echo`), else straight to the terminal. Returns dbt's exit code."""
    command = dbt_command_line(args)
    if log is None:
        return subprocess.call(command, cwd=project_root(), env=dbt_env())
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            command, cwd=project_root(), env=dbt_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if echo:
                sys.stdout.write(line)
        return process.wait()


def dbt_writes_json(args: list[str]) -> bool:
    if "--write-json" in args:
        return True
    if "--no-write-json" in args:
        return False
    return env_flag("DBT_WRITE_JSON")


def keep_sessions_between_nodes() -> None:
    """Replace dbt's release of a thread's connection after a node (a close) by a reset of
    the session, so the thread's next node reuses it: dbt's set_connection_name takes over
    a thread's connection that is still open. tests/test_dbt_runner.py counts the sessions
    a build opens, so a dbt upgrade that changes this shows."""
    from dbt.adapters.base.connections import BaseConnectionManager
    from dbt.adapters.contracts.connection import ConnectionState

    close_connection = BaseConnectionManager.release
    if getattr(close_connection, "resets_session", False):
        return

    def release(self: BaseConnectionManager) -> None:
        with self.lock:
            connection = self.get_if_exists()
        if connection is None or connection.state != ConnectionState.OPEN:
            return close_connection(self)
        try:
            handle = connection.handle
            handle.rollback()
            connection.transaction_open = False
            handle.autocommit = True
            try:
                with handle.cursor() as cursor:
                    cursor.execute("discard all")
            finally:
                handle.autocommit = False
        except Exception:
            return close_connection(self)
        return None

    release.resets_session = True  # type: ignore[attr-defined]
    BaseConnectionManager.release = release  # type: ignore[method-assign]


def invoke(args: list[str]) -> int:
    """dbt's command line in this process, with the manifest left unwritten unless asked
    for and run_results.json written from the invocation's result. Exit codes as dbt's:
    0 success, 1 a node failed, 2 dbt could not run."""
    import click
    from dbt.cli.exceptions import ResultExit
    from dbt.cli.main import cli

    if not env_flag("WAREHOUSE_DBT_NEW_SESSIONS"):
        keep_sessions_between_nodes()
    writes_json = dbt_writes_json(args)
    if not writes_json:
        os.environ["DBT_WRITE_JSON"] = "false"
    result: Any = None
    try:
        returned = cli.main(args, prog_name="dbt", standalone_mode=False)
        result = returned[0] if isinstance(returned, tuple) else None
        code = 0
    except ResultExit as failed:
        result, code = failed.result, failed.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    if not writes_json and hasattr(result, "write"):
        path = target_path(args) / "run_results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        result.write(str(path))
    return code


if __name__ == "__main__":
    sys.exit(invoke(sys.argv[1:]))
