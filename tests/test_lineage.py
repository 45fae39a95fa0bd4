"""The entity-incremental marts' lineage is dbt's own: every raw stream a mart reads (found
by walking the manifest's `depends_on` upward from the mart) also feeds the batch model it
filters on, so a load of any of its inputs puts the touched entities into its batch."""

from __future__ import annotations

import json
from functools import cache

import pytest
from conftest import Database

PROJECT = "training_warehouse"
# the batch models of an entity grain (int_batch_window and int_batch_loads serve them all)
ENTITY_BATCHES = ("int_batch_users", "int_batch_orgs", "int_batch_attempts")


@pytest.fixture(scope="module")
def manifest(server_env: dict[str, str], tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("lineage_target")
    Database({**server_env, "PGDATABASE": "postgres"}).warehouse(
        "dbt", "parse", "--target-path", str(target)
    )
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def raw_inputs(manifest: dict, unique_id: str) -> frozenset[str]:
    """The raw streams (sources of `raw`) upstream of a node."""

    @cache
    def walk(node_id: str) -> frozenset[str]:
        if node_id.startswith("source."):
            source = manifest["sources"][node_id]
            return frozenset({source["name"]} if source["source_name"] == "raw" else set())
        node = manifest["nodes"].get(node_id)
        if node is None:  # seeds and macros carry no raw input
            return frozenset()
        found: set[str] = set()
        for parent in node.get("depends_on", {}).get("nodes", []):
            found |= walk(parent)
        return frozenset(found)

    return walk(unique_id)


def entity_incremental_models(manifest: dict) -> dict[str, str]:
    """model id -> the batch model it filters on, for every model with strategy replace_batch
    that reads a batch model."""
    found = {}
    for node_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model":
            continue
        if node["config"].get("incremental_strategy") != "replace_batch":
            continue
        batches = [
            parent for parent in node["depends_on"]["nodes"]
            if parent.rsplit(".", 1)[-1] in ENTITY_BATCHES
        ]
        if batches:
            assert len(batches) == 1, f"{node_id} filters on several batch models: {batches}"
            found[node_id] = batches[0]
    return found


def test_every_entity_incremental_input_reaches_its_batch(manifest: dict) -> None:
    models = entity_incremental_models(manifest)
    # the marts of the contract that recompute only touched entities
    names = {node_id.rsplit(".", 1)[-1] for node_id in models}
    assert {"user_metric_stats", "leaderboards", "kpi_attempt_summary",
            "mv_org_overview", "user_data_metadata"} <= names
    missing = {}
    for node_id, batch in models.items():
        inputs = raw_inputs(manifest, node_id) - {"load_ledger"}
        covered = raw_inputs(manifest, batch)
        if not inputs <= covered:
            missing[node_id] = sorted(inputs - covered)
    assert not missing, f"raw inputs that do not reach the model's batch: {missing}"


def test_marts_that_read_raw_data_are_batch_filtered_or_recomputed_whole(manifest: dict) -> None:
    """A mart with strategy replace_batch either filters on a batch model or replaces all its
    rows on every build: there is no third, hand-declared path."""
    batched = entity_incremental_models(manifest)
    for node_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node_id in batched:
            continue
        assert "in_batch" not in node["raw_code"], f"{node_id} filters without a batch model"


def test_the_check_sees_a_missing_input(manifest: dict) -> None:
    """The lineage walk is not vacuous: a batch of sessions alone would miss KPI events."""
    events = raw_inputs(manifest, f"model.{PROJECT}.user_feedback_summary")
    assert "kpi_events" in events
    sessions_only = raw_inputs(manifest, f"model.{PROJECT}.stg_sessions")
    assert not events <= sessions_only
