"""DDL of the `raw` schema, derived from the stream declarations."""

from __future__ import annotations

import psycopg
from psycopg import sql

from loaders.streams import STREAMS, Stream

LEDGER_DDL = """
create schema if not exists raw;
comment on schema raw is 'Loader landing tables (typed, as delivered), load ledger and quarantine.';
create schema if not exists raw_landing;
comment on schema raw_landing is
    'Files being loaded; a table here without a ledger row is an interrupted load.';
create sequence if not exists raw.load_id_seq;

create table if not exists raw.load_ledger (
    load_id bigint primary key,
    stream text not null,
    file_name text not null,
    file_path text not null,
    file_format text not null,
    file_bytes bigint not null,
    content_sha256 text not null,
    schema_version text,
    rows_read bigint not null default 0,
    rows_loaded bigint not null default 0,
    rows_quarantined bigint not null default 0,
    storage_table text,
    started_at timestamptz not null default clock_timestamp(),
    loaded_at timestamptz
);
create unique index if not exists load_ledger_content_uq on raw.load_ledger (content_sha256);
comment on table raw.load_ledger is
    'One row per loaded file, keyed by content hash: the same content never loads twice.';

create table if not exists raw.quarantine (
    load_id bigint not null references raw.load_ledger (load_id),
    stream text not null,
    file_name text not null,
    row_number bigint not null,
    location text not null,
    raw_row text,
    reason text not null,
    quarantined_at timestamptz not null default now(),
    primary key (load_id, row_number)
);
comment on table raw.quarantine is
    'Rows that failed parsing or a rule, with file, row number, raw text and the reason.';

create table if not exists raw.rejected_files (
    rejection_id bigint generated always as identity primary key,
    stream text,
    file_name text not null,
    file_path text not null,
    content_sha256 text,
    reason text not null,
    rejected_at timestamptz not null default now()
);
comment on table raw.rejected_files is
    'Files rejected whole (unreadable, or missing a required column); none of their rows loaded.';

create or replace function raw.input_is_valid(value text, type_name text) returns boolean
language plpgsql stable as $$
begin
    execute format('select %L::%s', value, type_name);
    return true;
exception when data_exception then
    return false;
end
$$;
comment on function raw.input_is_valid(text, text) is
    'Whether value is valid input of type type_name: pg_input_is_valid for PostgreSQL 15, '
    'where the loader calls it only for values its regular expressions do not vouch for.';
"""


def landing_columns(stream: Stream) -> list[sql.Composable]:
    columns: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.sql_type))
        for column in stream.columns
    ]
    columns += [
        sql.SQL("_extra jsonb"),
        sql.SQL("_load_id bigint not null"),
        sql.SQL("_row_number bigint not null"),
    ]
    return columns


def record_key_index_name(table: str) -> str:
    return f"{table}_record_key"


def record_key_index_ddl(stream: Stream, table: str) -> sql.Composed:
    """Versioned streams (newest version wins) index the record key on every raw table: a
    build looks up the earlier versions of the records a new load re-delivers (to recompute
    the users they left) without reading the whole stream. Not for KPI events (first
    delivery wins, and their load speed matters)."""
    if stream.version_column is None:
        return sql.Composed([])
    return sql.SQL("create index if not exists {index} on {table} ({key});").format(
        index=sql.Identifier(record_key_index_name(table)),
        table=sql.Identifier("raw", table),
        key=sql.Identifier(stream.key),
    )


def stream_ddl(stream: Stream) -> sql.Composed:
    table = sql.Identifier("raw", stream.name)
    return sql.SQL(
        "create table if not exists {table} ({columns});"
        "create index if not exists {index} on {table} using brin (_load_id);"
        "{record_key_index}"
        "comment on table {table} is {comment};"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(landing_columns(stream)),
        index=sql.Identifier(f"{stream.name}_load_id_brin"),
        record_key_index=record_key_index_ddl(stream, stream.name),
        comment=sql.Literal(
            f"{stream.description} Typed as delivered (validated rows only); big files "
            "land in child tables (inheritance) created by their load."
        ),
    )


def _raw_schema_complete(conn: psycopg.Connection) -> bool:
    expected = [f"raw.{name}" for name in STREAMS] + [
        "raw.load_ledger", "raw.quarantine", "raw.rejected_files", "raw.load_id_seq",
    ] + [
        f"raw.{record_key_index_name(stream.name)}"
        for stream in STREAMS.values() if stream.version_column is not None
    ]
    row = conn.execute(
        "select count(*) = %s and exists (select from pg_namespace where nspname = 'raw_landing')"
        " from unnest(%s::text[]) as name where to_regclass(name) is not null",
        (len(expected), expected),
    ).fetchone()
    conn.commit()
    complete = row is not None and bool(row[0])
    function = conn.execute(
        "select to_regprocedure('raw.input_is_valid(text, text)') is not null"
    ).fetchone()
    conn.commit()
    return complete and function is not None and bool(function[0])


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema idempotently; serialised so concurrent loaders do not race.
    When everything exists it takes no lock (a load publishing meanwhile is not waited for)."""
    if _raw_schema_complete(conn):
        return
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('warehouse.raw_schema'))")
        conn.execute(LEDGER_DDL)
        for stream in STREAMS.values():
            conn.execute(stream_ddl(stream))
