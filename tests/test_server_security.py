"""The embedded server locked down and reachable by BI tools (cli.md, Access): a server of its
own, started by `warehouse db start --listen 127.0.0.1:PORT` in a state folder of its own,
loaded and built, then read over TCP as `reporting` the way Metabase and Superset read it.

Every connection needs a password (the superuser's too, which the CLI takes from its pgpass
file); other OS users cannot reach the socket; the server runs as its own OS user and group;
no folder above the state folder changes its permissions.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, password_from
from loader_fixtures import WAREHOUSE
from psycopg import sql

AS_OF = "2026-11-20"
DENIED_SCHEMAS = ("raw", "staging", "intermediate", "snapshots", "ops")
AS_ROOT = os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _modes(paths: list[Path]) -> dict[Path, tuple[int, int, int]]:
    return {path: (path.stat().st_mode, path.stat().st_uid, path.stat().st_gid)
            for path in paths}


@dataclass
class Server:
    state: Path
    port: int
    env: dict[str, str]
    parents_before: dict[Path, tuple[int, int, int]]
    reporting_password: str = ""

    def warehouse(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([WAREHOUSE, *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=1200)
        if check and result.returncode != 0:
            raise AssertionError(f"warehouse {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def superuser(self) -> psycopg.Connection:
        password = (self.state / "secrets" / "postgres.password").read_text().strip()
        return psycopg.connect(host=str(self.state / "run"), port=self.port, user="postgres",
                               dbname="warehouse", password=password, autocommit=True)

    def reporting_tcp(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="reporting",
                               dbname="warehouse", password=self.reporting_password,
                               autocommit=True, connect_timeout=10)

    def relations(self, *schemas: str) -> list[str]:
        with self.superuser() as conn:
            return [row[0] for row in conn.execute(
                "select format('%%I.%%I', n.nspname, c.relname) from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p') order by 1",
                (list(schemas),),
            )]


def _bin_dir() -> Path:
    from warehouse.embedded import EmbeddedServer

    return EmbeddedServer().psql_path().parent


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    from warehouse.generate import generate

    state = ROOT / "target" / f"test-server-{os.getpid()}"
    shutil.rmtree(state, ignore_errors=True)
    state.parent.mkdir(parents=True, exist_ok=True)
    parents = [*state.parents, *_bin_dir().parents, _bin_dir()]
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(WAREHOUSE_STATE_DIR=str(state), DBT_TARGET_PATH=str(state / "dbt-target"),
               DBT_LOG_PATH=str(state / "dbt-logs"))
    running = Server(state, port, env, _modes(parents))
    try:
        started = running.warehouse("db", "start", "--listen", f"127.0.0.1:{port}")
        assert started.stdout.endswith(
            f"socket {state / 'run'}, TCP 127.0.0.1:{port} (password required)\n")
        data = tmp_path_factory.mktemp("security-data")
        generate(data, scale=0.05, seed=11, as_of=dt.date.fromisoformat(AS_OF))
        running.warehouse("load", str(data), check=False)
        running.warehouse("build", "--vars", f"{{as_of: '{AS_OF}'}}")
        running.reporting_password = password_from(
            running.warehouse("db", "password", "reporting").stdout)
        yield running
    finally:
        running.warehouse("db", "stop", check=False)
        shutil.rmtree(state, ignore_errors=True)


def test_server_runs_as_its_own_user_and_group(server: Server) -> None:
    pid = int((server.state / "pgdata" / "postmaster.pid").read_text().split()[0])
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    uid, gid = int(status["Uid"].split()[0]), int(status["Gid"].split()[0])
    if AS_ROOT:
        entry = pwd.getpwnam("embedded_postgres")
        assert (uid, gid) == (entry.pw_uid, entry.pw_gid)
        assert gid != 0 and status["Groups"].split() == []
    else:
        assert (uid, gid) == (os.geteuid(), os.getegid())


def test_folders_are_private_and_parents_unchanged(server: Server) -> None:
    assert _modes(list(server.parents_before)) == server.parents_before
    me = os.geteuid()
    owner = pwd.getpwnam("embedded_postgres").pw_uid if AS_ROOT else me
    for folder in ("pgdata", "run"):
        info = (server.state / folder).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, owner), folder
    secrets = server.state / "secrets"
    assert (stat.S_IMODE(secrets.stat().st_mode), secrets.stat().st_uid) == (0o700, me)
    assert sorted(path.name for path in secrets.iterdir()) == [
        "pgpass", "postgres.password", "reporting.password"]
    for path in secrets.iterdir():
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid) == (0o600, me), path
    expected_state = 0o750 if AS_ROOT else 0o700
    assert stat.S_IMODE(server.state.stat().st_mode) == expected_state


def _psql_as(user: str, host: str, server: Server, role: str,
             password: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--",
         str(_bin_dir() / "psql"), "-X", "-w", "-At",
         "-h", host, "-p", str(server.port), "-U", role, "-d", "warehouse",
         "-c", "select current_user"],
        env=env, capture_output=True, text=True, timeout=60, cwd="/",
    )


@pytest.mark.skipif(not AS_ROOT, reason="another OS user needs root to switch to")
def test_another_os_user_needs_the_password(server: Server) -> None:
    socket_dir = str(server.state / "run")
    refused = _psql_as("nobody", socket_dir, server, "postgres", None)
    assert refused.returncode == 2
    assert "Permission denied" in refused.stderr
    no_password = _psql_as("nobody", "127.0.0.1", server, "postgres", None)
    assert no_password.returncode == 2
    assert "fe_sendauth: no password supplied" in no_password.stderr
    wrong = _psql_as("nobody", "127.0.0.1", server, "reporting", "not-the-password")
    assert wrong.returncode == 2
    assert 'password authentication failed for user "reporting"' in wrong.stderr
    right = _psql_as("nobody", "127.0.0.1", server, "reporting", server.reporting_password)
    assert (right.returncode, right.stdout) == (0, "reporting\n"), right.stderr


def test_no_trust_on_the_socket_either(server: Server) -> None:
    for role in ("postgres", "reporting"):
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(host=str(server.state / "run"), port=server.port, user=role,
                            dbname="warehouse", passfile="/nonexistent", connect_timeout=10)


def test_reporting_over_tcp_reads_marts_and_exports_only(server: Server) -> None:
    readable = server.relations("marts", "exports")
    assert "marts.fact_sessions" in readable and "exports.attempts" in readable
    denied = server.relations(*DENIED_SCHEMAS)
    assert {relation.split(".")[0] for relation in denied} == set(DENIED_SCHEMAS)
    with server.reporting_tcp() as conn:
        for relation in readable:
            schema, name = relation.split(".")
            conn.execute(sql.SQL("select from {} limit 1").format(sql.Identifier(schema, name)))
        for relation in denied:
            schema, name = relation.split(".")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("select from {} limit 1").format(
                    sql.Identifier(schema, name)))


def test_a_bi_clients_view(server: Server) -> None:
    """What Metabase and Superset read: SQLAlchemy's inspector over TCP as reporting."""
    import sqlalchemy as sa

    url = sa.URL.create("postgresql+psycopg", username="reporting",
                        password=server.reporting_password, host="127.0.0.1", port=server.port,
                        database="warehouse")
    engine = sa.create_engine(url)
    with server.superuser() as admin:
        catalogue = {
            (row[0], row[1]): (row[2], row[3]) for row in admin.execute(
                "select n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')"
                " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname in ('marts', 'exports') and c.relkind in ('r', 'v')")
        }
        columns = {
            (row[0], row[1]): row[2] for row in admin.execute(
                "select n.nspname, c.relname, array_agg(a.attname::text order by a.attnum)"
                " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " join pg_attribute a on a.attrelid = c.oid and a.attnum > 0"
                " and not a.attisdropped where n.nspname in ('marts', 'exports')"
                " and c.relkind in ('r', 'v') group by 1, 2")
        }
    try:
        inspector = sa.inspect(engine)
        assert {"marts", "exports"} <= set(inspector.get_schema_names())
        for schema in ("marts", "exports"):
            tables = set(inspector.get_table_names(schema=schema))
            views = set(inspector.get_view_names(schema=schema))
            assert tables == {name for (s, name), (kind, _) in catalogue.items()
                              if s == schema and kind == "r"}
            assert views == {name for (s, name), (kind, _) in catalogue.items()
                             if s == schema and kind == "v"}
            for name in sorted(tables | views):
                described = inspector.get_columns(name, schema=schema)
                assert [column["name"] for column in described] == columns[(schema, name)]
                comment = inspector.get_table_comment(name, schema=schema)["text"]
                assert comment == catalogue[(schema, name)][1]
                assert comment, f"{schema}.{name} has no description"
        assert "exports" in inspector.get_schema_names()
        assert inspector.get_pk_constraint("fact_sessions", schema="marts")[
            "constrained_columns"] == ["session_id"]
        assert inspector.get_pk_constraint("fact_session_metrics", schema="marts")[
            "constrained_columns"] == ["session_id", "metric"]
        foreign = {
            (tuple(key["constrained_columns"]), key["referred_schema"], key["referred_table"])
            for key in inspector.get_foreign_keys("fact_sessions", schema="marts")
        }
        assert {(("org_id",), "marts", "dim_orgs"), (("user_id",), "marts", "dim_users")
                } <= foreign
        session_columns = {column["name"]: column for column in
                           inspector.get_columns("fact_sessions", schema="marts")}
        assert session_columns["session_id"]["comment"]
        with engine.connect() as conn:
            for schema, name in sorted(catalogue):
                rows = conn.execute(sa.select(sa.text("*")).select_from(
                    sa.table(name, schema=schema)).limit(5)).fetchall()
                assert len(rows) <= 5
                if (schema, name) in {("marts", "fact_sessions"), ("exports", "attempts")}:
                    assert len(rows) == 5
    finally:
        engine.dispose()


def test_db_url_prints_what_metabase_asks(server: Server) -> None:
    result = server.warehouse("db", "url", "--role", "reporting")
    port = server.port
    secrets = server.state / "secrets"
    assert result.stdout == f"""postgresql://reporting@127.0.0.1:{port}/warehouse

Metabase "Add a database" / Superset "Connect a database" (type PostgreSQL):
  Host:          127.0.0.1
  Port:          {port}
  Database name: warehouse
  Username:      reporting
  Password:      the one line of {secrets}/reporting.password (`cat` it; readable by you only)

SQLAlchemy (Superset): postgresql+psycopg://reporting@127.0.0.1:{port}/warehouse
JDBC:                  jdbc:postgresql://127.0.0.1:{port}/warehouse?user=reporting
"""
    with psycopg.connect(result.stdout.splitlines()[0], password=server.reporting_password,
                         connect_timeout=10) as conn:
        assert conn.execute("select current_user").fetchone() == ("reporting",)


def test_listen_is_remembered(server: Server) -> None:
    assert server.warehouse("db", "stop").stdout == "stopped\n"
    started = server.warehouse("db", "start")
    assert started.stdout.endswith(f"TCP 127.0.0.1:{server.port} (password required)\n")
    with server.reporting_tcp() as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    status = server.warehouse("db", "status")
    assert status.stdout.endswith(f"TCP 127.0.0.1:{server.port}: reachable\n")


def test_a_data_folder_that_trusted_gets_a_password() -> None:
    """A data folder made before passwords (trust, a superuser without password) gets one at
    its next `db start`, set while the server is stopped; then trust is gone."""
    from warehouse.embedded import EmbeddedServer

    state = ROOT / "target" / f"test-migrate-{os.getpid()}"
    shutil.rmtree(state, ignore_errors=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(WAREHOUSE_STATE_DIR=str(state), WAREHOUSE_EMBEDDED_PORT=str(_free_port()))
    old = Server(state, int(env["WAREHOUSE_EMBEDDED_PORT"]), env, {})
    try:
        old.warehouse("db", "start")
        old.warehouse("db", "stop")
        # as an older version left it
        server = EmbeddedServer(root=state, port=old.port)
        (server.data_dir / "pg_hba.conf").write_text("local all all trust\n")
        (state / "secrets" / "postgres.password").unlink()
        started = server._run("pg_ctl", "-D", str(server.data_dir), "-w", "-l",
                              str(server.log_file), "-o",
                              f"-p {old.port} -k {server.socket_dir}", "start")
        assert started.returncode == 0, started.stderr
        with psycopg.connect(host=str(server.socket_dir), port=old.port, user="postgres",
                             dbname="postgres", passfile="/nonexistent", autocommit=True) as conn:
            conn.execute("alter role postgres password null")
        old.warehouse("db", "start")
        assert (server.data_dir / "pg_hba.conf").read_text().splitlines()[2:] == [
            "local   all   all         scram-sha-256", "host    all   all   all   scram-sha-256"]
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(host=str(server.socket_dir), port=old.port, user="postgres",
                            dbname="postgres", passfile="/nonexistent")
        status = old.warehouse("db", "status")
        assert status.stdout.endswith(": reachable\n")
    finally:
        old.warehouse("db", "stop", check=False)
        shutil.rmtree(state, ignore_errors=True)
