"""`warehouse build` runs dbt through warehouse.dbt_runner: the `dbt` command in a child
process that writes dbt's own artifacts (manifest.json, run_results.json), passes dbt's
exit codes on (0 success, 1 a node failed), prints no colour codes into a pipe, and ends
with the warehouse command that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import AS_OF, ROOT, Database

VARS = f"{{as_of: '{AS_OF.isoformat()}'}}"


def node_statuses(target: Path) -> dict[str, str]:
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    return {result["unique_id"]: result["status"] for result in results["results"]}


def test_build_writes_dbt_artifacts(built_warehouse: Database, tmp_path: Path) -> None:
    target = tmp_path / "target"
    result = built_warehouse.warehouse("build", "-s", "stg_orgs", "--vars", VARS,
                                       "--target-path", str(target))
    statuses = node_statuses(target)
    assert statuses["model.training_warehouse.stg_orgs"] == "success"
    tests = {node: status for node, status in statuses.items() if node.startswith("test.")}
    assert tests and set(tests.values()) == {"pass"}
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert "model.training_warehouse.stg_orgs" in manifest["nodes"]
    # dbt's own output, without ANSI colours when stdout is not a terminal
    assert "Completed successfully" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr


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


SLEEP = "select pg_sleep(300) as slept"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_dbt_ends_with_the_warehouse_command(
    built_warehouse: Database, tmp_path: Path, how: signal.Signals
) -> None:
    """dbt runs in a process group of its own: a SIGTERM to `warehouse` is forwarded to it,
    and when `warehouse` is killed outright the kernel ends dbt too."""
    env = {**os.environ, **built_warehouse.env,
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    parent = subprocess.Popen(
        [str(Path(sys.executable).with_name("warehouse")), "dbt", "show", "--inline", SLEEP],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    running = ("select pid from pg_stat_activity where query like %s"
               " and pid <> pg_backend_pid()")
    try:
        deadline = time.monotonic() + 240
        while not built_warehouse.query(running, ("%pg_sleep(300)%",)):
            assert parent.poll() is None, "warehouse dbt show ended before its query ran"
            assert time.monotonic() < deadline, "dbt never started its query"
            time.sleep(0.2)
        children = psutil.Process(parent.pid).children(recursive=True)
        assert children, "dbt runs as a child process"
        assert all(os.getpgid(child.pid) != os.getpgid(parent.pid) for child in children)
        parent.send_signal(how)
        assert parent.wait(timeout=60) == -how
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"dbt outlived the warehouse command: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
        # the server ends a dead client's pg_sleep only when it finishes
        built_warehouse.query(
            "select pg_terminate_backend(pid) from pg_stat_activity where query like %s"
            " and pid <> pg_backend_pid()", ("%pg_sleep(300)%",),
        )
