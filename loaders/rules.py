"""Set-based validation: one SQL `case` expression per stream naming a row's first problem.

Every rule of raw-inputs.md is written here once, as SQL generated from the stream
declarations, and evaluated by PostgreSQL over a whole file at a time.
"""

from __future__ import annotations

from psycopg import sql

from loaders.streams import (
    INTEGER,
    JSON_ARRAY,
    JSON_OBJECT,
    NUMBER,
    TIMESTAMP,
    UUID,
    Column,
    Stream,
)

# PostgreSQL's timestamptz input also takes words like 'now' or 'epoch': only ISO 8601 counts
ISO_DATE_START = r"^\s*\d{4}-\d{2}-\d{2}"


def _shown(column: sql.Composable) -> sql.Composable:
    return sql.SQL("coalesce(quote_literal(left({}, 80)), 'empty')").format(column)


def _format_checks(column: Column, ref: sql.Composable) -> list[tuple[sql.Composable, sql.Composable]]:
    """(condition that is true when the value is bad, reason) pairs, checked in order."""
    name = column.name
    got = _shown(ref)
    checks: list[tuple[sql.Composable, sql.Composable]] = []

    def reason(text: str, with_value: bool = True) -> sql.Composable:
        if with_value:
            return sql.SQL("{} || ', got ' || {}").format(sql.Literal(f"{name} {text}"), got)
        return sql.Literal(f"{name} {text}")

    if column.kind == UUID:
        checks.append(
            (sql.SQL("not pg_input_is_valid({}, 'uuid')").format(ref), reason("is not a UUID"))
        )
    elif column.kind == TIMESTAMP:
        checks.append(
            (
                sql.SQL(
                    "case when pg_input_is_valid({r}, 'timestamptz') then {r} !~ {iso} "
                    "else true end"
                ).format(r=ref, iso=sql.Literal(ISO_DATE_START)),
                reason("is not an ISO 8601 timestamp"),
            )
        )
    elif column.kind in (NUMBER, INTEGER):
        # numeric input also takes NaN and Infinity, which are not measurements
        checks.append(
            (
                sql.SQL(
                    "not pg_input_is_valid({r}, 'numeric') or strpos(lower({r}), 'n') > 0"
                ).format(r=ref),
                reason("is not a number"),
            )
        )
        if column.kind == INTEGER:
            checks.append(
                (
                    sql.SQL(
                        "not pg_input_is_valid({r}, 'bigint') "
                        "and {r}::numeric <> trunc({r}::numeric)"
                    ).format(r=ref),
                    reason("is not a whole number"),
                )
            )
        if column.minimum is not None:
            checks.append(
                (
                    sql.SQL("{}::numeric < {}").format(ref, sql.Literal(column.minimum)),
                    reason(f"must be >= {column.minimum:g}"),
                )
            )
        if column.maximum is not None:
            checks.append(
                (
                    sql.SQL("{}::numeric > {}").format(ref, sql.Literal(column.maximum)),
                    reason(f"must be <= {column.maximum:g}"),
                )
            )
    elif column.kind in (JSON_ARRAY, JSON_OBJECT):
        expected = "array" if column.kind == JSON_ARRAY else "object"
        checks.append(
            (sql.SQL("not pg_input_is_valid({}, 'jsonb')").format(ref), reason("is not valid JSON"))
        )
        checks.append(
            (
                sql.SQL("jsonb_typeof({}::jsonb) <> {}").format(ref, sql.Literal(expected)),
                reason(f"must be a JSON {expected}"),
            )
        )
        if column.kind == JSON_ARRAY:
            checks.append(
                (
                    sql.SQL(
                        "exists (select from jsonb_array_elements({}::jsonb) as element "
                        "where jsonb_typeof(element) <> 'string')"
                    ).format(ref),
                    reason("must be a JSON array of strings"),
                )
            )
    if column.allowed:
        checks.append(
            (
                sql.SQL("{} not in ({})").format(
                    ref, sql.SQL(", ").join(sql.Literal(value) for value in column.allowed)
                ),
                reason("must be one of " + ", ".join(column.allowed)),
            )
        )
    if column.allowed_query:
        checks.append(
            (
                sql.SQL("{} not in ({})").format(ref, sql.SQL(column.allowed_query)),
                reason("is not a known value"),
            )
        )
    return checks


def problem_expression(stream: Stream) -> sql.Composable:
    """A SQL expression: null for a good row, else the reason of its first problem."""
    branches: list[sql.Composable] = []
    for column in stream.columns:
        ref = sql.Identifier(column.name)
        if column.required:
            branches.append(
                sql.SQL("when {} is null then {}").format(
                    ref, sql.Literal(f"{column.name} is required but missing or empty")
                )
            )
        for condition, reason in _format_checks(column, ref):
            branches.append(
                sql.SQL("when {} is not null and ({}) then {}").format(ref, condition, reason)
            )
    for rule in stream.row_rules:
        branches.append(
            sql.SQL("when {} then {}").format(sql.SQL(rule.condition_sql), sql.Literal(rule.reason))
        )
    branches.append(
        sql.SQL(
            "when _extra ? '_schema_version' and _extra->>'_schema_version' !~ '^1(\\.|$)' "
            "then 'unsupported _schema_version ' || (_extra->>'_schema_version') "
            "|| ' (1.x accepted)'"
        )
    )
    return sql.SQL("case {} end").format(sql.SQL(" ").join(branches))
