"""Builds killed at random moments never leave the warehouse worse than a clean build
(not part of the test suite: it takes minutes).

On a scratch database loaded with generated data: one clean `warehouse build` gives the
reference figures (every table of schema marts and every export view, as digests). Then,
ROUNDS times: a `warehouse build` (every other round `--full-refresh`) is killed at a random
moment with SIGKILL to its whole process tree (the warehouse command's process group and
dbt's own), as a power cut would; the next `warehouse build` must succeed and leave every
mart and export view exactly as the clean build did (all six export views present).

Usage: .venv/bin/python bench/kill_builds.py [--scale 0.05] [--rounds 10] [--seed 1]
Exit status 0 when every round matched, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warehouse.db import ensure_env  # noqa: E402
from warehouse.generate import generate  # noqa: E402

DATABASE = "bench_kill_builds"
AS_OF = "2026-11-20"
VARS = ("--vars", f"{{as_of: '{AS_OF}'}}")
EXPORT_VIEWS = ("attempts", "sessions", "kpi_events", "user_summary", "user_profile_json",
                "export_metadata")
WAREHOUSE = str(Path(sys.executable).with_name("warehouse"))
# columns that differ between any two builds (or reads) by design
VOLATILE = {
    "exports.export_metadata": ("built_at", "dbt_invocation_id"),
    "exports.user_profile_json": ("exported_at",),
}


def admin() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True)


def env() -> dict[str, str]:
    return {**os.environ, "PGDATABASE": DATABASE,
            "DBT_TARGET_PATH": str(ROOT / "target" / "bench-kill"),
            "DBT_LOG_PATH": str(ROOT / "logs" / "bench-kill")}


def warehouse(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [WAREHOUSE, *args], cwd=ROOT, env=env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    process = warehouse(*args)
    output, _ = process.communicate()
    return process.returncode, output, time.perf_counter() - started


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL to the warehouse command's process group and to every descendant's group
    (dbt runs in a group of its own), all at once."""
    try:
        family = [process.pid, *(child.pid for child in
                                 psutil.Process(process.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [process.pid]
    groups = set()
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait()


def figures() -> dict[str, tuple[int, str]]:
    """Row count and content digest of every marts table and export view (floats to 10
    significant digits: an average may change in its last bit with the rows' order), but
    for the columns that tell when a build ran or a view was read."""
    result: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dbname=DATABASE) as conn:
        relations = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where (table_schema = 'marts' and table_type = 'BASE TABLE')"
            " or table_schema = 'exports' order by 1, 2"
        ).fetchall()
        for schema, name in relations:
            columns = [
                column for (column,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = %s"
                    " and table_name = %s order by ordinal_position", (schema, name),
                ).fetchall()
                if column not in VOLATILE.get(f"{schema}.{name}", ())
            ]
            rows = conn.execute(
                sql.SQL("select {} from {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.Identifier(schema, name),
                )
            ).fetchall()
            normalised = sorted(
                repr(tuple(float(f"{value:.10g}") if isinstance(value, float) else value
                           for value in row))
                for row in rows
            )
            digest = hashlib.sha256("\n".join(normalised).encode()).hexdigest()
            result[f"{schema}.{name}"] = (len(rows), digest)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    ensure_env()
    data = args.data / f"kill-scale{args.scale:g}"
    if not (data / "manifest.json").exists():
        data.mkdir(parents=True, exist_ok=True)
        import datetime as dt

        generate(data, scale=args.scale, seed=args.seed, as_of=dt.date.fromisoformat(AS_OF))
    with admin() as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    try:
        code, output, _ = finish("load", str(data))
        if code not in (0, 1):  # 1: the generated data includes files meant to be rejected
            print(output)
            return 1
        code, output, clean_s = finish("build", *VARS)
        if code != 0:
            print(output[-4000:])
            return 1
        reference = figures()
        missing = [view for view in EXPORT_VIEWS if f"exports.{view}" not in reference]
        if missing:
            print(f"the clean build has no export view {', '.join(missing)}")
            return 1
        print(f"clean build: {clean_s:.1f} s, {len(reference)} relations")
        failures = 0
        for number in range(1, args.rounds + 1):
            full_refresh = number % 2 == 0
            extra = ("--full-refresh",) if full_refresh else ()
            moment = rng.uniform(0.5, clean_s)
            build = warehouse("build", *VARS, *extra)
            try:
                build.wait(timeout=moment)
                killed = False
            except subprocess.TimeoutExpired:
                kill_tree(build)
                killed = True
            if build.stdout is not None:
                build.stdout.close()
            code, output, after_s = finish("build", *VARS)
            now = figures() if code == 0 else {}
            differ = sorted(
                name for name in set(reference) | set(now) if reference.get(name) != now.get(name)
            )
            kind = "build --full-refresh" if full_refresh else "build"
            what = f"killed after {moment:.1f} s" if killed else "ended before the kill"
            if code == 0 and not differ:
                print(f"round {number}: {kind} {what}; the next build ({after_s:.1f} s) gives "
                      "the clean build's marts and export views")
            else:
                failures += 1
                print(f"round {number}: {kind} {what}; the next build exited {code}; "
                      f"differing or missing: {', '.join(differ[:10]) or '-'}")
                if code != 0:
                    print(output[-3000:])
        print(f"{args.rounds - failures} of {args.rounds} rounds matched the clean build")
        return 1 if failures else 0
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(DATABASE)))


if __name__ == "__main__":
    sys.exit(main())
