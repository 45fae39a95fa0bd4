"""Load and build benchmark at realistic scale (not part of the test suite).

Measured in one run, on the same generated CSV files of KPI events:
- plain COPY of the files into an unlogged table of text columns (the yardstick);
- plain COPY into a table of typed columns (what typing alone costs);
- the warehouse loader (ledger, typing, validation, quarantine included);
- dlt, the popular Python loading library, on its fastest documented path for Postgres
  (Arrow tables written as CSV and COPYed), when `bench/setup_dlt.sh` has installed it;
then the dbt build: full; "backfill", the first incremental build after loading the whole
scale at once, with the default lookback (every load is inside its window, as on the first
days of a deployment: it must not take longer than the full build); "catch-up", in a
second database, the incremental build after the last quarter of the KPI files arrives at
once in a warehouse built on the rest (a backlog delivered late: every one of those events
is new to the facts); and incremental after adding about 1% new data (three times, each
with its own increment; the median is the figure).

Usage: .venv/bin/python bench/bench_load.py [--scale 100] [--data DIR] [--skip-dlt]
       [--increments 3] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loaders.load import Loader, discover  # noqa: E402
from loaders.streams import KPI_EVENTS  # noqa: E402
from warehouse.db import ensure_env  # noqa: E402
from warehouse.embedded import temporary_server  # noqa: E402
from warehouse.generate import generate  # noqa: E402

DLT_PYTHON = ROOT / "bench" / ".venv-dlt" / "bin" / "python"
RESULTS = ROOT / "bench" / "results"


def admin() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True)


def fresh_database(name: str) -> dict[str, str]:
    drop_database(name)
    with admin() as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return {**os.environ, "PGDATABASE": name}


def drop_database(name: str) -> None:
    """Drop a measuring database once its figure is taken: left behind, its freshly loaded
    11 M rows would be vacuumed by autovacuum in the middle of the next measurement."""
    with admin() as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def connect(name: str) -> psycopg.Connection:
    conn = psycopg.connect(dbname=name)
    conn.execute("set timezone = 'UTC'")
    conn.commit()
    return conn


def copy_file(
    conn: psycopg.Connection, table: str, path: Path, columns: list[str], options: str = ""
) -> int:
    statement = sql.SQL("copy {} ({}) from stdin (format csv, header true{})").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(options),
    )
    with conn.cursor() as cur:
        with cur.copy(statement) as copy, open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        rows = cur.rowcount
    conn.commit()
    return rows


def header_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.readline().strip().split(",")


def plain_copy(files: list[Path], typed: bool) -> tuple[float, int]:
    name = "bench_plain_typed" if typed else "bench_plain_text"
    fresh_database(name)
    columns = header_of(files[0])
    with connect(name) as conn:
        if typed:
            definition = ", ".join(
                f'"{c}" {KPI_EVENTS.column(c).sql_type}'
                if c in KPI_EVENTS.column_names
                else f'"{c}" text'
                for c in columns
            )
            conn.execute(f"create table events ({definition})")
        else:
            conn.execute(
                "create unlogged table events (" + ", ".join(f'"{c}" text' for c in columns) + ")"
            )
        conn.commit()
        start = time.perf_counter()
        rows = 0
        for path in files:
            # typed COPY would stop at the first bad row: let it skip them instead
            rows += copy_file(conn, "events", path, columns, ", on_error ignore" if typed else "")
        elapsed = time.perf_counter() - start
    drop_database(name)
    return elapsed, rows


def warehouse_load(data: Path, kpi_files: list[Path], database: str) -> tuple[float, int, int]:
    fresh_database(database)
    os.environ["PGDATABASE"] = database
    files, _ = discover([data])
    others = [path for path in files if path not in kpi_files]
    with connect(database) as conn:
        loader = Loader(conn, progress=False)
        for path in others:
            loader.load_file(path)
        start = time.perf_counter()
        loaded = quarantined = 0
        for path in kpi_files:
            result = loader.load_file(path)
            loaded += result.rows_loaded
            quarantined += result.rows_quarantined
        return time.perf_counter() - start, loaded, quarantined


def dlt_load(kpi_files: list[Path]) -> float | None:
    if not DLT_PYTHON.exists():
        return None
    fresh_database("bench_dlt")
    env = {**os.environ, "PGDATABASE": "bench_dlt"}
    start = time.perf_counter()
    subprocess.run(
        [str(DLT_PYTHON), str(ROOT / "bench" / "dlt_load.py"), *map(str, kpi_files)],
        check=True,
        env=env,
    )
    elapsed = time.perf_counter() - start
    drop_database("bench_dlt")
    return elapsed


def settle(database: str) -> None:
    """Bring the server to the state a scheduled build meets: the vacuum and statistics
    autovacuum would have done in the hours since the last bulk change, and no dirty
    buffers waiting for a checkpoint. Otherwise autovacuum (which starts on a freshly built
    10-million-row fact within a minute) takes one of the two cores in the middle of the
    timed build, and timings swing by a third."""
    with psycopg.connect(dbname=database, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
        conn.execute("checkpoint")


def build(database: str, *args: str) -> float:
    settle(database)
    env = {**os.environ, "PGDATABASE": database, "DBT_TARGET_PATH": str(ROOT / "target" / "bench")}
    start = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("warehouse")), "build", *args],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def catch_up_build(data: Path, kpi_files: list[Path]) -> tuple[float, int]:
    """A warehouse built on every file but the last quarter of the KPI files, which then
    arrive at once: the incremental build that takes them (seconds, events taken)."""
    database = "bench_catchup"
    held_back = kpi_files[-max(1, len(kpi_files) // 4):]
    fresh_database(database)
    files, _ = discover([data])
    with connect(database) as conn:
        loader = Loader(conn, progress=False)
        for path in files:
            if path not in held_back:
                loader.load_file(path)
    build(database)
    with connect(database) as conn:
        loader = Loader(conn, progress=False)
        events = sum(loader.load_file(path).rows_loaded for path in held_back)
    seconds = build(database)
    drop_database(database)
    return seconds, events


def incremental_build(data_dir: Path, scale: float, number: int) -> float:
    """Load increment `number` (about 1% of the data set: new orgs with their users,
    sessions, attempts and events) and time the incremental build that follows."""
    extra = data_dir / f"increment-of-scale{scale:g}" / f"{number + 1}"
    if not (extra / "manifest.json").exists():
        extra.mkdir(parents=True, exist_ok=True)
        generate(
            extra,
            scale=scale / 100,
            seed=2 + number,
            formats="csv",
            bad_rows=False,
            redeliveries=False,
        )
    with connect("bench_warehouse") as conn:
        loader = Loader(conn, progress=False)
        for path in discover([extra])[0]:
            loader.load_file(path)
    # lookback 0: the steady state, where earlier loads are older than the lookback window
    return build("bench_warehouse")


def other_server(bin_dir: Path, data: Path, kpi_files: list[Path]) -> dict[str, float | int]:
    """Plain text COPY and the loader on a throwaway server of another major version (its
    own loader path: before 17, text COPY and one set-based typing query)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("PG")}
    with temporary_server(bin_dir) as env:
        os.environ.update(env)
        try:
            with admin() as conn:
                major = conn.info.server_version // 10_000
            text_s, rows = plain_copy(kpi_files, typed=False)
            load_s, loaded, quarantined = warehouse_load(data, kpi_files, "bench_other_server")
            drop_database("bench_other_server")
        finally:
            for key in [key for key in os.environ if key.startswith("PG")]:
                del os.environ[key]
            os.environ.update(saved)
    print(
        f"PostgreSQL {major}: plain COPY, text columns {text_s:.1f} s; warehouse loader"
        f" {loaded:,} loaded + {quarantined:,} quarantined in {load_s:.1f} s"
        f" = {text_s / load_s:.2f}x plain text COPY on {major}"
    )
    return {
        "other_major": major, "other_rows": rows, "other_plain_text_copy_s": text_s,
        "other_loader_s": load_s,
    }


def measure_loading(
    args: argparse.Namespace, data: Path, kpi_files: list[Path]
) -> dict[str, float | int | None]:
    """Plain COPY (text, then typed), the loader, dlt and the other server, one run."""
    results: dict[str, float | int | None] = {}
    text_s, rows = plain_copy(kpi_files, typed=False)
    results.update(rows=rows, plain_text_copy_s=text_s)
    print(
        f"plain COPY, text columns: {rows:,} rows in {text_s:.1f} s = {rows / text_s:,.0f} rows/s"
    )
    typed_s, _ = plain_copy(kpi_files, typed=True)
    results["plain_typed_copy_s"] = typed_s
    print(f"plain COPY, typed columns (bad rows skipped): {typed_s:.1f} s")

    load_s, loaded, quarantined = warehouse_load(data, kpi_files, "bench_warehouse")
    results.update(loader_s=load_s, loader_loaded=loaded, loader_quarantined=quarantined)
    print(
        f"warehouse loader: {loaded:,} loaded + {quarantined:,} quarantined in {load_s:.1f} s"
        f" = {rows / load_s:,.0f} rows/s = {text_s / load_s:.2f}x plain text COPY"
    )
    if not args.skip_dlt:
        dlt_s = dlt_load(kpi_files)
        results["dlt_s"] = dlt_s
        if dlt_s is None:
            print("dlt: not installed (run bench/setup_dlt.sh)")
        else:
            print(
                f"dlt (arrow -> csv -> COPY): {dlt_s:.1f} s = {text_s / dlt_s:.2f}x plain text COPY"
            )

    if (args.other_server / "postgres").exists():
        results.update(other_server(args.other_server, data, kpi_files))

    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--increments", type=int, default=3,
                        help="incremental builds timed, each after its own +1%% of data")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument(
        "--builds-only", action="store_true",
        help="time only the builds (the files are loaded untimed); the loading figures of the"
        " last full run are kept from bench/results/load.json",
    )
    parser.add_argument(
        "--other-server", type=Path, default=Path("/usr/lib/postgresql/15/bin"),
        help="programs of another PostgreSQL (default Debian's 15): plain COPY and the loader"
        " are measured on a throwaway server of it too, when installed",
    )
    parser.add_argument("--no-readme", action="store_true",
                        help="leave README.md alone (a trial at a small --scale)")
    args = parser.parse_args()

    ensure_env()
    data = args.data / f"scale{args.scale:g}"
    if not (data / "manifest.json").exists():
        data.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        generate(data, scale=args.scale, seed=1, formats="csv")
        print(f"generated scale {args.scale:g} in {time.perf_counter() - start:.0f} s")
    kpi_files = sorted(
        path for path in data.glob("kpi_events*.csv") if "redelivery" not in path.name
    )
    size = sum(path.stat().st_size for path in kpi_files)
    print(f"{len(kpi_files)} KPI-event files, {size / 1e9:.2f} GB")

    results: dict[str, float | int | None] = {}
    if args.builds_only:
        previous = json.loads((RESULTS / "load.json").read_text())
        results.update({key: value for key, value in previous.items()
                        if not key.startswith("build_")})
        warehouse_load(data, kpi_files, "bench_warehouse")
        results["builds_timed_separately"] = 1
    else:
        results.update(measure_loading(args, data, kpi_files))

    if not args.skip_build:
        # the same vars in the full and the backfill build, so the second reuses dbt's
        # partial parse as a cron run with unchanged settings does
        full_s = build("bench_warehouse", "--full-refresh")
        # the backfill: the next build after loading everything at once, every load inside
        # the default lookback_days window; on the first days of a deployment this is what
        # each scheduled run does (the loads it has taken are not read again)
        backfill_s = build("bench_warehouse")
        results["build_backfill_s"] = backfill_s
        print(
            f"dbt build: backfill (first incremental build after loading the whole scale at"
            f" once, default lookback) {backfill_s:.1f} s = {backfill_s / full_s:.2f}x full"
            + ("" if backfill_s <= full_s else ": SLOWER THAN THE FULL BUILD")
        )
        catch_up_s, catch_up_events = catch_up_build(data, kpi_files)
        results.update(build_catch_up_s=catch_up_s, catch_up_events=catch_up_events)
        print(
            f"dbt build: catch-up (incremental build taking {catch_up_events:,} new KPI events"
            f" at once) {catch_up_s:.1f} s = {catch_up_s / full_s:.2f}x full"
        )
        # three successive +1% increments, each loaded and built on a settled server: the
        # median is the figure (one incremental build varies by a tenth from run to run)
        incremental_runs = [
            incremental_build(args.data, args.scale, number) for number in range(args.increments)
        ]
        incremental_s = statistics.median(incremental_runs)
        results.update(
            build_full_s=full_s,
            build_incremental_s=incremental_s,
            build_incremental_runs_s=incremental_runs,
            dbt_threads=int(os.environ.get("WAREHOUSE_DBT_THREADS", os.cpu_count() or 2)),
        )
        print(
            f"dbt build: full {full_s:.1f} s, incremental after +1% data {incremental_s:.1f} s"
            f" ({100 * incremental_s / full_s:.1f}% of full; median of "
            + ", ".join(f"{run:.1f}" for run in incremental_runs) + " s)"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(results, indent=2))
    if not args.no_readme:
        write_readme(results)


def write_readme(results: dict) -> None:
    lines = [
        f"Measured by `bench/bench_load.py` in one run: {results['rows']:,} KPI events in CSV.",
        "",
        "| path | seconds | rows/s | vs plain text COPY |",
        "|---|---|---|---|",
    ]
    rows = results["rows"]
    for label, key in (
        ("plain COPY into unlogged text columns (yardstick)", "plain_text_copy_s"),
        ("plain COPY into typed columns (on_error ignore, no rules)", "plain_typed_copy_s"),
        ("warehouse loader (typing, rules, quarantine, ledger)", "loader_s"),
        ("dlt 1.31 (Arrow tables, csv loader format)", "dlt_s"),
    ):
        seconds = results.get(key)
        if seconds is None or seconds != seconds:
            continue
        lines.append(
            f"| {label} | {seconds:.1f} | {rows / seconds:,.0f} | "
            f"{results['plain_text_copy_s'] / seconds:.2f}x |"
        )
    if "other_loader_s" in results:
        major = results["other_major"]
        lines += [
            "",
            f"On PostgreSQL {major} (Debian's package, a throwaway server with the same"
            " settings, same run and files): plain COPY into text columns"
            f" {results['other_plain_text_copy_s']:.1f} s, warehouse loader"
            f" {results['other_loader_s']:.1f} s ="
            f" {results['other_plain_text_copy_s'] / results['other_loader_s']:.2f}x plain"
            f" text COPY on {major} (no `COPY ... on_error` before 17: pyarrow screens each piece"
            " and only the rows it cannot vouch for are tested in SQL).",
        ]
    if "build_full_s" in results:
        lines += [
            "",
            *(["The builds were timed in a separate run of the script (`--builds-only`) on the"
               " same files, each against the full build of that run.", ""]
              if results.get("builds_timed_separately") else []),
            f"dbt build at this scale: full {results['build_full_s']:.1f} s; incremental after "
            f"adding ~1% new data (default lookback_days) {results['build_incremental_s']:.1f} s "
            f"({100 * results['build_incremental_s'] / results['build_full_s']:.1f}% of full; "
            "median of three successive increments: "
            + ", ".join(f"{run:.1f}" for run in results.get("build_incremental_runs_s", []))
            + " s). "
            + (
                f"Backfill (the first incremental build after loading the whole scale at once,"
                " default lookback_days: every load inside the window, all taken already)"
                f" {results['build_backfill_s']:.1f}"
                f" s ({results['build_backfill_s'] / results['build_full_s']:.2f}x the full "
                "build). " if "build_backfill_s" in results else ""
            )
            + (
                f"Catch-up (the incremental build after {results['catch_up_events']:,} new KPI"
                " events, the last quarter of the files, arrive at once in a warehouse built"
                f" on the rest) {results['build_catch_up_s']:.1f} s"
                f" ({results['build_catch_up_s'] / results['build_full_s']:.2f}x the full"
                " build). " if "build_catch_up_s" in results else ""
            )
            + "Each build is timed on a settled server (VACUUM ANALYZE and CHECKPOINT first, "
            "as autovacuum leaves it between scheduled runs), "
            f"{results.get('dbt_threads', 2)} dbt threads.",
        ]
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = "<!-- bench:load -->\n" + "\n".join(lines) + "\n<!-- /bench:load -->"
    text = re.sub(r"<!-- bench:load -->.*<!-- /bench:load -->", block, text, flags=re.DOTALL)
    readme.write_text(text)


if __name__ == "__main__":
    main()
