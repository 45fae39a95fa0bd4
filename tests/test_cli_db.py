"""The command line of cli.md: `warehouse db status|url|env` against the server PGHOST
names, and `warehouse load`'s one line per file (read / loaded / quarantined, already
loaded, rejected and why) with its exit code."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import psycopg
import pytest
from loader_fixtures import (
    ROOT,
    WAREHOUSE,
    count,
    database_fixtures,
    summary_line,
    uid,
    write_csv,
    write_ndjson,
    write_parquet,
)

module_database, empty_database = database_fixtures("cli")

ORG = uid(1, "1")
T = "2026-03-01T10:00:00Z"


def run(db, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([WAREHOUSE, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env if env is not None else {**os.environ, **db.env}, timeout=120)


# --------------------------------------------------------------------------- db


@pytest.fixture
def maintenance_db(server_env):
    """The server's `postgres` database: the db commands only read, no database needed."""
    from conftest import Database

    return Database({**server_env, "PGDATABASE": "postgres"})


def test_db_status_with_pghost_talks_to_that_server(maintenance_db):
    result = run(maintenance_db, "db", "status")
    assert result.returncode == 0, result.stderr
    version = maintenance_db.query("show server_version")[0][0]
    assert version in result.stdout
    assert maintenance_db.env["PGHOST"] in result.stdout
    assert "reachable" in result.stdout and "not reachable" not in result.stdout


def test_db_status_reports_an_unreachable_server(maintenance_db, tmp_path: Path):
    env = {**os.environ, **maintenance_db.env, "PGHOST": str(tmp_path), "PGCONNECT_TIMEOUT": "3"}
    result = run(maintenance_db, "db", "status", env=env)
    assert result.returncode != 0
    assert "not reachable" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_db_url_connects_to_the_same_database(maintenance_db):
    result = run(maintenance_db, "db", "url")
    assert result.returncode == 0, result.stderr
    url = result.stdout.splitlines()[0]
    quiet = run(maintenance_db, "db", "url", "--url-only")
    assert quiet.stdout == url + "\n"
    assert url.startswith(("postgresql://", "postgres://")), url
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            name = conn.execute("select current_database()").fetchone()[0]
    except psycopg.Error as error:
        pytest.fail(f"`warehouse db url` printed {url!r}, which does not connect: {error}")
    assert name == maintenance_db.name


def test_db_env_exports_the_same_settings(maintenance_db):
    result = run(maintenance_db, "db", "env")
    assert result.returncode == 0, result.stderr
    exported = {}
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        key, _, value = words[1].partition("=")
        exported[key] = value
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        assert exported.get(key) == maintenance_db.env[key], key
    # evaluated by a shell, psql-style clients reach the same database
    shell = subprocess.run(
        ["bash", "-c", f'eval "$({shlex.quote(WAREHOUSE)} db env)"; echo "$PGDATABASE"'],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **maintenance_db.env},
        timeout=60,
    )
    assert shell.stdout.strip() == maintenance_db.name


def test_db_status_of_the_embedded_server(server_env):
    from warehouse.embedded import EmbeddedServer

    server = EmbeddedServer()
    if str(server.socket_dir) != server_env["PGHOST"] or not server.status().running:
        pytest.skip("the tests do not run on the embedded server")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    result = subprocess.run([WAREHOUSE, "db", "status"], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "running" in result.stdout and str(server.socket_dir) in result.stdout
    # after `eval "$(warehouse db env)"` the db commands still know their own server
    own = subprocess.run(
        ["bash", "-c", f'eval "$({shlex.quote(WAREHOUSE)} db env)"; {shlex.quote(WAREHOUSE)}'
         " db status"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=60,
    )
    assert own.returncode == 0, own.stderr
    assert own.stdout.startswith("embedded PostgreSQL "), own.stdout
    assert f"(pid {server.status().pid})" in own.stdout


# --------------------------------------------------------------------------- load


def test_load_prints_one_line_per_file(empty_database, tmp_path: Path):
    db = empty_database
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    orgs = write_csv(inbox / "orgs_1.csv", [
        {"org_id": ORG, "name": "Acme", "updated_at": T},
        {"org_id": uid(2, "1"), "name": "Beta", "updated_at": "later"},
    ])
    users = write_ndjson(inbox / "users_1.jsonl", [
        {"user_id": f"user_{n}", "org_id": str(ORG), "role": "trainee", "updated_at": T}
        for n in range(3)
    ])
    sessions = write_parquet(inbox / "sessions_1.parquet", [
        {"session_id": uid(1, "b"), "org_id": ORG, "user_id": "user_1",
         "session_type": "roleplay", "started_at": T, "clarity": "101", "updated_at": T},
        {"session_id": uid(2, "b"), "org_id": ORG, "user_id": "user_1",
         "session_type": "roleplay", "started_at": T, "clarity": "99", "updated_at": T},
    ], "sessions", as_text=True)
    broken = write_csv(inbox / "attempts_1.csv", [{"attempt_id": uid(1, "a"), "org_id": ORG}])
    notes = inbox / "README.txt"
    notes.write_text("not data\n")

    first = run(db, "load", str(inbox))
    assert first.returncode == 1
    out = first.stdout.splitlines()
    assert f"{orgs}: orgs: 2 rows read, 1 loaded, 1 quarantined" in "\n".join(out)
    assert summary_line(users, "users", 3, 3, 0) in out
    assert f"{sessions}: sessions: 2 rows read, 1 loaded, 1 quarantined" in "\n".join(out)
    # a quarantined row's reason is shown on its file's line
    (orgs_line,) = [line for line in out if line.startswith(f"{orgs}:")]
    assert "updated_at" in orgs_line
    (rejected,) = [line for line in first.stderr.splitlines() if str(broken) in line]
    assert "REJECTED" in rejected and "user_id" in rejected
    assert any(str(notes) in line and "skipped" in line for line in out)
    for path in (orgs, users, sessions, broken, notes):
        assert sum(str(path) in line for line in out + first.stderr.splitlines()) == 1, path

    second = run(db, "load", str(inbox))
    assert second.returncode == 1  # the broken file is still rejected
    again = second.stdout.splitlines()
    for path, stream in ((orgs, "orgs"), (users, "users"), (sessions, "sessions")):
        assert f"{path}: {stream}: already loaded (same content), nothing changed" in again
    assert count(db, "raw.users") == 3


def test_load_with_a_stream_name_and_a_clean_exit(empty_database, tmp_path: Path):
    path = write_csv(tmp_path / "delivery_2026_03_01.csv", [
        {"org_id": ORG, "name": "Acme", "updated_at": T}])
    result = run(empty_database, "load", "orgs", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [summary_line(path, "orgs", 1, 1, 0)]
    assert result.stderr == ""
    assert count(empty_database, "raw.orgs") == 1


def test_load_without_paths_is_a_usage_error(empty_database):
    result = run(empty_database, "load")
    assert result.returncode == 2
    assert "Usage" in result.stderr


def test_build_leaves_audits_and_unit_tests_to_check_unless_selected() -> None:
    from warehouse.dbt_runner import build_arguments

    assert build_arguments(["--full-refresh"]) == [
        "--full-refresh", "--exclude", "tag:full_scan", "--exclude-resource-type", "unit_test",
    ]
    assert build_arguments(["--select", "marts"]) == ["--select", "marts"]
    assert build_arguments(["-s=tag:full_scan+"]) == ["-s=tag:full_scan+"]
