"""Erased users stay erased: later deliveries of their rows never reach `raw` (issue 17,
docs/privacy.md).

`warehouse forget` (warehouse/forget.py) keeps the erasure list in schema `ops`:
`ops.erased_identifiers` holds salted SHA-256 hashes of each erased user id (and of their
e-mail addresses, lower-cased), never the values; the salt is `ops.erasure_salt`, random
per warehouse. Two set-based steps of the loader read it:

- `quarantine_erased` (rule phase, before the row rules): the landing table's rows whose
  user_id hashes to an erased id (erased in their organisation, or in every one) leave it
  as problems with reason `erased user` and no raw text; a reference to an erased user in
  another row (`manager_id`) becomes null. Ids are hashed once per distinct user of the file.
- `scrub_problems` (publication): any quarantined row whose raw text holds a token hashing
  to an erased id or e-mail keeps its file, line and reason `erased user`, not its text.

With no erasure list (no `warehouse forget` ever ran) each step costs one catalogue lookup.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from loaders.results import Problem
from loaders.streams import Stream

ERASED_REASON = "erased user"
# columns that name another user by id (a row of someone else that points at the person)
USER_REFERENCE_COLUMNS = ("manager_id",)
# what splits a quarantined row's raw text into tokens (CSV, NDJSON, Parquet-as-CSV text)
TOKEN_SEPARATORS = r"[\s,;\"'{}()\[\]:=<>|\\]+"

ERASURE_DDL = """
create schema if not exists ops;
create table if not exists ops.erasure_salt (
    only_row boolean primary key default true check (only_row),
    salt text not null
);
comment on table ops.erasure_salt is
    'The random salt of the erasure list hashes (one row per warehouse; never exported).';
create table if not exists ops.erasures (
    erasure_id bigint generated always as identity primary key,
    requested_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null default 'started',
    os_user text,
    db_role text not null default current_user,
    org_id uuid,
    reason text,
    row_counts jsonb not null default '{}',
    files jsonb not null default '{}'
);
comment on table ops.erasures is
    'Audit of warehouse forget: when, who (OS user, database role), why, rows removed or '
    'redacted per table and files rewritten; no personal data (docs/privacy.md).';
create table if not exists ops.erased_identifiers (
    erasure_id bigint not null references ops.erasures (erasure_id),
    kind text not null check (kind in ('user_id', 'email')),
    value_hash text not null,
    org_id uuid,
    primary key (kind, value_hash, erasure_id)
);
comment on table ops.erased_identifiers is
    'The erasure list: salted SHA-256 of each erased user id and e-mail (lower-cased); '
    'the loader quarantines later rows of these users with reason ''erased user''.';
"""


def hashed(value: sql.Composable) -> sql.Composable:
    """The erasure-list hash of a text expression (the salt is read once per statement)."""
    return sql.SQL(
        "encode(sha256(convert_to((select salt from ops.erasure_salt) || {}, 'UTF8')), 'hex')"
    ).format(value)


def has_erasures(conn: psycopg.Connection | psycopg.Cursor) -> bool:
    row = conn.execute(
        "select to_regclass('ops.erased_identifiers') is not null"
        " and to_regclass('ops.erasure_salt') is not null"
    ).fetchone()
    if row is None or not row[0]:
        return False
    row = conn.execute("select exists (select from ops.erased_identifiers)").fetchone()
    return row is not None and bool(row[0])


def quarantine_erased(
    cur: psycopg.Cursor, stream: Stream, table: sql.Identifier,
    locate: Callable[[int], str],
) -> list[Problem]:
    """Rows of erased users leave the (typed) landing table: problems without raw text."""
    references = [name for name in USER_REFERENCE_COLUMNS if name in stream.column_names]
    if "user_id" not in stream.column_names or not has_erasures(cur):
        return []
    for name in references:
        column = sql.Identifier(name)
        cur.execute(sql.SQL(
            "update {table} set {column} = null where {column} is not null and exists ("
            "select from ops.erased_identifiers where kind = 'user_id' and value_hash = {hash})"
        ).format(table=table, column=column, hash=hashed(column)))
    org = sql.SQL("org_id") if "org_id" in stream.column_names else sql.SQL("null::uuid")
    rows = cur.execute(sql.SQL(
        "with candidates as (select distinct user_id, {org} as org_id from {table}"
        " where user_id is not null),"
        " hits as (select candidates.* from candidates where exists ("
        "  select from ops.erased_identifiers as erased where erased.kind = 'user_id'"
        "  and erased.value_hash = {hash} and (erased.org_id is null"
        "  or candidates.org_id is null or erased.org_id = candidates.org_id)))"
        " delete from {table} as landed using hits where landed.user_id = hits.user_id"
        " and {landed_org} is not distinct from hits.org_id returning landed._row_number"
    ).format(
        org=org, table=table, hash=hashed(sql.SQL("candidates.user_id")),
        landed_org=sql.SQL("landed.org_id") if "org_id" in stream.column_names
        else sql.SQL("null::uuid"),
    )).fetchall()
    return [Problem(number, locate(number), None, ERASED_REASON) for (number,) in rows]


def scrub_problems(conn: psycopg.Connection, problems: list[Problem]) -> None:
    """Quarantined rows of erased users (or naming one) keep file, line and reason only."""
    for problem in problems:
        if problem.reason == ERASED_REASON:
            problem.raw_row = None
    texts = [(index, problem.raw_row) for index, problem in enumerate(problems)
             if problem.raw_row]
    if not texts or not has_erasures(conn):
        return
    rows = conn.execute(sql.SQL(
        "select distinct texts.index from unnest(%s::int[], %s::text[]) as texts(index, raw)"
        " cross join lateral regexp_split_to_table(texts.raw, %s) as token"
        " where token <> '' and exists (select from ops.erased_identifiers as erased"
        " where erased.value_hash in ({hash}, {lower_hash}))"
    ).format(hash=hashed(sql.SQL("token")), lower_hash=hashed(sql.SQL("lower(token)"))),
        ([index for index, _ in texts], [text for _, text in texts], TOKEN_SEPARATORS),
    ).fetchall()
    for (index,) in rows:
        problems[index].raw_row = None
        problems[index].reason = ERASED_REASON
