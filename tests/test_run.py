"""`warehouse run` and `warehouse offload` on a database of their own.

The tests of this module run in order on one database: two runs started at once (one
loads and builds, the other exits 0), files moved to processed/ and rejected/, a failed
build that keeps the previous marts, tables swapped atomically under readers, and an
offload that archives processed files without changing any figure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import psutil
import psycopg
import pytest
from conftest import AS_OF, ROOT, Database, _create_database

from warehouse.run import RUN_LOCK_CLASS, RUN_LOCK_KEY, free_destination

VARS = f"{{as_of: '{AS_OF.isoformat()}'}}"
# marts rebuilt as tables on every build (swapped in by rename)
SWAPPED_TABLES = ("marts.dim_users", "marts.user_metric_stats", "marts.user_practice_habits",
                  "marts.mv_org_overview", "marts.data_completeness")


@pytest.fixture(scope="module")
def run_db(server_env):
    name = f"t_run_{uuid.uuid4().hex[:8]}"
    database = _create_database(server_env, name)
    yield database
    if os.environ.get("WAREHOUSE_KEEP_TEST_DBS") != "1":
        with psycopg.connect(host=server_env["PGHOST"], port=server_env.get("PGPORT"),
                             user=server_env.get("PGUSER"), dbname="postgres",
                             autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


OUTSIDE = "org_id,name,updated_at\n11111111-0000-4000-8000-0000000000ff,Secret,2026-03-01\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory, generated_data):
    """A drop folder: inbox/ with the generated files (one in a sub-folder), a file that
    cannot load, a stray text file and an upload still in flight."""
    root = tmp_path_factory.mktemp("site")
    inbox = root / "inbox"
    inbox.mkdir()
    files = sorted(path for path in generated_data.iterdir() if path.is_file()
                   and path.name != "manifest.json")
    for path in files:
        target = inbox / ("late/2026-11" if path.name.startswith("sessions_0002") else "")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)
    (inbox / "attempts_broken.csv").write_text("foo,bar\n1,2\n")
    # hostile entries: a link to a file outside the inbox, a FIFO, old Mac line ends
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "orgs_secret.csv").write_text(OUTSIDE)
    (inbox / "orgs_link.csv").symlink_to(root / "elsewhere" / "orgs_secret.csv")
    os.mkfifo(inbox / "users_pipe.csv")
    (inbox / "orgs_mac.csv").write_bytes(b"org_id,name,updated_at\r" + b"x,y,z\r")
    (inbox / "notes.txt").write_text("not data\n")
    (inbox / "sessions_9999.jsonl.part").write_text("{}\n")
    # a file of the same name is already in processed/: it must not be overwritten
    (root / "processed").mkdir()
    (root / "processed" / "orgs.csv").write_text("older delivery\n")
    return root


def warehouse(db: Database, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return db.warehouse(*args, check=False, **kwargs)


def figures(db: Database) -> dict[str, object]:
    """Row count and content digest of the marts and exports a run must not change. Floats
    are compared to 10 significant digits: an average over doubles may change in its last
    bit when an incremental fact's rows were rewritten in another physical order."""
    result: dict[str, object] = {}
    for relation in (*SWAPPED_TABLES, "marts.fact_sessions", "marts.fact_scenario_attempts",
                     "marts.fact_kpi_events", "exports.attempts", "exports.user_summary"):
        rows = db.query(f"select * from {relation}")
        normalised = sorted(
            repr(tuple(float(f"{value:.10g}") if isinstance(value, float) else value
                       for value in row))
            for row in rows
        )
        digest = hashlib.sha256("\n".join(normalised).encode()).hexdigest()
        result[relation] = (len(rows), digest)
    return result


def lock_held(db: Database) -> bool:
    ((held,),) = db.query(
        "select exists (select from pg_locks where locktype = 'advisory' and classid = %s"
        " and objid = %s and database = (select oid from pg_database"
        " where datname = current_database()))",
        (RUN_LOCK_CLASS, RUN_LOCK_KEY),
    )
    return held


def test_two_runs_at_once(run_db, site):
    inbox = site / "inbox"
    env = {**os.environ, **run_db.env,
           "DBT_TARGET_PATH": str(ROOT / "target" / f"test-{run_db.name}"),
           "DBT_LOG_PATH": str(ROOT / "logs" / f"test-{run_db.name}")}
    first = subprocess.Popen(
        [str(Path(sys.executable).with_name("warehouse")), "run", "--inbox", str(inbox),
         "--no-check", "--vars", VARS],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock_held(run_db):
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        second = warehouse(run_db, "run", "--inbox", str(inbox), "--no-check", "--vars", VARS)
        assert second.returncode == 0
        assert "another warehouse run or build (or an export) holds the lock" in second.stdout
        # an export meanwhile waits for the build instead of meeting half-built views
        exporting = subprocess.Popen(
            [str(Path(sys.executable).with_name("warehouse")), "export", "user_summary",
             "--out", str(site / "user_summary.csv")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        output, _ = first.communicate(timeout=1200)
        export_out, export_err = exporting.communicate(timeout=300)
    finally:
        for process in (first, locals().get("exporting")):
            if process is not None and process.poll() is None:
                process.kill()
    assert exporting.returncode == 0, export_err
    assert "waiting for it to finish" in export_err
    # the database had no export views before this run: the export ran after its build
    ((users,),) = run_db.query("select count(*) from exports.user_summary")
    assert f"exports.user_summary -> {site / 'user_summary.csv'}: {users} rows" in export_out
    # everything loaded and built; the unreadable files make the exit status 2
    assert first.returncode == 2, output[-4000:]
    assert "REJECTED" in output and "build success" in output

    processed, rejected = site / "processed", site / "rejected"
    assert (processed / "orgs.csv").read_text() == "older delivery\n"
    assert (processed / "orgs.1.csv").exists()
    assert (processed / "late" / "2026-11").is_dir()
    assert any((processed / "late" / "2026-11").iterdir())
    assert (rejected / "attempts_broken.csv").exists()
    assert "lacks required column" in (rejected / "attempts_broken.csv.reason.txt").read_text()
    assert (rejected / "notes.txt").exists()
    # the link itself was moved, unfollowed; what it points to is untouched and not loaded
    link = rejected / "orgs_link.csv"
    assert link.is_symlink() and os.readlink(link) == str(site / "elsewhere" / "orgs_secret.csv")
    assert (site / "elsewhere" / "orgs_secret.csv").read_text() == OUTSIDE
    assert (rejected / "orgs_link.csv.reason.txt").read_text() == (
        "orgs_link.csv: is a symbolic link (to "
        f"{site / 'elsewhere' / 'orgs_secret.csv'}): refused; files are loaded from their own "
        "location (warehouse load --follow-symlinks loads what a link points to)\n")
    assert stat.S_ISFIFO(os.lstat(rejected / "users_pipe.csv").st_mode)
    assert (rejected / "users_pipe.csv.reason.txt").read_text() == (
        "users_pipe.csv: is not a regular file but a named pipe (FIFO): refused\n")
    assert (rejected / "orgs_mac.csv.reason.txt").read_text() == (
        "orgs_mac.csv: line 1: carriage returns alone end its lines (old Mac style); CSV lines"
        " end with \\n or \\r\\n (RFC 4180): nothing loaded\n")
    assert run_db.query("select count(*) from raw.orgs where name = 'Secret'") == [(0,)]
    assert sorted(name for (name,) in run_db.query(
        "select file_name from raw.rejected_files")) == [
        "attempts_broken.csv", "orgs_link.csv", "orgs_mac.csv", "users_pipe.csv"]
    left = sorted(path.name for path in inbox.rglob("*") if path.is_file())
    assert left == ["sessions_9999.jsonl.part"]
    ((sessions,), ) = run_db.query("select count(*) from marts.fact_sessions")
    assert sessions > 0
    ((status, loaded),) = run_db.query(
        "select build_status, files_loaded from ops.run_log where build_status is not null"
        " order by run_id desc limit 1")
    assert status == "success" and loaded > 0


def test_failed_build_keeps_previous_marts(run_db, site):
    before = figures(run_db)
    # a bad as_of breaks every model that uses it, in the middle of the build
    failed = warehouse(run_db, "run", "--inbox", str(site / "inbox"), "--no-check",
                       "--force-build", "--vars", "{as_of: 'not-a-date'}")
    assert failed.returncode == 1, failed.stdout[-4000:]
    assert "dbt build failed: the previous marts stay in place" in failed.stdout
    assert figures(run_db) == before
    # readable by the analysts' role too, export views included
    with run_db.connect() as conn:
        conn.execute("set role reporting")
        for relation in (*SWAPPED_TABLES, "exports.user_profile_json", "exports.sessions"):
            assert conn.execute(f"select count(*) from {relation}").fetchone()[0] > 0


def test_tables_swap_atomically_under_readers(run_db, site):
    before = figures(run_db)
    errors: list[str] = []
    reads = 0
    done = threading.Event()

    def read() -> None:
        nonlocal reads
        with run_db.connect(autocommit=True) as conn:
            while not done.is_set():
                for relation in SWAPPED_TABLES:
                    try:
                        conn.execute(f"select count(*) from {relation}").fetchone()
                        reads += 1
                    except psycopg.Error as error:
                        errors.append(f"{relation}: {error}")
                time.sleep(0.01)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # with the checks this time: the scheduled job's full path
        built = warehouse(run_db, "run", "--inbox", str(site / "inbox"), "--force-build",
                          "--vars", VARS)
    finally:
        done.set()
        reader.join()
    assert built.returncode == 0, built.stdout[-4000:]
    assert "warehouse check:" in built.stdout and "result: OK" in built.stdout
    assert errors == []
    assert reads > 50
    assert figures(run_db) == before


def _env(db: Database) -> dict[str, str]:
    return {**os.environ, **db.env,
            "DBT_TARGET_PATH": str(ROOT / "target" / f"test-{db.name}"),
            "DBT_LOG_PATH": str(ROOT / "logs" / f"test-{db.name}")}


def _waiting_for_lock(db: Database) -> bool:
    ((waiting,),) = db.query(
        "select count(*) from pg_locks where locktype = 'advisory' and classid = %s"
        " and objid = %s and not granted", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
    return waiting > 0


def test_a_build_by_hand_waits_for_the_run_lock(run_db):
    """`warehouse build` takes the lock of `warehouse run`: while a run holds it, the build
    waits (saying for whom) and starts once it is free, never building beside it."""
    holder = run_db.connect(autocommit=True, application_name="warehouse run")
    holder.execute("select pg_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
    build = subprocess.Popen(
        [str(Path(sys.executable).with_name("warehouse")), "build", "-s", "stg_orgs",
         "--vars", VARS],
        cwd=ROOT, env=_env(run_db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _waiting_for_lock(run_db):
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "the build never asked for the lock"
            time.sleep(0.05)
        time.sleep(2)
        assert build.poll() is None, "the build ran while a run held the lock"
        # meanwhile a scheduled run finds the lock taken and leaves
        second = warehouse(run_db, "run", "--inbox", str(ROOT / "no-such-inbox-13"),
                           "--no-check", "--vars", VARS)
        assert second.returncode == 0
        assert "another warehouse run or build (or an export) holds the lock" in second.stdout
        holder.close()
        stdout, stderr = build.communicate(timeout=600)
    finally:
        holder.close()
        if build.poll() is None:
            build.kill()
    assert build.returncode == 0, stdout[-4000:]
    holder_pid = stderr.split("pid ")[1].split(")")[0]
    assert stderr.splitlines()[0] == (
        f"waiting for the lock held by warehouse run (pid {holder_pid}) to finish")
    assert not lock_held(run_db)


def test_kill_9_of_a_run_ends_its_dbt(run_db, site):
    """`kill -9` of `warehouse run` in the middle of its build: dbt (a process group of its
    own) dies with it, the lock is free at once, and the next run builds the same figures
    (no duplicate relation from a dbt still building)."""
    before = figures(run_db)
    inbox = site / "inbox"
    # a build with nothing new takes seconds: the test holds dim_time, so the build is
    # caught mid-way (its rewrite of dim_time waits for the lock)
    blocker = run_db.connect()
    blocker.execute("lock table marts.dim_time in access exclusive mode")
    parent = subprocess.Popen(
        [str(Path(sys.executable).with_name("warehouse")), "run", "--inbox", str(inbox),
         "--no-check", "--force-build", "--vars", VARS],
        cwd=ROOT, env=_env(run_db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        # dbt's models are running: one of its connections waits for dim_time
        while not run_db.query(
            "select 1 from pg_stat_activity where datname = current_database()"
            " and application_name like 'dbt%%' and state = 'active'"
            " and wait_event_type = 'Lock'"
        ):
            assert parent.poll() is None, "the run ended before its build got going"
            assert time.monotonic() < deadline, "dbt never started building"
            time.sleep(0.1)
        children = psutil.Process(parent.pid).children(recursive=True)
        assert any("dbt" in " ".join(child.cmdline()) for child in children)
        parent.send_signal(signal.SIGKILL)
        assert parent.wait(timeout=30) == -signal.SIGKILL
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"dbt outlived warehouse run: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
        blocker.close()
    deadline = time.monotonic() + 30
    while lock_held(run_db):
        assert time.monotonic() < deadline, "the lock outlived the killed run"
        time.sleep(0.1)
    rerun = warehouse(run_db, "run", "--inbox", str(inbox), "--no-check", "--force-build",
                      "--vars", VARS)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert "build success" in rerun.stdout
    assert figures(run_db) == before


def test_offload_archives_and_keeps_figures(run_db, site):
    processed = site / "processed"
    before = figures(run_db)
    old = sorted(path for path in processed.rglob("*") if path.is_file())
    digests = {path.relative_to(processed).as_posix(): hashlib.sha256(path.read_bytes())
               .hexdigest() for path in old}
    recent = processed / "orgs.1.csv"
    ten_days_ago = time.time() - 10 * 86400
    for path in old:
        if path != recent:
            os.utime(path, (ten_days_ago, ten_days_ago))

    result = warehouse(run_db, "offload", "--days-old", "7", "--inbox", str(site / "inbox"),
                       "--delete-source")
    assert result.returncode == 0, result.stdout + result.stderr
    archives = sorted((site / "archives").glob("processed_*.zip"))
    assert len(archives) == 1
    with zipfile.ZipFile(archives[0]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        listed = {item["path"]: item for item in manifest["files"]}
        assert set(listed) == set(digests) - {"orgs.1.csv"}
        for relative, item in listed.items():
            data = archive.read(f"processed/{relative}")
            assert hashlib.sha256(data).hexdigest() == item["sha256"] == digests[relative]
        loaded = [item for item in listed.values() if item["ledger"]]
        assert loaded and all(item["ledger"]["load_id"] for item in loaded)
    remaining = sorted(path.name for path in processed.rglob("*") if path.is_file())
    assert remaining == ["orgs.1.csv"]
    assert figures(run_db) == before

    # nothing left to offload: no second archive
    again = warehouse(run_db, "offload", "--days-old", "7", "--inbox", str(site / "inbox"))
    assert "nothing to offload" in again.stdout

    # an archived file delivered again loads nothing and needs no build
    with zipfile.ZipFile(archives[0]) as archive:
        name = next(item for item in listed if item.startswith("sessions_0001"))
        (site / "inbox" / Path(name).name).write_bytes(archive.read(f"processed/{name}"))
    rerun = warehouse(run_db, "run", "--inbox", str(site / "inbox"), "--no-check",
                      "--vars", VARS)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert "already loaded" in rerun.stdout and "build skipped" in rerun.stdout
    assert figures(run_db) == before

    # a file loaded since the last build (by hand, or by a run killed before building)
    # makes the next run build even with an empty inbox
    from warehouse.run import build_needed

    with run_db.connect() as conn:
        assert not build_needed(conn)
        conn.execute("update raw.load_ledger set loaded_at = now()"
                     " where load_id = (select max(load_id) from raw.load_ledger)")
        conn.commit()
        assert build_needed(conn)


def test_free_destination_never_overwrites(tmp_path):
    target = tmp_path / "kpi_events_0001.csv.gz"
    assert free_destination(target) == target
    target.write_text("x")
    assert free_destination(target).name == "kpi_events_0001.1.csv.gz"
    (tmp_path / "kpi_events_0001.1.csv.gz").write_text("y")
    assert free_destination(target).name == "kpi_events_0001.2.csv.gz"
    other = tmp_path / "README"
    other.write_text("z")
    assert free_destination(other).name == "README.1"

