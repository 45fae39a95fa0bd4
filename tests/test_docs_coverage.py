"""Every model and column carries a description (dbt-coverage at 100%), and the
descriptions reach PostgreSQL as comments so Metabase shows them, without hard line breaks.
Every macro is described in YAML with its arguments; every model has an owner (its group)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Database

PROJECT = "training_warehouse"


@pytest.fixture(scope="module")
def manifest(server_env: dict[str, str], tmp_path_factory) -> dict:
    """dbt's manifest of the project as `dbt parse` writes it (no warehouse needed)."""
    target = tmp_path_factory.mktemp("docs_target")
    Database({**server_env, "PGDATABASE": "postgres"}).warehouse(
        "dbt", "parse", "--target-path", str(target)
    )
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def test_docs_coverage_is_complete(built_warehouse: Database, tmp_path: Path) -> None:
    built_warehouse.dbt("docs", "generate")
    artifacts = ROOT / "target" / f"test-{built_warehouse.name}"
    report = tmp_path / "coverage.json"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt-coverage")), "compute", "doc",
            "--project-dir", str(ROOT), "--run-artifacts-dir", str(artifacts),
            "--cov-report", str(report), "--cov-fail-under", "1.0",
        ],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_public_table_and_column_has_a_comment(built_warehouse: Database) -> None:
    tables = built_warehouse.query(
        """
        select n.nspname || '.' || c.relname
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname in ('marts', 'exports') and c.relkind in ('r', 'v', 'm', 'p')
          and obj_description(c.oid, 'pg_class') is null
        """
    )
    columns = built_warehouse.query(
        """
        select n.nspname || '.' || c.relname || '.' || a.attname
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname in ('marts', 'exports') and c.relkind in ('r', 'v', 'm', 'p')
          and col_description(c.oid, a.attnum) is null
        """
    )
    assert tables == []
    assert columns == []


# A newline that is not part of a paragraph break ("\n\n"), or surrounding whitespace: BI
# tools show comments as they are, so a description must not break lines mid-sentence.
HARD_BREAK = re.compile(r"(?<!\n)\n(?!\n)|^\s|\s$")


def test_descriptions_have_no_hard_line_breaks(manifest: dict) -> None:
    broken = []
    for node_id, node in [*manifest["nodes"].items(), *manifest["sources"].items()]:
        if node["resource_type"] not in ("model", "seed", "snapshot", "source"):
            continue
        if HARD_BREAK.search(node["description"]):
            broken.append(node_id)
        broken += [
            f"{node_id}.{name}" for name, column in node["columns"].items()
            if HARD_BREAK.search(column["description"])
        ]
    assert broken == []


def test_comments_in_the_database_have_no_hard_line_breaks(built_warehouse: Database) -> None:
    comments = built_warehouse.query(
        """
        with relations as (
            select c.oid, n.nspname || '.' || c.relname as name
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname in ('staging', 'intermediate', 'marts', 'exports', 'snapshots')
              and c.relkind in ('r', 'v', 'm', 'p')
        )
        select name, obj_description(oid, 'pg_class') from relations
        union all
        select relations.name || '.' || a.attname, col_description(relations.oid, a.attnum)
        from relations
        join pg_attribute as a on a.attrelid = relations.oid and a.attnum > 0 and not a.attisdropped
        """
    )
    assert len(comments) > 500
    assert [name for name, comment in comments if comment and HARD_BREAK.search(comment)] == []


# Argument types as dbt's macro validation (flag validate_macro_args) accepts them.
SIMPLE_TYPES = {"str", "string", "bool", "int", "integer", "float", "any", "relation", "column"}
GENERIC_TYPES = {"list": 1, "optional": 1, "dict": 2}


def _valid_type(text: str) -> bool:
    """`string`, `list[string]`, `dict[string, any]`, `optional[relation]`, ..."""

    def parse(rest: str) -> str | None:  # what follows one type, None when there is none
        name = re.match(r"[a-z]+", rest)
        if name is None:
            return None
        rest = rest[name.end():]
        if name.group() in SIMPLE_TYPES:
            return rest
        if name.group() not in GENERIC_TYPES or not rest.startswith("["):
            return None
        rest = rest[1:]
        for index in range(GENERIC_TYPES[name.group()]):
            if index and not rest.startswith(","):
                return None
            after = parse(rest[1:] if index else rest)
            if after is None:
                return None
            rest = after
        return rest[1:] if rest.startswith("]") else None

    return parse(text.replace(" ", "")) == ""


SIGNATURE = re.compile(r"{%-?\s*(macro|test)\s+(\w+)\s*\((.*?)\)\s*-?%}", re.S)


def _signature(macro: dict) -> list[str]:
    """The argument names of a macro as its Jinja definition declares them."""
    for kind, name, arguments in SIGNATURE.findall(macro["macro_sql"]):
        if (f"test_{name}" if kind == "test" else name) == macro["name"]:
            definition = ast.parse(f"def signature({arguments}): pass").body[0]
            return [argument.arg for argument in definition.args.args]
    raise AssertionError(f"no definition of {macro['name']} in {macro['original_file_path']}")


def test_every_macro_is_described_with_its_arguments(manifest: dict) -> None:
    macros = [
        macro for macro in manifest["macros"].values() if macro["package_name"] == PROJECT
    ]
    assert len(macros) > 40
    problems = []
    for macro in macros:
        name = f"{macro['name']} ({macro['original_file_path']})"
        if not macro["patch_path"] or not macro["description"].strip():
            problems.append(f"{name}: no description in a YAML file")
            continue
        described = [argument["name"] for argument in macro["arguments"]]
        if described != _signature(macro):
            problems.append(f"{name}: arguments {described} != {_signature(macro)}")
        for argument in macro["arguments"]:
            if not (argument.get("description") or "").strip():
                problems.append(f"{name}: argument {argument['name']} has no description")
            if not _valid_type(argument.get("type") or ""):
                problems.append(f"{name}: {argument['name']} has type {argument.get('type')!r}")
    assert problems == []


def test_every_model_has_an_owner(manifest: dict) -> None:
    groups = manifest["groups"]
    models = [
        node for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == PROJECT
    ]
    assert models
    for group in groups.values():
        assert group["owner"].get("email") and group["owner"].get("name"), group["name"]
        assert group["description"], group["name"]
    unowned = [
        node["name"] for node in models
        if f"group.{PROJECT}.{node['group']}" not in groups
        or not node["config"]["meta"].get("owner")
        # a private model could not be ref()'d from another group: none is private
        or node["access"] == "private"
    ]
    assert unowned == []


def test_voice_metric_columns_are_built_after_the_seed(manifest: dict) -> None:
    """A column of type marts.voice_metric needs the domain that seed metric_definitions'
    post-hook writes: each such model has the seed upstream, so a build creates the domain
    first."""
    seed = f"seed.{PROJECT}.metric_definitions"

    def upstream(node_id: str, seen: set[str]) -> set[str]:
        for parent in manifest["nodes"].get(node_id, {}).get("depends_on", {}).get("nodes", []):
            if parent not in seen:
                seen.add(parent)
                upstream(parent, seen)
        return seen

    typed = [
        node_id for node_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and any(
            column.get("data_type") == "marts.voice_metric" for column in node["columns"].values()
        )
    ]
    assert len(typed) >= 5
    assert [node_id for node_id in typed if seed not in upstream(node_id, set())] == []
    assert "sync_voice_metric_domain" in str(manifest["nodes"][seed]["config"]["post-hook"])
