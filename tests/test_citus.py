"""Citus scale-out: the same files built single-node and on a real Citus cluster give the
same rows in every mart and export view (docs/scaling.md).

Runs only when a cluster is given, and is skipped with the reason otherwise (CI has no
Citus):
- WAREHOUSE_TEST_CITUS: connection settings of a running coordinator whose database has
  the citus extension and its workers registered, as `host=... port=... user=...
  dbname=...`. The warehouse's schemas in that database are dropped first.
- CITUS_PG: a PostgreSQL installation with Citus installed; `../shared/citus/cluster.sh`
  starts a coordinator and two workers from it in a temporary folder (ports from
  CITUS_TEST_PORT, default 9720) and stops them afterwards.

The scenario, run on both: the first batch of files loaded and built (as_of a week early);
`warehouse run` on an inbox holding the second batch (new files, re-deliveries, records
that move: load, incremental build, checks); `--full-refresh` with another as_of; an
incremental build with yet another as_of. After each step every table of `marts` and
every view of `exports` must hold the same rows on both. On the cluster: which tables are
distributed and which are reference tables, that the coordinator kept no copy of their
rows, and that no statement of the incremental build reads a whole distributed fact.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AS_OF, ROOT, Database
from test_full_refresh import make_batches

from warehouse.db import conninfo_env

CLUSTER_SCRIPT = ROOT.parent / "shared" / "citus" / "cluster.sh"
WAREHOUSE_SCHEMAS = (
    "raw", "raw_landing", "staging", "snapshots", "intermediate", "marts", "exports", "ops",
)
FACTS = (
    "marts.fact_scenario_attempts", "marts.fact_sessions", "marts.fact_session_metrics",
    "marts.fact_kpi_events",
)
REFERENCE = ("marts.dim_orgs", "marts.dim_users", "marts.dim_scenarios", "marts.dim_time")

pytestmark = pytest.mark.skipif(
    not (os.environ.get("WAREHOUSE_TEST_CITUS") or os.environ.get("CITUS_PG")),
    reason="no Citus cluster given: set WAREHOUSE_TEST_CITUS (connection settings of a "
    "coordinator) or CITUS_PG (a PostgreSQL with Citus installed, for cluster.sh)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Database]:
    """The coordinator's database, emptied of the warehouse's schemas."""
    started = None
    if os.environ.get("WAREHOUSE_TEST_CITUS"):
        env = conninfo_env(os.environ["WAREHOUSE_TEST_CITUS"])
    else:
        folder = Path("/tmp") / f"warehouse-citus-{os.getpid()}"
        script_env = {**os.environ, "CITUS_PORT": os.environ.get("CITUS_TEST_PORT", "9720")}
        out = subprocess.run(
            [str(CLUSTER_SCRIPT), "start", str(folder)], env=script_env,
            capture_output=True, text=True, check=True,
        ).stdout
        env = {"PGSSLMODE": "disable"}
        for name, value in re.findall(r"(PG[A-Z]+)=(\S*)", out):
            env[name] = value
        started = (folder, script_env)
    database = Database(env)
    with database.connect(autocommit=True) as conn:
        workers = conn.execute("select count(*) from citus_get_active_worker_nodes()").fetchone()
        assert workers and workers[0] >= 1, "a coordinator with workers registered"
        for schema in WAREHOUSE_SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")
    yield database
    if started:
        folder, script_env = started
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(folder)], env=script_env, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, object]:
    return make_batches(tmp_path_factory)


# the single-node contents after the `warehouse run` step, for test_distribute_existing
AFTER_RUN: dict[str, tuple[int, str]] = {}


def _vars(as_of: dt.date, lookback_days: int = 0) -> str:
    return (f"{{as_of: '{as_of.isoformat()}', lookback_days: {lookback_days},"
            " batch_max_share: 1, batch_records_max_share: 1}")


def _relations(database: Database) -> list[str]:
    """Every table of marts and view of exports (the public surface)."""
    return [row[0] for row in database.query(
        "select table_schema || '.' || table_name from information_schema.tables"
        " where table_schema in ('marts', 'exports') order by 1"
    )]


# when the files were loaded or the build ran: differs between any two databases
LOAD_TIME = {"_load_id", "loaded_at", "last_loaded_at", "exported_at", "built_at",
             "dbt_invocation_id"}


def _contents(database: Database, relations: list[str]) -> dict[str, tuple[int, str]]:
    found = {}
    for relation in relations:
        schema, name = relation.split(".")
        columns = [row[0] for row in database.query(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, name),
        )]
        # a fact's created_at is its load time too
        skipped = LOAD_TIME | ({"created_at"} if "loaded_at" in columns else set())
        kept = ", ".join(f't."{column}"' for column in columns if column not in skipped)
        # row(...), not t: Citus ships a whole-row reference of a view to the workers,
        # where the view's row type does not exist
        found[relation] = database.query(
            f"select count(*), md5(coalesce(string_agg(row({kept})::text, e'\\n'"
            f" order by row({kept})::text), '')) from {relation} as t"
        )[0]
    return found


def _same(single: Database, citus: Database, step: str) -> int:
    relations = _relations(single)
    assert relations == _relations(citus), f"{step}: not the same relations"
    left, right = _contents(single, relations), _contents(citus, relations)
    different = {
        relation: (left[relation][0], right[relation][0])
        for relation in relations if left[relation] != right[relation]
    }
    assert not different, f"{step}: rows differ (single-node, cluster counts): {different}"
    empty = [relation for relation in relations if left[relation][0] == 0]
    print(f"{step}: {len(relations)} relations identical on both"
          f" ({sum(count for count, _ in left.values())} rows; empty: {empty or 'none'})")
    return len(relations)


def test_cluster_equals_single_node(fresh_database: Database, cluster: Database,
                                    batches, tmp_path) -> None:
    single, citus = fresh_database, cluster
    citus.warehouse("db", "distribute")
    for database in (single, citus):
        database.warehouse("load", str(batches["first"]))
        database.warehouse("build", "--vars", _vars(AS_OF - dt.timedelta(days=7)))
    _same(single, citus, "first build")

    # the scheduled job: load the inbox (new files, re-deliveries, records that move),
    # build incrementally, check
    for database in (single, citus):
        inbox = tmp_path / f"inbox-{database.name}"
        shutil.copytree(batches["second"], inbox)
        database.warehouse("run", "--inbox", str(inbox), "--vars", _vars(AS_OF))
        assert not list(inbox.glob("*.csv")), "every inbox file processed"
    _same(single, citus, "warehouse run (load, incremental build, check)")
    AFTER_RUN.update(_contents(single, _relations(single)))

    for database in (single, citus):
        database.warehouse(
            "build", "--full-refresh", "--vars", _vars(AS_OF + dt.timedelta(days=1))
        )
    _same(single, citus, "--full-refresh with another as_of")

    for database in (single, citus):
        database.warehouse("build", "--vars", _vars(AS_OF + dt.timedelta(days=2)))
    _same(single, citus, "incremental build, as_of changed")

    # a small increment (about 1%: new orgs with their users, sessions, attempts and
    # events) and an incremental build with the same as_of: the build
    # test_incremental_build_reads_no_whole_fact explains
    from warehouse.generate import generate

    increment = tmp_path / "increment"
    generate(increment, scale=0.003, seed=5, formats="csv", bad_rows=False,
             redeliveries=False, as_of=AS_OF)
    for database in (single, citus):
        database.warehouse("load", str(increment))
        # the cluster's build logs every statement, hooks included (dbt's target/run/ holds
        # each model's main statement only), into a folder of its own (dbt rotates a log
        # at 10 MB): test_incremental_build_reads_no_whole_fact explains them
        LAST_BUILD_LOG[database.name] = tmp_path / f"last-build-log-{database.name}"
        database.warehouse("build", "--vars", _vars(AS_OF + dt.timedelta(days=2)),
                           extra_env={"DBT_LOG_LEVEL_FILE": "debug",
                                      "DBT_LOG_PATH": str(LAST_BUILD_LOG[database.name])})
    _same(single, citus, "incremental build after +1% new data")

    csv.field_size_limit(sys.maxsize)
    for view in ("attempts", "sessions", "kpi_events", "user_summary", "user_profile_json",
                 "export_metadata"):
        exported = {}
        for database in (single, citus):
            out = tmp_path / f"{view}-{database.name}.csv"
            database.warehouse("export", view, "--format", "csv", "--out", str(out))
            with open(out, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            skipped = LOAD_TIME | ({"created_at"} if rows and "loaded_at" in rows[0] else set())
            exported[database.name] = sorted(
                tuple(value for key, value in row.items() if key not in skipped) for row in rows
            )
        first, second = exported.values()
        assert first == second, f"warehouse export {view}: files differ"
        assert first or view == "export_metadata", f"warehouse export {view}: no rows"
    print("warehouse export: the six views' CSV files identical")
    # the cluster's user_profile_json read the facts through its per-user functions (a
    # set-based read gathers every user's rows on the coordinator: docs/scaling.md)
    definition = "select pg_get_viewdef('exports.user_profile_json'::regclass)"
    assert "user_profile_people()" in citus.query(definition)[0][0]
    assert "user_profile_people()" not in single.query(definition)[0][0]


def test_distribution(cluster: Database) -> None:
    """Runs after the scenario above (same module): the layout the build left."""
    found = dict(cluster.query(
        "select logicalrelid::regclass::text, case when partmethod = 'n' then 'reference'"
        " else column_to_column_name(logicalrelid, partkey) end from pg_dist_partition"
    ))
    assert found, "run test_cluster_equals_single_node first (same module)"
    assert {fact: found.get(fact) for fact in FACTS} == dict.fromkeys(FACTS, "org_id")
    assert {dim: found.get(dim) for dim in REFERENCE} == dict.fromkeys(REFERENCE, "reference")
    # ops.bi_roles: a reference table, read by the row-level security policies on the workers
    assert found.get("ops.bi_roles") == "reference"
    others = set(found) - set(FACTS) - set(REFERENCE) - {"ops.bi_roles"}
    assert not others, f"only the facts and dimensions are Citus tables: {others}"
    groups = {row[0] for row in cluster.query(
        "select colocationid from pg_dist_partition where partmethod = 'h'"
    )}
    assert len(groups) == 1, "the facts are co-located (joins on org_id stay on one shard)"
    # the database says it is distributed: every table it made a Citus table is recorded
    recorded = dict(cluster.query("select relation, distribution from ops.citus_distribution"))
    assert recorded == {relation: found[relation] for relation in (*FACTS, *REFERENCE)}
    # truncate_local_data_after_distributing_table: the coordinator kept no copy
    for relation in (*FACTS, *REFERENCE):
        assert cluster.query(f"select pg_relation_size('{relation}')")[0][0] == 0, relation
    # primary keys hold the distribution column; foreign keys between facts match them
    keys = dict(cluster.query(
        "select conrelid::regclass::text, pg_get_constraintdef(oid) from pg_constraint"
        " where contype = 'p' and conrelid::regclass::text = any(%s)", (list(FACTS),),
    ))
    assert all(definition.startswith("PRIMARY KEY (org_id, ") for definition in keys.values())
    assert cluster.query(
        "select pg_get_constraintdef(oid) from pg_constraint"
        " where conname = 'fact_session_metrics_session_id_fkey'"
    ) == [("FOREIGN KEY (org_id, session_id) REFERENCES marts.fact_sessions(org_id, session_id)"
           " NOT ENFORCED",)]
    print("distributed by org_id:", ", ".join(FACTS))
    print("reference tables:", ", ".join(REFERENCE))


def test_bi_roles_read_the_shards(cluster: Database) -> None:
    """Runs after the scenario above (same module). Row-level security on the Citus
    tables (the policy without subqueries, tested on the workers, where ops.role_org reads
    the plain copy ops.bi_role_orgs that apply_access() writes on every node): `reporting`
    reads every row of a distributed fact and of a reference table, an organisation role
    (`warehouse access org`) only its organisation's."""
    org, org_sessions = cluster.query(
        "select org_id::text, count(*) from marts.fact_sessions group by 1 order by 2 desc limit 1"
    )[0]
    sessions = cluster.query("select count(*) from marts.fact_sessions")[0][0]
    users = cluster.query("select count(*) from marts.dim_users")[0][0]
    org_users = cluster.query(
        "select count(*) from marts.dim_users where org_id = %s", (org,)
    )[0][0]
    assert org_sessions < sessions, "the data holds more than one organisation"

    # the users' sessions, and the org's users' sessions in the org: what reporting and
    # the org's role read in the profile documents
    profile_sessions = cluster.query(
        "select count(*) from marts.fact_sessions as s join marts.dim_users as u"
        " on s.user_id = u.user_id"
    )[0][0]
    org_profile_sessions = cluster.query(
        "select count(*) from marts.fact_sessions as s join marts.dim_users as u"
        " on s.user_id = u.user_id where s.org_id = %s and u.org_id = %s", (org, org)
    )[0][0]

    def counts(reader: str) -> tuple[int, int]:
        as_reader = Database({**cluster.env, "PGUSER": reader, "PGPASSWORD": ""})
        return (as_reader.query("select count(*) from marts.fact_sessions")[0][0],
                as_reader.query("select count(*) from marts.dim_users")[0][0])

    def profiles(reader: str) -> tuple[int, int]:
        """exports.user_profile_json read per user through its functions, which run as
        the reader: its documents and the sessions in them."""
        as_reader = Database({**cluster.env, "PGUSER": reader, "PGPASSWORD": ""})
        return as_reader.query(
            "select count(*), sum(jsonb_array_length(document -> 'sessions'))::int"
            " from exports.user_profile_json"
        )[0]

    assert counts("reporting") == (sessions, users)
    assert profiles("reporting") == (users, profile_sessions)
    role = "citus_test_org_reader"
    cluster.warehouse("access", "org", org, "--role", role)
    try:
        read = counts(role)
        read_profiles = profiles(role)
        # the organisation's copy on each worker, which the shards' policies read
        copies = cluster.query(
            "select result from run_command_on_workers($$select string_agg(org_id::text, ',')"
            " from ops.bi_role_orgs where role_name = 'citus_test_org_reader'$$)"
        )
    finally:
        cluster.warehouse("access", "revoke", role)
    assert read == (org_sessions, org_users)
    assert read_profiles == (org_users, org_profile_sessions)
    assert copies == [(org,), (org,)]
    # revoked: the copies go too
    assert cluster.query(
        "select result from run_command_on_workers($$select count(*) from ops.bi_role_orgs"
        " where role_name = 'citus_test_org_reader'$$)"
    ) == [("0",), ("0",)]
    print(f"row-level security on the shards: reporting reads {sessions} sessions,"
          f" an organisation role its {org_sessions}")


# per database name: the log folder of the last build of test_cluster_equals_single_node
LAST_BUILD_LOG: dict[str, Path] = {}

# statements whose cost follows the facts' size by design, on one server as on the cluster
WHOLE_BY_DESIGN = {
    "data_completeness": "counts every fact row (count(*) on each shard, in parallel)",
}


def _rows_read(plan: str) -> dict[str, int]:
    """Rows each fact's shards produced or filtered out, summed over an EXPLAIN ANALYZE
    (citus.explain_all_tasks on: every task's remote plan is shown)."""
    read: dict[str, int] = {}
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        scan = re.search(
            r"Scan.* on (fact_[a-z_]+?)_\d+ .*actual[^)]* rows=([\d.]+) loops=(\d+)", line
        )
        # a bitmap index scan names the index; its heap scan, the table, counts the rows
        if not scan or "Bitmap Index Scan" in line:
            continue
        rows = float(scan.group(2)) * int(scan.group(3))
        for following in lines[number + 1:number + 6]:
            removed = re.search(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", following)
            if removed:
                rows += int(removed.group(1))
            if "->" in following:
                break
        read[scan.group(1)] = read.get(scan.group(1), 0) + int(rows)
    return read


def test_incremental_build_reads_no_whole_fact(cluster: Database) -> None:
    """The statements of the last incremental build (after about 1% new data) that read a
    distributed fact, run again under EXPLAIN ANALYZE on the cluster: the rows each reads
    from a fact's shards (returned, or filtered out) must be a small part of that fact. A
    statement that needs the whole fact (a join pulling it to the coordinator, a filter on
    no key) reads all of it and fails here. Sequential scans are disabled for the
    measure (see below)."""
    target = ROOT / "target" / f"test-{cluster.name}"
    compiled = target / "compiled" / "training_warehouse" / "models"
    executed = target / "run" / "training_warehouse" / "models"
    statements = {}
    for path in sorted(compiled.rglob("*.sql")):
        ran = executed / path.relative_to(compiled)
        # the models the build wrote rows of (views run nothing; tests are not models)
        if not ran.exists() or "insert into" not in ran.read_text(encoding="utf-8"):
            continue
        sql = path.read_text(encoding="utf-8")
        if re.search(r'"marts"\."fact_|"intermediate"\."int_star_', sql):
            statements[path.stem] = sql
    # the pre-hook of fact_kpi_events reads the fact's rows the batch needs into temporary
    # tables (star_kpi_events_batch_fact_rows): its queries, from the build's log
    # dbt.log, after dbt.log.1 and older when the build's own log was rotated
    logs = sorted(LAST_BUILD_LOG[cluster.name].glob("dbt.log*"),
                  key=lambda log: -int(log.suffix[1:]) if log.suffix[1:].isdigit() else 0)
    logged = "".join(log.read_text(encoding="utf-8") for log in logs)
    assert logged, f"no dbt log in {LAST_BUILD_LOG[cluster.name]}"
    for table, query in re.findall(
        r"create temporary table (fact_kpi_events_\w+) on commit drop as\s+(select\s.*?);", logged,
        flags=re.DOTALL,
    ):
        statements[f"fact_kpi_events pre-hook ({table})"] = query
    # and the facts' retraction pre-hooks (star_retract_redelivered), run here under
    # EXPLAIN ANALYZE in a transaction rolled back
    for model, delete in re.findall(
        r"On model\.\w+\.(fact_\w+): /\*[^\n]*\*/\s*(with redelivered as materialized .*?)"
        r"\n\d\d:\d\d:\d\d\.\d+ \[", logged, flags=re.DOTALL,
    ):
        statements[f"{model} pre-hook (retraction)"] = delete
    assert {"fact_kpi_events pre-hook (fact_kpi_events_held)",
            "fact_kpi_events pre-hook (fact_kpi_events_of_changed_attempts)",
            "fact_scenario_attempts pre-hook (retraction)", "fact_sessions pre-hook (retraction)",
            "fact_session_metrics pre-hook (retraction)",
            "int_quality_expected_events_by_load"} <= set(statements), sorted(statements)
    sizes = {fact.split(".")[1]: cluster.query(f"select count(*) from {fact}")[0][0]
             for fact in FACTS}
    too_much = {}
    report = []
    with cluster.connect() as conn:
        conn.execute("set citus.explain_all_tasks = on")
        # at test scale a shard holds a few hundred rows and the planner rightly prefers a
        # sequential scan to an index: disabled here (on the workers too), so what is
        # measured is what the statement's access path needs, not the planner's choice
        conn.execute("set citus.propagate_set_commands = 'local'")
        for name, sql in statements.items():
            with conn.transaction(force_rollback=True):
                conn.execute("set local enable_seqscan = off")
                plan = "\n".join(row[0] for row in conn.execute(
                    f"explain (analyze, timing off, summary off) {sql}"
                ).fetchall())
            read = _rows_read(plan)
            report.append(f"  {name}: " + (", ".join(
                f"{fact} {rows:,} of {sizes[fact]:,}" for fact, rows in sorted(read.items())
            ) or "no fact rows"))
            if name in WHOLE_BY_DESIGN:
                continue
            over = {fact: rows for fact, rows in read.items() if rows > 0.2 * sizes[fact]}
            if over:
                too_much[name] = over
    print("rows read from the facts' shards by the incremental build's statements:")
    print("\n".join(report))
    print("read whole by design:", WHOLE_BY_DESIGN)
    assert not too_much, f"statements reading most of a fact: {too_much} (fact sizes {sizes})"


def test_distribute_existing_warehouse(cluster: Database, batches, tmp_path) -> None:
    """A warehouse built single-node on the coordinator, then `warehouse db distribute`:
    its facts and dimensions move to the workers with their rows, and the next `warehouse
    run` gives the single-node figures of the first test."""
    assert AFTER_RUN, "run test_cluster_equals_single_node first (same module)"
    with cluster.connect(autocommit=True) as conn:
        for schema in WAREHOUSE_SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")
    cluster.warehouse("load", str(batches["first"]))
    cluster.warehouse("build", "--vars", _vars(AS_OF - dt.timedelta(days=7)))
    assert not cluster.query("select 1 from pg_dist_partition"), "not distributed yet"
    counts = {fact: cluster.query(f"select count(*) from {fact}")[0][0] for fact in FACTS}
    cluster.warehouse("db", "distribute")
    assert {fact: cluster.query(f"select count(*) from {fact}")[0][0] for fact in FACTS} == counts
    for relation in (*FACTS, *REFERENCE):
        assert cluster.query(f"select pg_relation_size('{relation}')")[0][0] == 0, relation
    inbox = tmp_path / "inbox"
    shutil.copytree(batches["second"], inbox)
    cluster.warehouse("run", "--inbox", str(inbox), "--vars", _vars(AS_OF))
    relations = _relations(cluster)
    assert relations == sorted(AFTER_RUN)
    mine = _contents(cluster, relations)
    different = [relation for relation in relations if mine[relation] != AFTER_RUN[relation]]
    assert not different, f"after distributing an existing warehouse, rows differ: {different}"
    test_distribution(cluster)
    print(f"existing warehouse distributed, then warehouse run: {len(relations)} relations"
          " identical to single-node")
