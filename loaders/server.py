"""What the connected PostgreSQL can do, read once per connection from its version number.

The warehouse supports PostgreSQL 15 to 18 (every major version the PostgreSQL project
still supports). Paths are chosen by feature, not by name, so 16 shares 15's loader path
and 17 shares 18's:

- `copy_on_error` (17+): COPY skips a row whose text is not of its column's type
  (`on_error ignore`) and takes `force_null *`; before 17 the loader copies text and types
  it with one set-based query instead.
- `input_is_valid` (16+): `pg_input_is_valid(text, type)`; on 15 the same test is a
  conservative regular expression per type, with an exact (slower) fallback function for
  the values the expression does not vouch for.
- `not_enforced_keys` (18+): foreign keys declared `not enforced` (the marts' keys for BI
  tools); before 18 the relationships stay in the dbt YAML and the column comments.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import psycopg

OLDEST_SUPPORTED = 15
NEWEST_TESTED = 18


class UnsupportedServer(Exception):
    """The server is older than the oldest supported major version."""


@dataclass(frozen=True)
class Server:
    version_num: int  # server_version_num, e.g. 150014 or 180006

    @property
    def major(self) -> int:
        return self.version_num // 10_000

    @property
    def copy_on_error(self) -> bool:
        return self.version_num >= 170_000

    @property
    def input_is_valid(self) -> bool:
        return self.version_num >= 160_000

    @property
    def not_enforced_keys(self) -> bool:
        return self.version_num >= 180_000


_SEEN: weakref.WeakKeyDictionary[psycopg.Connection, Server] = weakref.WeakKeyDictionary()


def unsupported_message(version_num: int) -> str:
    major, minor = divmod(version_num, 10_000)
    return (
        f"PostgreSQL {major}.{minor} found; the warehouse supports PostgreSQL "
        f"{OLDEST_SUPPORTED} to {NEWEST_TESTED}: upgrade the server or point PGHOST at "
        "a newer one (nothing was changed)"
    )


def server_of(conn: psycopg.Connection) -> Server:
    """The server's features, known from the connection's start-up (no query); below the
    oldest supported version, UnsupportedServer before anything is touched."""
    server = _SEEN.get(conn)
    if server is None:
        version_num = conn.info.server_version
        if version_num < OLDEST_SUPPORTED * 10_000:
            raise UnsupportedServer(unsupported_message(version_num))
        server = Server(version_num)
        _SEEN[conn] = server
    return server
