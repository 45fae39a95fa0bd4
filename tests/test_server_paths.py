"""The loader's per-version paths: features read from the server's version number, and the
shape tests that stand in for pg_input_is_valid on PostgreSQL 15 (they must never vouch for
a value the type's own parser refuses, and must vouch for ordinary values, or every row
takes the slow exact test)."""

from __future__ import annotations

import pytest
from psycopg import sql

from loaders.rules import CERTAINLY_VALID, VOUCHED_TYPES, certainly_valid
from loaders.schema import ensure_raw_schema
from loaders.server import Server, UnsupportedServer, server_of, unsupported_message

pytestmark = pytest.mark.every_server

ORDINARY = {
    "uuid": ["6f1c2a8e-3b4d-4c5e-9f60-7a8b9c0d1e2f", "6F1C2A8E-3B4D-4C5E-9F60-7A8B9C0D1E2F"],
    "bigint": ["0", "17", "6363", "999999999999999999"],
    "double precision": ["0", "1.5", "-2.25", "72.125", ".5", "3.", "-.5", "100"],
    "timestamptz": [
        "2026-11-20T10:15:00Z", "2026-11-20 10:15:00", "2026-11-20T10:15:00.123456+01:00",
        "2026-11-20", "2024-12-31T23:59:59Z", "2026-04-30T00:00:00-05:00", "2026-01-29T08:00Z",
        "2026-06-03T22:32:30.363Z", "2026-11-20T10:15:00Z", "2026-03-31 23:59:59.5+14:00",
    ],
    "jsonb": [
        "{}", "[]", '{"count": 3}', '{"word": "um", "n": -1.5e2, "ok": true, "x": null}',
        '["a", "b c"]', ' { "k" : "v" } ', '{"emoji": "\u00e9\u4e2d"}',
    ],
}
# accepted or refused by the type's parser: the expressions must not vouch for the refused
TRICKY = {
    "uuid": ["", "xx", "6f1c2a8e3b4d4c5e9f607a8b9c0d1e2f", "{6f1c2a8e-3b4d-4c5e-9f60-7a8b9c0d1e2f}",
             "6f1c2a8e-3b4d-4c5e-9f60-7a8b9c0d1e2", "6f1c2a8e-3b4d-4c5e-9f60-7a8b9c0d1e2g"],
    "bigint": ["9223372036854775807", "9223372036854775808", "-9223372036854775809", "1.0",
               " 5", "1_000", "0x1F", "１２", "", "+", "-", "+42", "-3", "--3"],
    "double precision": ["1e308", "1e309", "1e-400", "NaN", "inf", "-Infinity", "1,5", " 1",
                         "1e", ".", "+.e1", "1" * 400, "0x10", "1_0", "-", "-.", "5-", "1e3",
                         "2.5E-7", "+5", "1.2.3"],
    "timestamptz": ["2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-04-31", "2026-13-01",
                    "2026-11-20T24:00:00Z", "2026-11-20T23:60:00Z", "0000-01-01", "infinity",
                    "epoch", "now", "2026/11/20", "Nov 20 2026", "2026-11-20T10:15:00+15:00",
                    "2026-11-20T10:15:00.1234567Z", "20261120T101500Z",
                    "2026-04-30T00:00:00-0500", "2026-11-20T10:15:00+16:00", "2026-11-20T1:15",
                    "0999-01-01", "2026-02-30", "2026-06-31T00:00:00Z", "2026-11-20T10:15:60Z"],
    "jsonb": ['{"a": 1', '{"a": "\\u0000"}', '{"a": 1e999999}', "[1, 2]", '{"a": {"b": 1}}',
              "{'a': 1}", '{"a": 01}', '{"a": tru}', '["a",]', "\u00a0{}", '{"a": "x\ty"}',
              '{"a": 1.}', '{"a": .5}', '{"a": -}', "nul"],
}


def test_features_follow_the_version_number() -> None:
    assert not Server(150014).copy_on_error and not Server(150014).input_is_valid
    assert not Server(160006).copy_on_error and Server(160006).input_is_valid
    assert Server(170002).copy_on_error and not Server(170002).not_enforced_keys
    assert Server(180006).not_enforced_keys and Server(180006).major == 18
    message = unsupported_message(140012)
    assert message.startswith("PostgreSQL 14.12 found; the warehouse supports PostgreSQL 15 to")


def test_the_session_server_is_supported(fresh_database) -> None:
    with fresh_database.connect() as conn:
        server = server_of(conn)
        assert server.version_num == conn.info.server_version >= 150000
        assert server_of(conn) is server  # read once per connection


def test_an_older_server_is_refused_before_anything(fresh_database) -> None:
    class Info:
        server_version = 140012

    class OldConnection:  # what psycopg reports for a PostgreSQL 14 server
        info = Info()

    with pytest.raises(UnsupportedServer, match=r"PostgreSQL 14\.12 found"):
        server_of(OldConnection())  # type: ignore[arg-type]


@pytest.mark.parametrize("type_name", VOUCHED_TYPES)
def test_shape_tests_vouch_only_for_valid_input(fresh_database, type_name: str) -> None:
    with fresh_database.connect() as conn:
        ensure_raw_schema(conn)
        values = ORDINARY[type_name] + TRICKY[type_name]
        value = sql.Identifier("value")
        rows = conn.execute(
            sql.SQL(
                "select value, coalesce({vouched}, false), raw.input_is_valid(value, {type_name})"
                " from unnest(%s::text[]) as value"
            ).format(
                vouched=certainly_valid(value, type_name), type_name=sql.Literal(type_name),
            ),
            (values,),
        ).fetchall()
        if server_of(conn).input_is_valid:
            exact = dict(conn.execute(
                "select value, pg_input_is_valid(value, %s) from unnest(%s::text[]) as value",
                (type_name, values),
            ).fetchall())
            assert {value: valid for value, _, valid in rows} == exact
    vouched_but_invalid = [value for value, vouched, valid in rows if vouched and not valid]
    assert vouched_but_invalid == []
    # the same expressions in RE2, as the CSV screen (loaders/csv_screen.py) runs them
    import pyarrow as pa
    import pyarrow.compute as pc

    by_re2 = pc.match_substring_regex(
        pa.array([value for value, _, _ in rows]), CERTAINLY_VALID[type_name]).to_pylist()
    assert [value for (value, vouched, _), re2 in zip(rows, by_re2, strict=True)
            if re2 != vouched] == []
    assert [value for value, vouched, _ in rows if value in ORDINARY[type_name]
            and not vouched] == []
    # the tricky ones include values the parser refuses: the fallback sees them
    assert any(not valid for _, _, valid in rows)


def test_an_error_retrying_cannot_fix_says_what_to_do(fresh_database) -> None:
    import psycopg

    from loaders.load import advice, retryable

    role = f"no_rights_{fresh_database.name}"[:60]
    with fresh_database.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login password 'a-long-password-1'").format(
            sql.Identifier(role)))
    try:
        with psycopg.connect(
            host=fresh_database.env["PGHOST"], port=fresh_database.env.get("PGPORT"),
            dbname=fresh_database.name, user=role, password="a-long-password-1",
        ) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            conn.execute("create schema raw")
        assert not retryable(raised.value)
        assert "lacks a privilege" in advice(raised.value)
    finally:
        with fresh_database.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
