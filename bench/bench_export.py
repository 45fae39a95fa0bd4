"""Export benchmark (not part of the test suite): `warehouse export` next to a plain COPY.

In a scratch database, 1 million completed attempts (and their dimensions and KPI summary)
are written directly with generate_series into the marts tables the view reads, and the
real `exports.attempts` view is created by dbt from models/exports/export_attempts.sql.
Then, in the same run and alternating, each several times:
- plain: `psql -c "copy (select * from exports.attempts) to stdout csv header" > file`
  (the yardstick: the server's COPY and libpq's C client writing a file);
- export: `warehouse export attempts --format csv --out file` (a new process each time,
  Python start-up included).
Both files must hold the same header and rows (in any order: the view has none).
Target: export median ≤ 1.2 × plain median.

Usage: .venv/bin/python bench/bench_export.py [--rows 1000000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warehouse.db import ensure_env  # noqa: E402

DATABASE = "bench_exports"
TARGET = 1.2

SETUP = """
create schema if not exists raw;
create schema if not exists marts;
create schema if not exists exports;

create table marts.dim_orgs as
select
    ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid as org_id,
    'Organisation ' || g as name,
    'enterprise' as plan,
    now() - interval '400 days' as created_at,
    now() - interval '10 days' as updated_at
from generate_series(1, 10) as g;

create table marts.dim_users as
select
    'user_' || md5(g::text) as user_id,
    ('00000000-0000-4000-8000-' || lpad(to_hex(g % 10 + 1), 12, '0'))::uuid as org_id,
    'User ' || g as name,
    'user' || g || '@example.com' as email,
    'trainee' as role,
    'Team ' || (g % 25) as team,
    null::text as manager_id,
    'Europe/Berlin' as timezone,
    now() - interval '300 days' as created_at,
    now() - interval '3 days' as updated_at,
    now() - interval '3 days' as valid_from
from generate_series(1, 5000) as g;

create table marts.dim_scenarios as
select
    ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid as scenario_id,
    ('00000000-0000-4000-8000-' || lpad(to_hex(g % 10 + 1), 12, '0'))::uuid as org_id,
    'Scenario ' || g || ': handling a difficult customer' as title,
    (array['easy', 'medium', 'hard'])[g % 3 + 1] as difficulty,
    'sales' as category,
    now() - interval '300 days' as created_at,
    now() - interval '3 days' as updated_at,
    now() - interval '3 days' as valid_from
from generate_series(1, 50) as g;

create table marts.fact_scenario_attempts as
select
    md5('attempt' || g)::uuid as attempt_id,
    ('00000000-0000-4000-8000-' || lpad(to_hex(g % 5000 % 10 + 1), 12, '0'))::uuid as org_id,
    'user_' || md5((g % 5000)::text) as user_id,
    ('00000000-0000-4000-9000-' || lpad(to_hex(g % 50 + 1), 12, '0'))::uuid as scenario_id,
    round((40 + (g * 7919 % 600) / 10.0)::numeric, 1)::double precision as score,
    (60 + g * 31 % 900)::double precision as duration_seconds,
    (g * 7 % 400000)::bigint as talk_ms,
    (g * 13 % 300000)::bigint as listen_ms,
    timestamptz '2026-01-01' + g * interval '17 seconds' as started_at,
    timestamptz '2026-01-01' + g * interval '17 seconds'
        + (60 + g * 31 % 900) * interval '1 second' as ended_at,
    (timestamptz '2026-01-01' + g * interval '17 seconds')::date as date_key,
    now() as created_at,
    now() as updated_at,
    1::bigint as _load_id,
    now() as loaded_at
from generate_series(1::bigint, {rows}) as g;

create table marts.kpi_attempt_summary as
select
    attempt_id,
    org_id,
    user_id,
    scenario_id,
    (talk_ms % 17)::bigint as filler_words,
    case when duration_seconds > 0 then (talk_ms % 17) / (duration_seconds / 60.0) end
        as filler_words_per_minute,
    (talk_ms % 5)::bigint as interruptions,
    (talk_ms % 9)::bigint as questions_asked,
    (talk_ms % 4)::bigint as open_questions,
    (listen_ms % 3)::bigint as objections_raised,
    (listen_ms % 6)::bigint as keywords_mentioned,
    (listen_ms % 2)::bigint as long_pauses
from marts.fact_scenario_attempts;

analyze;
"""


def psql_binary() -> str | None:
    from warehouse.embedded import EmbeddedServer

    path = EmbeddedServer().psql_path()
    return str(path) if path.exists() else shutil.which("psql")


def prepare(rows: int, env: dict[str, str], target: Path) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(DATABASE)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    started = time.perf_counter()
    with psycopg.connect(dbname=DATABASE, autocommit=True) as conn:
        conn.execute(SETUP.replace("{rows}", str(int(rows))))
    print(f"wrote {rows} attempts with generate_series in {time.perf_counter() - started:.1f} s")
    # the real view, created by dbt from the project's model
    result = subprocess.run(
        [str(Path(sys.executable).with_name("warehouse")), "dbt", "run", "--select",
         "export_attempts", "--vars", "{as_of: '2026-11-20'}"],
        cwd=ROOT, env={**env, "DBT_TARGET_PATH": str(target / "dbt"),
                       "DBT_LOG_PATH": str(target / "logs")},
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"dbt could not create exports.attempts:\n{result.stdout[-3000:]}")


def timed(command: list[str], env: dict[str, str], stdout_path: Path | None = None) -> float:
    started = time.perf_counter()
    if stdout_path is None:
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
    else:
        with open(stdout_path, "wb") as handle:
            subprocess.run(command, env=env, check=True, stdout=handle, cwd=ROOT)
    return time.perf_counter() - started


def content_digest(path: Path) -> tuple[bytes, int, int]:
    """Header, line count and an order-independent digest of the lines (the view has no
    order: a parallel plan may emit rows in another order each time)."""
    total = 0
    lines = 0
    with open(path, "rb") as handle:
        header = handle.readline()
        for line in handle:
            total = (total + int.from_bytes(hashlib.blake2b(line, digest_size=16).digest())) % (
                1 << 128)
            lines += 1
    return header, lines, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base = ensure_env()
    env = {**os.environ, **base, "PGDATABASE": DATABASE, "PGTZ": "UTC"}
    os.environ["PGDATABASE"] = DATABASE
    psql = psql_binary()
    if psql is None:
        sys.exit("no psql binary found")
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        work = Path(tmp)
        prepare(args.rows, env, work)
        plain_file, export_file = work / "plain.csv", work / "export.csv"
        plain_cmd = [psql, "-X", "-q", "-c",
                     "copy (select * from exports.attempts) to stdout csv header"]
        export_cmd = [str(Path(sys.executable).with_name("warehouse")), "export", "attempts",
                      "--format", "csv", "--out", str(export_file)]
        # warm-up: caches, first connection
        timed(plain_cmd, env, plain_file)
        timed(export_cmd, env)
        plain_times, export_times = [], []
        for _ in range(args.repeat):
            plain_times.append(timed(plain_cmd, env, plain_file))
            export_times.append(timed(export_cmd, env))
        identical = content_digest(plain_file) == content_digest(export_file)
        size = export_file.stat().st_size
    if not args.keep:
        with psycopg.connect(dbname="postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(DATABASE)))
    plain, export = statistics.median(plain_times), statistics.median(export_times)
    ratio = export / plain
    print(f"rows: {args.rows}, CSV size: {size / 1e6:.1f} MB, same rows: {identical}")
    print("plain COPY (psql):     " + ", ".join(f"{t:.2f}" for t in plain_times)
          + f" s; median {plain:.2f} s ({args.rows / plain / 1e6:.2f} M rows/s)")
    print("warehouse export csv:  " + ", ".join(f"{t:.2f}" for t in export_times)
          + f" s; median {export:.2f} s ({args.rows / export / 1e6:.2f} M rows/s)")
    verdict = "OK" if ratio <= TARGET else "ABOVE TARGET"
    print(f"ratio export / plain: {ratio:.2f} (target <= {TARGET}): {verdict}")
    if not identical:
        sys.exit("the two files differ")


if __name__ == "__main__":
    main()
