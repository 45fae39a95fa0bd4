"""Who reads the warehouse: role passwords, organisation roles, and the BI guard rails.

The SQL side (row-level security, grants, role settings) is one function,
`ops.apply_access()`, defined by macros/access.sql at every build and run at every build's
end; these commands change `ops.bi_roles` and the roles, then call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from warehouse import passwords
from warehouse.db import scalar

REPORTING_ROLE = "reporting"
ORG_READERS = "warehouse_org_readers"
OPS = "ops"
TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AccessError(Exception):
    """A request the warehouse refuses, with the sentence to show."""


@dataclass(frozen=True)
class BiRole:
    role: str
    org_id: str | None
    org_name: str | None
    statement_timeout: str
    lock_timeout: str
    idle_in_transaction_session_timeout: str

    def line(self) -> str:
        rows = "every organisation" if self.org_id is None else (
            f"organisation {self.org_id}" + (f" ({self.org_name})" if self.org_name else "")
        )
        return (
            f"{self.role}: {rows}; statement_timeout {self.statement_timeout}, lock_timeout "
            f"{self.lock_timeout}, idle_in_transaction_session_timeout "
            f"{self.idle_in_transaction_session_timeout}"
        )


def check_role_name(role: str) -> str:
    if not _ROLE_NAME.match(role):
        raise AccessError(
            f"{role!r} is not a role name here: lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters"
        )
    return role


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return bool(scalar(conn, "select exists (select from pg_roles where rolname = %s)", (role,)))


def _require_built(conn: psycopg.Connection) -> None:
    if scalar(conn, "select to_regprocedure('ops.apply_access()') is null"):
        raise AccessError("the warehouse has not been built yet: run `warehouse build` first")


def set_password(conn: psycopg.Connection, state: Path, role: str,
                 password: str | None = None) -> Path:
    """Set or rotate `role`'s password (sent as a scram-sha-256 verifier, never in clear)
    and keep it in .warehouse/secrets/<role>.password (mode 0600)."""
    if not _role_exists(conn, role):
        raise AccessError(
            f"there is no role {role!r} (reporting is made by the first build, organisation "
            "roles by `warehouse access org`)"
        )
    password = password or passwords.generate()
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(sql.SQL("alter role {} login password {}").format(
        sql.Identifier(role), sql.Literal(verifier.decode())))
    conn.commit()
    return passwords.write_password(state, role, password)


def _check_timeouts(conn: psycopg.Connection, timeouts: dict[str, str]) -> None:
    for name, value in timeouts.items():
        try:
            with conn.transaction():
                conn.execute("select set_config(%s, %s, true)", (name, value))
        except psycopg.errors.DataException as error:
            raise AccessError(f"{name} {value!r}: {error.diag.message_primary}") from error
        except psycopg.errors.InvalidParameterValue as error:
            raise AccessError(f"{name} {value!r}: {error.diag.message_primary}") from error


def grant_org(conn: psycopg.Connection, org_id: str, role: str,
              timeouts: dict[str, str]) -> bool:
    """Create or update the organisation role `role` reading `org_id`'s rows only.
    True when the role was created."""
    check_role_name(role)
    _require_built(conn)
    _check_timeouts(conn, timeouts)
    try:
        org_uuid = scalar(conn, "select %s::uuid", (org_id,))
    except psycopg.errors.InvalidTextRepresentation as error:
        conn.rollback()
        raise AccessError(f"{org_id!r} is not an organisation id (a UUID)") from error
    if scalar(conn, "select to_regclass('marts.dim_orgs') is not null") and not scalar(
        conn, "select exists (select from marts.dim_orgs where org_id = %s)", (org_uuid,)
    ):
        raise AccessError(f"no organisation {org_id} in marts.dim_orgs")
    known = scalar(conn, "select exists (select from ops.bi_roles where role_name = %s)", (role,))
    if role == REPORTING_ROLE or (not known and _role_exists(conn, role)):
        raise AccessError(f"role {role!r} exists and is not an organisation role of this "
                          "warehouse: choose another name")
    created = not _role_exists(conn, role)
    if created:
        conn.execute(sql.SQL("create role {} login in role {}").format(
            sql.Identifier(role), sql.Identifier(ORG_READERS)))
    else:
        conn.execute(sql.SQL("grant {} to {}").format(
            sql.Identifier(ORG_READERS), sql.Identifier(role)))
    conn.execute(
        "insert into ops.bi_roles (role_name, org_id) values (%s, %s)"
        " on conflict (role_name) do update set org_id = excluded.org_id",
        (role, org_uuid),
    )
    _update_timeouts(conn, role, timeouts)
    conn.execute("select ops.apply_access()")
    conn.commit()
    return created


def _update_timeouts(conn: psycopg.Connection, role: str, timeouts: dict[str, str]) -> None:
    for name, value in timeouts.items():
        if name not in TIMEOUTS:
            raise AccessError(f"unknown setting {name}")
        conn.execute(
            sql.SQL("update ops.bi_roles set {} = %s where role_name = %s").format(
                sql.Identifier(name)),
            (value, role),
        )


def set_timeouts(conn: psycopg.Connection, role: str, timeouts: dict[str, str]) -> None:
    """Change a BI role's default timeouts (they apply to its next sessions)."""
    _require_built(conn)
    _check_timeouts(conn, timeouts)
    if not scalar(conn, "select exists (select from ops.bi_roles where role_name = %s)", (role,)):
        raise AccessError(f"{role!r} is not a BI role of this warehouse (`warehouse access list`)")
    _update_timeouts(conn, role, timeouts)
    conn.execute("select ops.apply_access()")
    conn.commit()


def list_roles(conn: psycopg.Connection) -> list[BiRole]:
    _require_built(conn)
    has_orgs = scalar(conn, "select to_regclass('marts.dim_orgs') is not null")
    org_name = "(select o.name from marts.dim_orgs as o where o.org_id = b.org_id)" if (
        has_orgs) else "null"
    rows = conn.execute(
        f"select b.role_name, b.org_id::text, {org_name}, b.statement_timeout, b.lock_timeout,"
        " b.idle_in_transaction_session_timeout from ops.bi_roles as b"
        " order by b.org_id is not null, b.role_name"
    ).fetchall()
    conn.commit()
    return [BiRole(*row) for row in rows]


def revoke(conn: psycopg.Connection, state: Path, role: str) -> None:
    """Drop an organisation role: its sessions end, its row and password go."""
    _require_built(conn)
    org = conn.execute("select org_id from ops.bi_roles where role_name = %s", (role,)).fetchone()
    if org is None or org[0] is None:
        raise AccessError(f"{role!r} is not an organisation role of this warehouse "
                          "(`warehouse access list`)")
    conn.execute("delete from ops.bi_roles where role_name = %s", (role,))
    conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s",
                 (role,))
    conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
    conn.execute("select ops.apply_access()")
    conn.commit()
    passwords.forget_password(state, role)
