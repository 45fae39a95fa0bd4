"""Single-node vs Citus benchmark (not part of the test suite): the same generated files
loaded and built on the single-node server (the embedded one, or PG*) and on a Citus
cluster's coordinator, in one run.

Measured on each: `warehouse load` of every file; the first `warehouse build` (the facts
distributed by org_id as they are created, on the cluster); then, three times, about 1%
new data loaded and an incremental build (default lookback_days; the median is the figure). Each
build is timed on a settled server (VACUUM ANALYZE and CHECKPOINT first, on every node).

The cluster: `--citus "host=127.0.0.1 port=9700 user=citus dbname=warehouse"` (a
coordinator with the citus extension and its workers registered, e.g. from
../shared/citus/cluster.sh); the warehouse's schemas in that database are dropped first.
On one machine the cluster cannot be faster (three servers share its cores, and every
distributed statement adds a round trip per shard): the figures show the overhead.

Last, on each side: `warehouse export user_profile_json --format ndjson`, the whole
per-user document view (on the cluster it reads the facts per user, docs/scaling.md), and
a SHA-256 of its rows (sorted, without exported_at), which must be the same on both sides.

`--exclude SELECTOR` leaves models out of every build on both sides (dbt's --exclude);
the export step is skipped when `export_user_profile_json` is left out. Each side's
figures are written to bench/results/citus-scale<N>.json as soon as they are measured.

Usage: .venv/bin/python bench/bench_citus.py --citus CONNINFO [--scale 100] [--data DIR]
       [--exclude SELECTOR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warehouse.db import conninfo_env, ensure_env  # noqa: E402
from warehouse.generate import generate  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SCHEMAS = ("raw", "raw_landing", "staging", "snapshots", "intermediate", "marts", "exports", "ops")
SINGLE_DATABASE = "bench_citus_single"


def _connect(env: dict[str, str], **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=env["PGHOST"], port=env.get("PGPORT"), user=env.get("PGUSER"),
        dbname=env["PGDATABASE"], **kwargs,
    )


def _warehouse(env: dict[str, str], *args: str) -> float:
    target = ROOT / "target" / f"bench-{env['PGDATABASE']}-{env.get('PGPORT')}"
    full = {**os.environ, **env, "DBT_TARGET_PATH": str(target)}
    start = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("warehouse")), *args],
        check=True, env=full, cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _settle(env: dict[str, str], citus: bool) -> None:
    with _connect(env, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")  # Citus propagates it to the shards
        conn.execute("checkpoint")
        if citus:
            conn.execute("select run_command_on_workers('checkpoint')")


EXCLUDE: list[str] = []


def _build(env: dict[str, str], citus: bool, *args: str) -> float:
    _settle(env, citus)
    # with a selection of its own, `warehouse build` drops its default exclusions
    # (warehouse/dbt_runner.py): they are repeated here, so the same nodes run
    excluded = (["--exclude", "tag:full_scan", *EXCLUDE, "--exclude-resource-type", "unit_test"]
                if EXCLUDE else [])
    return _warehouse(env, "build", *excluded, *args)


def _increment(data: Path, scale: float, number: int) -> Path:
    extra = data.parent / f"increment-of-scale{scale:g}" / f"{number + 1}"
    if not (extra / "manifest.json").exists():
        extra.mkdir(parents=True, exist_ok=True)
        generate(extra, scale=scale / 100, seed=2 + number, formats="csv", bad_rows=False,
                 redeliveries=False)
    return extra


def measure(env: dict[str, str], citus: bool, data: Path, scale: float,
            increments: int) -> dict[str, object]:
    figures: dict[str, object] = {}
    if citus:
        with _connect(env, autocommit=True) as conn:
            for schema in SCHEMAS:
                conn.execute(f"drop schema if exists {schema} cascade")
        _warehouse(env, "db", "distribute")
    figures["load_s"] = _warehouse(env, "load", str(data))
    figures["build_first_s"] = _build(env, citus)
    runs = []
    for number in range(increments):
        _warehouse(env, "load", str(_increment(data, scale, number)))
        runs.append(_build(env, citus))
    figures["build_incremental_runs_s"] = runs
    figures["build_incremental_s"] = statistics.median(runs)
    with _connect(env) as conn:
        found = conn.execute("select count(*) from marts.fact_kpi_events").fetchone()
        figures["kpi_events"] = found[0] if found else 0
    if "export_user_profile_json" not in EXCLUDE:
        document = data.parent / f"user_profile_json-{'citus' if citus else 'single'}.ndjson"
        figures["export_user_profile_json_s"] = _warehouse(
            env, "export", "user_profile_json", "--format", "ndjson", "--out", str(document))
        figures["export_user_profile_json_sha256"] = _sha256(document)
        document.unlink()
    return figures


def _sha256(path: Path) -> str:
    """Of the export's rows in user order, each without its exported_at (when it was read)."""
    read_at = re.compile(rb'"exported_at": ?"[^"]*", ?')
    rows = sorted(read_at.sub(b"", line) for line in path.read_bytes().splitlines())
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row + b"\n")
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citus", required=True, help="conninfo of the Citus coordinator")
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--increments", type=int, default=3)
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="dbt selectors left out of every build, on both sides")
    args = parser.parse_args()
    EXCLUDE.extend(args.exclude)

    single_env = {key: value for key, value in ensure_env().items() if key.startswith("PG")}
    with psycopg.connect(host=single_env["PGHOST"], port=single_env.get("PGPORT"),
                         user=single_env.get("PGUSER"), dbname="postgres",
                         autocommit=True) as admin:
        admin.execute(f"drop database if exists {SINGLE_DATABASE} with (force)")
        admin.execute(f"create database {SINGLE_DATABASE}")
    single_env["PGDATABASE"] = SINGLE_DATABASE
    citus_env = conninfo_env(args.citus)

    data = args.data / f"scale{args.scale:g}"
    if not (data / "manifest.json").exists():
        data.mkdir(parents=True, exist_ok=True)
        generate(data, scale=args.scale, seed=1, formats="csv")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"citus-scale{args.scale:g}.json"
    results: dict[str, object] = {"scale": args.scale, "excluded": EXCLUDE}
    for side, env, citus in (("single_node", single_env, False), ("citus", citus_env, True)):
        results[side] = measure(env, citus, data, args.scale, args.increments)
        out.write_text(json.dumps(results, indent=2))
    single, cluster = results["single_node"], results["citus"]
    assert isinstance(single, dict) and isinstance(cluster, dict)
    print(f"scale {args.scale:g}: {single['kpi_events']:,} KPI events in the fact"
          + (f" (left out of every build: {', '.join(EXCLUDE)})" if EXCLUDE else ""))
    print("| step | single node (s) | Citus, coordinator + 2 workers (s) | ratio |")
    print("|---|---|---|---|")
    for key, label in (("load_s", "warehouse load (every file)"),
                       ("build_first_s", "first build"),
                       ("build_incremental_s", "incremental build after +1% (median)"),
                       ("export_user_profile_json_s", "export user_profile_json (ndjson)")):
        if key not in single:
            continue
        ratio = cluster[key] / single[key]
        print(f"| {label} | {single[key]:.1f} | {cluster[key]:.1f} | {ratio:.2f}x |")
    print("incremental runs (s): single node", single["build_incremental_runs_s"],
          "cluster", cluster["build_incremental_runs_s"])
    if "export_user_profile_json_sha256" in single:
        digest = single["export_user_profile_json_sha256"]
        same = digest == cluster["export_user_profile_json_sha256"]
        print("user_profile_json export, SHA-256 of its rows:", digest,
              "the same on both sides" if same else "DIFFERENT on the cluster: "
              + str(cluster["export_user_profile_json_sha256"]))


if __name__ == "__main__":
    main()
