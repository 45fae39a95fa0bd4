"""`warehouse build` runs dbt through loaders.dbt_runner: run_results.json written from the
invocation's result, the manifest left to `dbt parse` / `docs generate` unless
DBT_WRITE_JSON asks for it, and dbt's exit codes (0 success, 1 a node failed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import AS_OF, ROOT, Database

VARS = f"{{as_of: '{AS_OF.isoformat()}'}}"


def node_statuses(target: Path) -> dict[str, str]:
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    return {result["unique_id"]: result["status"] for result in results["results"]}


def test_build_writes_run_results_not_manifest(built_warehouse: Database, tmp_path: Path) -> None:
    target = tmp_path / "target"
    built_warehouse.warehouse("build", "-s", "stg_orgs", "--vars", VARS,
                              "--target-path", str(target))
    statuses = node_statuses(target)
    assert statuses["model.training_warehouse.stg_orgs"] == "success"
    tests = {node: status for node, status in statuses.items() if node.startswith("test.")}
    assert tests and set(tests.values()) == {"pass"}
    assert not (target / "manifest.json").exists()


def test_write_json_gives_dbt_artifacts_back(built_warehouse: Database, tmp_path: Path) -> None:
    target = tmp_path / "target"
    built_warehouse.warehouse("build", "-s", "stg_orgs", "--vars", VARS, "--target-path",
                              str(target), extra_env={"DBT_WRITE_JSON": "true"})
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert "model.training_warehouse.stg_orgs" in manifest["nodes"]
    assert node_statuses(target)["model.training_warehouse.stg_orgs"] == "success"


def test_failed_node_exits_1_with_its_error_recorded(
    built_warehouse: Database, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    overview = "select count(*), max(total_attempts) from marts.mv_org_overview"
    before = built_warehouse.query(overview)
    result = built_warehouse.warehouse(
        "build", "-s", "mv_org_overview", "--vars", "{as_of: 'not-a-date'}",
        "--target-path", str(target), check=False,
    )
    assert result.returncode == 1
    assert node_statuses(target)["model.training_warehouse.mv_org_overview"] == "error"
    # the failed build left the table as it was
    after = built_warehouse.query(overview)
    assert after == before


def sessions_opened(database: Database, *args: str, extra_env: dict[str, str] | None = None
                    ) -> int:
    """Server sessions the database saw during `warehouse build args`."""
    statement = "select sessions from pg_stat_database where datname = current_database()"
    before = database.query(statement)[0][0]
    database.warehouse("build", *args, extra_env=extra_env)
    # the statistics of the build's sessions are flushed when they end, before it exits
    return database.query(statement)[0][0] - before


def test_threads_keep_their_session_between_nodes(
    built_warehouse: Database, tmp_path: Path
) -> None:
    selection = ("-s", "stg_orgs", "stg_users", "stg_scenarios", "--vars", VARS,
                 "--target-path", str(tmp_path / "target"))
    reused = sessions_opened(built_warehouse, *selection)
    statuses = node_statuses(tmp_path / "target")
    assert len(statuses) >= 8 and set(statuses.values()) <= {"success", "pass"}
    # one session per dbt thread and the one that lists the schemas, plus this test's own
    assert reused <= 5
    fresh = sessions_opened(built_warehouse, *selection,
                            extra_env={"WAREHOUSE_DBT_NEW_SESSIONS": "1"})
    assert fresh >= len(statuses)


def test_columns_in_relation_match_information_schema(built_warehouse: Database) -> None:
    """macros/columns_in_relation.sql reads pg_catalog: the same rows as dbt's
    information_schema query, for every relation of the built warehouse."""
    macro = (ROOT / "macros" / "columns_in_relation.sql").read_text(encoding="utf-8")
    body = re.search(r"\{% call statement[^%]*%\}(.*?)\{% endcall %\}", macro, re.S)
    assert body is not None
    query = body.group(1).replace("to_regclass({{ name }})", "to_regclass(%(name)s)")
    assert "{{" not in query
    relations = built_warehouse.query(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('raw', 'staging', 'intermediate', 'marts', 'exports', 'snapshots')"
    )
    assert len(relations) > 50
    with built_warehouse.connect() as conn:
        # the types the marts do not use yet: domains (over arrays too), enums, typmods
        conn.execute("create type pg_temp.mood as enum ('calm', 'tense')")
        conn.execute("create domain pg_temp.short_text as varchar(5)")
        conn.execute("create domain pg_temp.scores as numeric(5, 2)[]")
        conn.execute(
            "create temporary table column_kinds (a varchar(10), b numeric(12, 3), c pg_temp.mood,"
            " d pg_temp.short_text, e pg_temp.scores, f char(3), g timestamp(3), h interval,"
            " i bit(4), j real, k smallint, l text[])"
        )
        temp_schema = conn.execute("select pg_my_temp_schema()::regnamespace::text").fetchone()[0]
        relations = [*relations, (temp_schema, "column_kinds")]
        for schema, table in relations:
            expected = conn.execute(
                "select column_name::text, data_type::text, character_maximum_length::int,"
                " numeric_precision::int, numeric_scale::int from information_schema.columns"
                " where table_schema = %s and table_name = %s order by ordinal_position",
                (schema, table),
            ).fetchall()
            name = conn.execute("select format('%%I.%%I', %s::text, %s::text)",
                                (schema, table)).fetchone()[0]
            assert conn.execute(query, {"name": name}).fetchall() == expected, (schema, table)
        # dbt names its temporary tables without a schema: found through the search path
        assert conn.execute(query, {"name": "column_kinds"}).fetchall() == expected
        assert len(expected) == 12
