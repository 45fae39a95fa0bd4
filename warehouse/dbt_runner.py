"""How the warehouse runs dbt: one environment and one command line for every caller
(`warehouse build`, `warehouse run`, `warehouse check`, `warehouse dbt ...`).

dbt runs through its documented command line only: the `dbt` command of the project's
virtualenv, in a child process. It writes its own artifacts as usual (`target/manifest.json`,
`target/run_results.json`, `logs/dbt.log`) and its exit code is passed on unchanged
(0 success, 1 a node failed, 2 dbt could not run; 128 + N when signal N ended it).

The child dies with the warehouse command that started it: it runs in a process group of
its own, SIGINT and SIGTERM received by the parent are forwarded to that group (dbt then
cancels its queries), the group is killed if the parent leaves while dbt still runs, and
on Linux the kernel sends dbt SIGTERM when the parent dies even by SIGKILL
(`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from warehouse.paths import project_root

# dbt's selection flags: with one of them the caller chose the nodes
SELECTION_FLAGS = ("-s", "--select", "--exclude", "--selector", "-m", "--models")
# how long a build waits for a lock (a reader's open transaction, another session's DDL)
# before it stops with a clear message; WAREHOUSE_BUILD_LOCK_TIMEOUT overrides
BUILD_LOCK_TIMEOUT = "2min"
# how long a dbt group gets to end after SIGTERM before it is killed
_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


def build_arguments(dbt_args: Sequence[str]) -> list[str]:
    """`dbt build` arguments of `warehouse build` and the scheduled job: without a selection
    of the caller's own, the whole-table audits (tag full_scan) and the unit tests are left
    to `warehouse check`."""
    args = list(dbt_args)
    if any(arg.split("=")[0] in SELECTION_FLAGS for arg in args):
        return args
    return [*args, "--exclude", "tag:full_scan", "--exclude-resource-type", "unit_test"]


def target_path(args: Sequence[str] | None = None) -> Path:
    """dbt's target folder: `--target-path` among `args`, DBT_TARGET_PATH, else `target`
    in the project."""
    args = list(args or [])
    given = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--target-path"]
    given += [arg.split("=", 1)[1] for arg in args if arg.startswith("--target-path=")]
    configured = given[-1] if given else os.environ.get("DBT_TARGET_PATH")
    root = project_root()
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else root / path
    return root / "target"


def dbt_env(colours: bool | None = None) -> dict[str, str]:
    """The environment of every dbt invocation: the PG* connection (the embedded server's
    when PGHOST is unset), the project's profile, no tracking. `colours` False turns dbt's
    ANSI colours off (default: only when stdout is not a terminal); DBT_USE_COLORS set by
    the caller wins."""
    from warehouse.db import ensure_env

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
    # every statement of the build waits for a lock at most this long
    lock_timeout = env.get("WAREHOUSE_BUILD_LOCK_TIMEOUT", BUILD_LOCK_TIMEOUT)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={lock_timeout}".strip()
    if colours is None:
        colours = sys.stdout.isatty()
    if not colours:
        env.setdefault("DBT_USE_COLORS", "false")
    return env


def dbt_executable() -> str:
    """The `dbt` command installed beside this Python, else the one on PATH."""
    dbt = Path(sys.executable).with_name("dbt")
    return str(dbt) if dbt.exists() else "dbt"


def run_dbt(args: Sequence[str], log: Path | None = None, echo: bool = False) -> int:
    """Run `dbt ARGS` with the project's profile; its output goes to `log` (and to stdout
    with `echo`), else straight to the terminal. Returns dbt's exit code."""
    command = [dbt_executable(), *args]
    env = dbt_env(colours=False if log is not None else None)
    status = _run_child(command, env, log, echo)
    if status != 0:
        explanation = lock_timeout_explanation(target_path(args), env)
        if explanation:
            print(explanation, file=sys.stderr)
            if log is not None:
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(explanation + "\n")
    return status


def lock_timeout_explanation(target: Path, env: dict[str, str]) -> str | None:
    """One paragraph when a node of the last dbt run gave up waiting for a lock."""
    import json

    results = target / "run_results.json"
    if not results.exists():
        return None
    try:
        nodes = json.loads(results.read_text(encoding="utf-8")).get("results", [])
    except ValueError:
        return None
    blocked = [node.get("unique_id", "?") for node in nodes
               if "lock timeout" in str(node.get("message") or "")]
    if not blocked:
        return None
    timeout = env.get("WAREHOUSE_BUILD_LOCK_TIMEOUT", BUILD_LOCK_TIMEOUT)
    return (
        f"warehouse: {', '.join(blocked)} waited {timeout} for a lock another session holds "
        "(an open transaction in a BI tool or psql, or another build) and stopped; nothing "
        "was half-applied and the next build retries. See who holds it with: select pid, "
        "usename, state, xact_start, query from pg_stat_activity where pid = any("
        "select pid from pg_locks where granted); WAREHOUSE_BUILD_LOCK_TIMEOUT changes the wait."
    )


def _run_child(command: list[str], env: dict[str, str], log: Path | None, echo: bool) -> int:
    if log is None:
        with _child(command, env) as process:
            return _exit_code(process.wait())
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle, _child(
        command, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if echo:
                sys.stdout.write(line)
        return _exit_code(process.wait())


def _exit_code(returncode: int) -> int:
    """A shell's exit status: a child ended by signal N gives 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn for the child: SIGTERM when the parent dies (Linux), and exit at once if
    it died before that was set up."""
    prctl: Any = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + signal.SIGTERM)

    return setup


@contextlib.contextmanager
def _child(command: list[str], env: dict[str, str], **popen: Any) -> Iterator[subprocess.Popen]:
    """Start `command` in a process group of its own that ends with this process: SIGINT and
    SIGTERM are forwarded to the group while it runs; if the caller leaves early (an
    exception), the group gets SIGTERM, then SIGKILL after a grace period. Once the child
    has ended, a signal received meanwhile takes its usual course in this process."""
    process = subprocess.Popen(
        command, cwd=project_root(), env=env, stdin=subprocess.DEVNULL, process_group=0,
        preexec_fn=_die_with_parent(os.getpid()), **popen,
    )
    received: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, forward)
    try:
        yield process
    finally:
        try:
            if process.poll() is None:
                _end_group(process)
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
            if process.stdout is not None:
                process.stdout.close()
    if received:
        # dbt has ended: let the signal do to this process what it would have done
        os.kill(os.getpid(), received[0])


def _end_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
