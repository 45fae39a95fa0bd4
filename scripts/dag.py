"""Draw the warehouse's DAG from dbt's manifest as Mermaid, into docs/architecture.md.

Usage: .venv/bin/warehouse dbt parse && .venv/bin/python scripts/dag.py
(reads target/manifest.json; rewrites the blocks between the `<!-- dag:... -->` markers).
Two pictures: the layers (one box per folder, an arrow where a model of one reads a model
or source of the other) and the incremental batch (which raw streams feed each batch model
and which marts filter on it).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "training_warehouse"


def box_of(node: dict) -> str:
    """The folder a node is drawn in: its path without the file name; sources by schema."""
    if node["resource_type"] == "source":
        return f"source {node['source_name']}"
    if node["resource_type"] == "seed":
        return "seeds"
    if node["resource_type"] == "snapshot":
        return "snapshots"
    return str(Path(node["original_file_path"]).parent)


def identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def layers(manifest: dict) -> str:
    nodes = {**manifest["nodes"], **manifest["sources"]}
    counts: dict[str, int] = defaultdict(int)
    edges: set[tuple[str, str]] = set()
    for node in nodes.values():
        if node["resource_type"] not in ("model", "seed", "snapshot", "source"):
            continue
        box = box_of(node)
        counts[box] += 1
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent in nodes and nodes[parent]["resource_type"] != "test":
                parent_box = box_of(nodes[parent])
                if parent_box != box:
                    edges.add((parent_box, box))
    lines = ["flowchart LR"]
    for box in sorted(counts):
        lines.append(f'    {identifier(box)}["{box} ({counts[box]})"]')
    for parent_box, box in sorted(edges):
        lines.append(f"    {identifier(parent_box)} --> {identifier(box)}")
    return "\n".join(lines)


def batch(manifest: dict) -> str:
    nodes = {**manifest["nodes"], **manifest["sources"]}
    prefix = f"model.{PROJECT}.int_batch_"
    lines = ["flowchart LR"]
    users: dict[str, list[str]] = defaultdict(list)
    for node_id, node in sorted(nodes.items()):
        parents = node.get("depends_on", {}).get("nodes", [])
        if node_id.startswith(prefix):
            for parent in parents:
                if parent in nodes:
                    parent_node = nodes[parent]
                    name = (
                        f"{parent_node['source_name']}.{parent_node['name']}"
                        if parent_node["resource_type"] == "source"
                        else parent_node["name"]
                    )
                    lines.append(f"    {identifier(name)}[{name}] --> {node['name']}")
        elif node["resource_type"] == "model":
            for parent in parents:
                if parent.startswith(prefix) and not parent.endswith(("_window", "_loads")):
                    users[parent.rsplit(".", 1)[-1]].append(node["name"])
    for batch_model, marts in sorted(users.items()):
        box = f"{batch_model}_readers"
        lines.append(f'    {batch_model} --> {box}["{"<br/>".join(sorted(marts))}"]')
    return "\n".join(lines)


def main() -> int:
    manifest = json.loads((ROOT / "target" / "manifest.json").read_text(encoding="utf-8"))
    document = ROOT / "docs" / "architecture.md"
    text = document.read_text(encoding="utf-8")
    for name, diagram in (("layers", layers(manifest)), ("batch", batch(manifest))):
        block = f"<!-- dag:{name} -->\n```mermaid\n{diagram}\n```\n<!-- /dag:{name} -->"
        text, found = re.subn(
            rf"<!-- dag:{name} -->.*?<!-- /dag:{name} -->", block.replace("\\", r"\\"), text,
            flags=re.S,
        )
        if not found:
            print(f"docs/architecture.md has no <!-- dag:{name} --> block", file=sys.stderr)
            return 1
    document.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
