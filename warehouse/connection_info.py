"""What `warehouse db url` prints: the fields of a BI tool's "add database" form (Metabase,
Superset) and the libpq, SQLAlchemy and JDBC URLs of the same connection."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

from warehouse import passwords
from warehouse.embedded import DATABASE, SUPERUSER, EmbeddedServer
from warehouse.paths import state_dir


@dataclass(frozen=True)
class ConnectionInfo:
    host: str
    port: int
    database: str
    user: str
    password_at: str
    note: str = ""

    @property
    def socket(self) -> bool:
        return self.host.startswith("/")

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{quote(self.user, safe='')}@{host}:{self.port}"

    def libpq_url(self) -> str:
        if self.socket:
            return (f"postgresql://{quote(self.user, safe='')}@/{quote(self.database, safe='')}"
                    f"?host={quote(self.host, safe='/')}&port={self.port}")
        return f"postgresql://{self._netloc()}/{quote(self.database, safe='')}"

    def sqlalchemy_url(self) -> str:
        if self.socket:
            return (f"postgresql+psycopg://{quote(self.user, safe='')}@/"
                    f"{quote(self.database, safe='')}?host={quote(self.host, safe='/')}"
                    f"&port={self.port}")
        return f"postgresql+psycopg://{self._netloc()}/{quote(self.database, safe='')}"

    def jdbc_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"jdbc:postgresql://{host}:{self.port}/{quote(self.database, safe='')}"
                f"?user={quote(self.user, safe='')}")

    def text(self) -> str:
        lines = [
            "",
            'Metabase "Add a database" / Superset "Connect a database" (type PostgreSQL):',
            f"  Host:          {self.host}",
            f"  Port:          {self.port}",
            f"  Database name: {self.database}",
            f"  Username:      {self.user}",
            f"  Password:      {self.password_at}",
            "",
            f"SQLAlchemy (Superset): {self.sqlalchemy_url()}",
        ]
        if not self.socket:
            lines.append(f"JDBC:                  {self.jdbc_url()}")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


def _password_at(role: str) -> str:
    path = passwords.password_file(state_dir(), role)
    if path.exists():
        return f"the one line of {path} (`cat` it; readable by you only)"
    return f"none set: `warehouse db password {role}` sets one"


def describe(server: EmbeddedServer | None, role: str | None) -> ConnectionInfo:
    """The connection to the embedded server (`server`, over TCP when it listens) or to
    the one PG* name, as `role` (default the owner, PGUSER)."""
    if server is not None:
        user = role or SUPERUSER
        # after `eval "$(warehouse db env)"`, PGDATABASE may name another database
        database = (os.environ.get("PGDATABASE") if os.environ.get("PGHOST") else None) or (
            DATABASE)
        if server.listen:
            return ConnectionInfo(server.listen.client_host(), server.port, database, user,
                                  _password_at(user))
        return ConnectionInfo(
            str(server.socket_dir), server.port, database, user, _password_at(user),
            note="The server listens on its unix socket only: for a BI tool on another "
            "machine or in a container, `warehouse db start --listen 0.0.0.0:5433`.",
        )
    env = os.environ
    user = role or env.get("PGUSER") or SUPERUSER
    password_at = _password_at(user)
    if not passwords.password_file(state_dir(), user).exists():
        password_at = ("PGPASSWORD or your pgpass file" if env.get("PGPASSWORD") is None
                       else "the value of PGPASSWORD")
    return ConnectionInfo(env["PGHOST"], int(env.get("PGPORT", "5432")),
                          env.get("PGDATABASE") or user, user, password_at)
