"""`warehouse forget`: erase a person from the warehouse, keep them erased, audit it
(issue 17; docs/privacy.md explains the choices).

An erasure, in order:
1. The person's identifiers are gathered: the user id, and every e-mail and name any
   version of their user record carried (raw, snapshot, dimension).
2. They go onto the erasure list (`ops.erased_identifiers`, salted hashes only) and the
   audit row is opened (`ops.erasures`), committed first, so every load that starts from
   then on quarantines their rows (`loaders/erasure.py`); loads already running are waited
   for.
3. One database transaction, driven by the catalogue (every table of the warehouse's
   schemas; inheritance children through their parent):
   - rows with `user_id` = the person (and `org_id` = the organisation, with `--org`) are
     deleted: raw rows of every stream and version, snapshots, facts, intermediates, marts;
   - quarantined rows whose raw text names them (id, e-mail or name) are deleted;
   - the ledger counts of the loads that lost rows are lowered to match (rows read =
     loaded + quarantined still holds);
   - every other text or JSON value naming them (a `manager_id`, a name inside a digest's
     JSON) is redacted: the id and e-mails in any text or JSON column, names in JSON;
   - `ops.model_watermarks` is emptied: the next build recomputes every entity-incremental
     mart whole, so ranks, averages and org figures no longer count the person.
4. The files the warehouse keeps (`warehouse_files.py`) are rewritten without them, the
   ledger following each file's new content hash; files that cannot be rewritten (inside
   archives, unreadable) are listed for the operator.
5. The audit row gets the counts per table and the files, and status `done`.

`dry_run` runs step 3 in a transaction that is rolled back (exact counts, nothing
changed, nothing registered) and only reads the files.
"""

from __future__ import annotations

import getpass
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from loaders.erasure import ERASURE_DDL
from loaders.landing import drop_abandoned_landings
from loaders.ledger import LOAD_LOCK_CLASS
from warehouse import forget_files
from warehouse.db import RUN_LOCK_CLASS, RUN_LOCK_KEY

# the schemas the warehouse writes (raw_landing only holds loads in flight)
SCHEMAS = ("raw", "staging", "snapshots", "intermediate", "marts", "exports", "ops")
# tables the build derives (rebuilt from raw; a row without user_id may still be the person's)
DERIVED_SCHEMAS = ("intermediate", "marts")
# the erasure list and audit: hashes and counts, nothing to redact
OWN_TABLES = {"ops.erasures", "ops.erased_identifiers", "ops.erasure_salt"}
# identifiers shorter than this are not searched in free text (they would match too much)
MIN_SEARCH_LENGTH = 3
TEXT_TYPES = ("text", "character varying", "character")
JSON_TYPES = ("json", "jsonb")
RECOMPUTE_NOTE = (
    "Figures that depended on this person (leaderboard ranks, team averages and digests, "
    "the org overview, KPI trends) are recomputed by the next build: run `warehouse build` "
    "or let the next `warehouse run` do it."
)


@dataclass
class Person:
    user_id: str
    org_id: str | None
    emails: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def strong(self) -> list[str]:
        """Identifiers searched in every text and JSON value: the id and e-mails."""
        return [value for value in (self.user_id, *self.emails) if len(value) >= MIN_SEARCH_LENGTH]

    @property
    def all(self) -> list[str]:
        """Also the names: searched in quarantined raw text, JSON values and files."""
        return self.strong + [name for name in self.names if len(name) >= MIN_SEARCH_LENGTH]


@dataclass
class Erasure:
    person: Person
    dry_run: bool
    erasure_id: int | None = None
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    redacted: dict[str, int] = field(default_factory=dict)  # table -> rows redacted
    files: forget_files.FileReport = field(default_factory=forget_files.FileReport)

    def lines(self) -> list[str]:
        scope = f"organisation {self.person.org_id}" if self.person.org_id else "every organisation"
        head = "dry run: would erase" if self.dry_run else f"erasure {self.erasure_id}: erased"
        verb = "would be " if self.dry_run else ""
        out = [f"{head} user {self.person.user_id} ({scope})"]
        for table in sorted(set(self.deleted) | set(self.redacted)):
            parts = []
            if self.deleted.get(table):
                parts.append(f"{_rows(self.deleted[table])} {verb}deleted")
            if self.redacted.get(table):
                parts.append(f"{_rows(self.redacted[table])} {verb}redacted")
            if parts:
                out.append(f"  {table}: {', '.join(parts)}")
        if not any(self.deleted.values()) and not any(self.redacted.values()):
            out.append("  no rows in the database name this person")
        out += self.files.lines(self.dry_run)
        if not self.dry_run:
            out.append(
                "Later deliveries of this user's rows are quarantined with reason "
                "'erased user' (no raw text)."
            )
        out.append(RECOMPUTE_NOTE)
        return out


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def pattern(values: list[str]) -> str:
    """A case-insensitive regular expression (PostgreSQL ARE and Python `re` alike) matching
    any of the values as a whole word: not inside a longer id, e-mail or name."""
    alternatives = "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True))
    return rf"(?<![[:alnum:]_@.+-])({alternatives})(?![[:alnum:]_@+-])"


def python_pattern(values: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![\w@.+-])({alternatives})(?![\w@+-])", re.IGNORECASE)


def _like(values: list[str]) -> list[str]:
    escaped = [value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
               for value in values]
    return [f"%{value}%" for value in escaped]


# --------------------------------------------------------------------------- identifiers


def identify(conn: psycopg.Connection, user_id: str, org_id: str | None) -> Person:
    """Every e-mail and name the person's user records carried, in any table that has them."""
    tables = conn.execute(
        "select table_schema, table_name from information_schema.columns"
        " where table_schema = any(%s) and column_name in ('user_id', 'email', 'name')"
        " group by 1, 2 having count(*) = 3",
        (list(SCHEMAS),),
    ).fetchall()
    emails: set[str] = set()
    names: set[str] = set()
    for schema, table in tables:
        has_org = _has_column(conn, schema, table, "org_id")
        condition = sql.SQL("user_id = %s")
        params: list[object] = [user_id]
        if org_id and has_org:
            condition = sql.SQL("user_id = %s and org_id = %s::uuid")
            params.append(org_id)
        for email, name in conn.execute(
            sql.SQL("select distinct email, name from {} where {}").format(
                sql.Identifier(schema, table), condition),
            params,
        ).fetchall():
            if email:
                emails.add(email.strip())
            if name:
                names.add(name.strip())
    conn.rollback()
    return Person(user_id, org_id, sorted(emails), sorted(names))


def _has_column(conn: psycopg.Connection, schema: str, table: str, column: str) -> bool:
    row = conn.execute(
        "select exists (select from information_schema.columns where table_schema = %s"
        " and table_name = %s and column_name = %s)", (schema, table, column),
    ).fetchone()
    return row is not None and bool(row[0])


# --------------------------------------------------------------------------- the catalogue


@dataclass
class Table:
    schema: str
    name: str
    columns: dict[str, tuple[str, bool]]  # name -> (data type, nullable)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def tables(conn: psycopg.Connection) -> list[Table]:
    """Every table of the warehouse's schemas, inheritance children and partitions left to
    their parent (a delete or update through the parent reaches them)."""
    rows = conn.execute(
        """
        select n.nspname, c.relname, a.attname, format_type(a.atttypid, null), not a.attnotnull
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition
          and not exists (select from pg_inherits as i where i.inhrelid = c.oid)
        order by n.nspname, c.relname, a.attnum
        """,
        (list(SCHEMAS),),
    ).fetchall()
    found: dict[tuple[str, str], Table] = {}
    for schema, name, column, data_type, nullable in rows:
        table = found.setdefault((schema, name), Table(schema, name, {}))
        table.columns[column] = (data_type, nullable)
    return [table for table in found.values() if table.qualified not in OWN_TABLES]


# --------------------------------------------------------------------------- the database


def _delete_keyed(conn: psycopg.Connection, table: Table, person: Person,
                  raw_loads: dict[int, list[int]]) -> int:
    """The person's rows of a table with a user_id column; raw rows counted per load."""
    condition = sql.SQL("user_id = %s")
    params: list[object] = [person.user_id]
    if person.org_id and "org_id" in table.columns:
        condition = sql.SQL("user_id = %s and org_id = %s::uuid")
        params.append(person.org_id)
    if table.schema == "raw" and "_load_id" in table.columns:
        rows = conn.execute(sql.SQL(
            "with gone as (delete from {} where {} returning _load_id)"
            " select _load_id, count(*) from gone group by _load_id"
        ).format(table.ident, condition), params).fetchall()
        for load_id, count in rows:
            raw_loads.setdefault(load_id, [0, 0])[0] += count
        return sum(count for _, count in rows)
    return conn.execute(
        sql.SQL("delete from {} where {}").format(table.ident, condition), params
    ).rowcount


def _delete_quarantine(conn: psycopg.Connection, person: Person,
                       raw_loads: dict[int, list[int]]) -> int:
    """Quarantined rows whose raw text names the person."""
    rows = conn.execute(
        "with gone as (delete from raw.quarantine where raw_row ilike any(%s)"
        " and raw_row ~* %s returning load_id) select load_id, count(*) from gone group by 1",
        (_like(person.all), pattern(person.all)),
    ).fetchall()
    for load_id, count in rows:
        raw_loads.setdefault(load_id, [0, 0])[1] += count
    return sum(count for _, count in rows)


def _adjust_ledger(conn: psycopg.Connection, raw_loads: dict[int, list[int]]) -> None:
    """Ledger counts of the loads that lost rows, as if the files never held them."""
    for load_id, (loaded, quarantined) in raw_loads.items():
        conn.execute(
            "update raw.load_ledger set rows_read = rows_read - %s - %s,"
            " rows_loaded = rows_loaded - %s, rows_quarantined = rows_quarantined - %s"
            " where load_id = %s",
            (loaded, quarantined, loaded, quarantined, load_id),
        )


def _record_keys(conn: psycopg.Connection, person: Person) -> dict[str, list[str]]:
    """The attempt and session ids of the person's raw records (not those that other
    users' records share, e.g. a session re-delivered under someone else)."""
    keys: dict[str, list[str]] = {}
    org = sql.SQL(" and org_id = %s::uuid") if person.org_id else sql.SQL("")
    for key, streams in (("attempt_id", ("attempts", "sessions", "kpi_events")),
                         ("session_id", ("sessions", "kpi_events"))):
        mine = sql.SQL(" union ").join(
            sql.SQL("select {k} from {t} where user_id = %s{org}").format(
                k=sql.Identifier(key), t=sql.Identifier("raw", stream), org=org)
            for stream in streams)
        theirs = sql.SQL(" union ").join(
            sql.SQL("select {k} from {t} where user_id is distinct from %s").format(
                k=sql.Identifier(key), t=sql.Identifier("raw", stream))
            for stream in streams)
        params: list[object] = []
        for _ in streams:
            params += [person.user_id, person.org_id] if person.org_id else [person.user_id]
        params += [person.user_id] * len(streams)
        rows = conn.execute(sql.SQL(
            "select {k}::text from ({mine}) as mine where {k} is not null"
            " except select {k}::text from ({theirs}) as theirs"
        ).format(k=sql.Identifier(key), mine=mine, theirs=theirs), params).fetchall()
        keys[key] = [value for (value,) in rows]
    return keys


def _delete_derived(conn: psycopg.Connection, table: Table, keys: dict[str, list[str]]) -> int:
    """Rows of a built table without user_id that derive from the person's attempts or
    sessions (e.g. KPI counts per attempt)."""
    conditions = [
        sql.SQL("{}::text = any(%s)").format(sql.Identifier(key))
        for key in keys if key in table.columns and keys[key]
    ]
    if not conditions:
        return 0
    return conn.execute(
        sql.SQL("delete from {} where {}").format(table.ident, sql.SQL(" or ").join(conditions)),
        [keys[key] for key in keys if key in table.columns and keys[key]],
    ).rowcount


def _republish(conn: psycopg.Connection, load_ids: list[int]) -> None:
    """The loads that lost rows count as published now: the next build re-reads them, so
    the load-incremental facts and KPI counts are recomputed without the person."""
    conn.execute(
        "update raw.load_ledger set loaded_at = clock_timestamp()"
        " where load_id = any(%s) and loaded_at is not null", (load_ids,),
    )


def _redact(conn: psycopg.Connection, table: Table, person: Person) -> int:
    """Values naming the person in rows that are not theirs: the id and e-mails are cut
    out of text values (a value that was nothing else becomes null), and also the names
    out of JSON values. One statement per table; the identifiers travel as parameters
    (never in the statement's text, which a server log may keep)."""
    params = {
        "strong": pattern(person.strong), "strong_likes": _like(person.strong),
        "every": pattern(person.all), "every_likes": _like(person.all),
        "user_id": person.user_id,
    }
    sets: list[sql.Composable] = []
    wheres: list[sql.Composable] = []
    for column, (data_type, nullable) in table.columns.items():
        ident = sql.Identifier(column)
        value: sql.Composable
        if data_type in TEXT_TYPES and person.strong:
            value, found = ident, "strong"
        elif data_type in JSON_TYPES and person.all:
            value, found = sql.SQL("{}::text").format(ident), "every"
        else:
            continue
        match = sql.SQL("({v} ilike any({likes}) and {v} ~* {p})").format(
            v=value, likes=sql.Placeholder(f"{found}_likes"), p=sql.Placeholder(found))
        cut: sql.Composable = sql.SQL("regexp_replace({v}, {p}, '', 'gi')").format(
            v=value, p=sql.Placeholder(found))
        if data_type in JSON_TYPES:
            cut = sql.SQL("{}::{}").format(cut, sql.SQL(data_type))
        elif nullable:
            cut = sql.SQL("nullif({}, '')").format(cut)
        sets.append(sql.SQL("{c} = case when {m} then {cut} else {c} end").format(
            c=ident, m=match, cut=cut))
        wheres.append(match)
    if not sets:
        return 0
    condition = sql.SQL("({})").format(sql.SQL(" or ").join(wheres))
    if "user_id" in table.columns:
        # the person's own rows that stayed (in other organisations, with --org) stay whole
        condition = sql.SQL("{} and user_id is distinct from %(user_id)s").format(condition)
    return conn.execute(sql.SQL("update {} set {} where {}").format(
        table.ident, sql.SQL(", ").join(sets), condition), params).rowcount


def erase_database(conn: psycopg.Connection, erasure: Erasure) -> None:
    """Step 3, in the caller's transaction."""
    person = erasure.person
    raw_loads: dict[int, list[int]] = {}
    catalogue = tables(conn)
    names = {table.qualified for table in catalogue}
    raw_streams = {"raw.attempts", "raw.sessions", "raw.kpi_events"}
    keys = _record_keys(conn, person) if raw_streams <= names else {}
    for table in catalogue:
        if "user_id" in table.columns:
            erasure.deleted[table.qualified] = _delete_keyed(conn, table, person, raw_loads)
        elif table.schema in DERIVED_SCHEMAS:
            erasure.deleted[table.qualified] = _delete_derived(conn, table, keys)
    if "raw.quarantine" in names and person.all:
        erasure.deleted["raw.quarantine"] = _delete_quarantine(conn, person, raw_loads)
    if "raw.load_ledger" in names:
        _adjust_ledger(conn, raw_loads)
        _republish(conn, sorted(raw_loads))
    for table in catalogue:
        erasure.redacted[table.qualified] = _redact(conn, table, person)
    if any(table.qualified == "ops.model_watermarks" for table in catalogue):
        conn.execute("delete from ops.model_watermarks")


# --------------------------------------------------------------------------- the erasure list


def register(conn: psycopg.Connection, person: Person, reason: str | None) -> int:
    """The erasure list entry and the opened audit row, committed."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('warehouse.erasure_schema'))")
        conn.execute(ERASURE_DDL)
        conn.execute(
            "insert into ops.erasure_salt (salt) values (%s) on conflict do nothing",
            (secrets.token_hex(32),),
        )
        row = conn.execute(
            "insert into ops.erasures (os_user, org_id, reason) values (%s, %s::uuid, %s)"
            " returning erasure_id",
            (_os_user(), person.org_id, _scrubbed(reason, person)),
        ).fetchone()
        assert row is not None
        erasure_id = int(row[0])
        identifiers = [("user_id", person.user_id)]
        identifiers += [("email", email.lower()) for email in person.emails]
        for kind, value in identifiers:
            conn.execute(
                "insert into ops.erased_identifiers (erasure_id, kind, value_hash, org_id)"
                " select %s, %s, encode(sha256(convert_to(salt || %s, 'UTF8')), 'hex'),"
                " %s::uuid from ops.erasure_salt on conflict do nothing",
                (erasure_id, kind, value, person.org_id),
            )
    return erasure_id


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _scrubbed(text: str | None, person: Person) -> str | None:
    """The operator's reason without the person's identifiers (it is kept for good)."""
    if not text or not person.all:
        return text
    return python_pattern(person.all).sub("[erased]", text)


def wait_for_live_loads(conn: psycopg.Connection, poll: float = 0.2) -> None:
    """Loads that started before the erasure list named the person finish first (their
    rows are then deleted with the rest)."""
    while True:
        row = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and classid = %s"
            " and objsubid = 2 and granted and pid <> pg_backend_pid()",
            (LOAD_LOCK_CLASS,),
        ).fetchone()
        conn.rollback()
        if row is None or row[0] == 0:
            return
        time.sleep(poll)


# --------------------------------------------------------------------------- the command


def forget(
    conn: psycopg.Connection, user_id: str, org_id: str | None = None,
    reason: str | None = None, dry_run: bool = False, inbox: Path | None = None,
    folders: tuple[Path, ...] = (),
) -> Erasure:
    """Erase a person (see the module's docstring); holds the scheduled job's lock."""
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("give a user id")
    person = identify(conn, user_id, org_id)
    erasure = Erasure(person, dry_run)
    conn.execute("select pg_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
    conn.commit()
    try:
        if not dry_run:
            erasure.erasure_id = register(conn, person, reason)
            wait_for_live_loads(conn)
            # landing tables left by loads that died may hold the person's rows
            drop_abandoned_landings(conn)
        with conn.transaction() as transaction:
            erase_database(conn, erasure)
            if dry_run:
                raise psycopg.Rollback(transaction)
            _record(conn, erasure, "database erased")
        erasure.files = forget_files.erase_files(
            conn, person.user_id, person.org_id, person.all, python_pattern(person.all),
            forget_files.places(conn, inbox, folders), dry_run,
        )
        if not dry_run:
            with conn.transaction():
                _record(conn, erasure, "done")
    finally:
        conn.execute("select pg_advisory_unlock(%s, %s)", (RUN_LOCK_CLASS, RUN_LOCK_KEY))
        conn.commit()
    return erasure


def _record(conn: psycopg.Connection, erasure: Erasure, status: str) -> None:
    counts = {
        table: {
            "deleted": erasure.deleted.get(table, 0),
            "redacted": erasure.redacted.get(table, 0),
        }
        for table in sorted(set(erasure.deleted) | set(erasure.redacted))
        if erasure.deleted.get(table) or erasure.redacted.get(table)
    }
    conn.execute(
        "update ops.erasures set status = %s, row_counts = %s::jsonb, files = %s::jsonb,"
        " finished_at = case when %s = 'done' then now() end where erasure_id = %s",
        (status, json.dumps(counts), json.dumps(erasure.files.summary()), status,
         erasure.erasure_id),
    )


def list_erasures(conn: psycopg.Connection) -> list[str]:
    """`warehouse forget --list`: one line per erasure (the audit, no personal data)."""
    if conn.execute("select to_regclass('ops.erasures')").fetchone() in (None, (None,)):
        conn.rollback()
        return ["no erasures recorded"]
    rows = conn.execute(
        "select erasure_id, requested_at, finished_at, status, os_user, db_role, org_id,"
        " reason, row_counts, files from ops.erasures order by erasure_id"
    ).fetchall()
    conn.rollback()
    lines = []
    for (erasure_id, requested, finished, status, os_user, role, org, why, counts,
         files) in rows:
        deleted = sum(item.get("deleted", 0) for item in counts.values())
        redacted = sum(item.get("redacted", 0) for item in counts.values())
        lines.append(
            f"{erasure_id}  {requested:%Y-%m-%d %H:%M:%S%z}  {status}"
            f"{'' if finished is None else f' {finished:%H:%M:%S}'}  by {os_user or '?'}"
            f" (role {role})  org {org or 'all'}  {deleted} rows deleted, {redacted} redacted"
            f" in {len(counts)} tables, {len(files.get('rewritten', []))} files rewritten,"
            f" {len(files.get('manual', []))} for the operator  reason: {why or '-'}"
        )
    return lines or ["no erasures recorded"]
