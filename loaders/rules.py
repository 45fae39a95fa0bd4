"""Row rules of raw-inputs.md as SQL, generated from the stream declarations.

Two layers, both set-based and evaluated by PostgreSQL over a whole file at a time:
- type: is the text a UUID, a number, a timestamp, JSON? For CSV on PostgreSQL 17+, COPY
  itself checks this (`on_error ignore` skips each bad row); otherwise `input_is_valid`
  does (pg_input_is_valid from 16; on 15 a conservative regular expression, with an exact
  fallback function for the rest).
- rules: required fields, ranges, lists, JSON shapes, cross-column rules, schema version,
  checked on typed values by `rule_problem`.
"""

from __future__ import annotations

from psycopg import sql

from loaders.server import Server
from loaders.streams import (
    EARLIEST_TIMESTAMP,
    END_OF_TIMESTAMPS,
    INTEGER,
    JSON_ARRAY,
    JSON_OBJECT,
    NUMBER,
    TIMESTAMP,
    UUID,
    Column,
    Stream,
)

# text that starts like an ISO 8601 date-time (the rest is checked by PostgreSQL's parser)
ISO_8601 = (
    r"^\s*\d{4}-?\d{2}-?\d{2}([T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?)?\s*"
    r"([zZ]|[+-]\d{2}(:?\d{2})?)?\s*$"
)

TYPE_PROBLEMS = {
    UUID: "is not a UUID",
    TIMESTAMP: "is not a valid timestamp",
    NUMBER: "is not a number",
    INTEGER: "is not a whole number",
    JSON_ARRAY: "is not valid JSON",
    JSON_OBJECT: "is not valid JSON",
}


# PostgreSQL 15 has no pg_input_is_valid. CERTAINLY_VALID holds, per type, a regular
# expression matching only text the type's parser certainly accepts (narrower than the
# parser, never wider); raw.input_is_valid, exact but slow (an exception block per value),
# sees only the rest. The expressions are plain enough to mean the same in PostgreSQL's
# engine and in RE2 (pyarrow), where the loader screens a CSV while COPY reads it.
_JSON_STRING = r'"[^"\\[:cntrl:]]*"'
_JSON_NUMBER = r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?"
_JSON_SPACE = r"[ \t\n\r]*"
_JSON_SCALAR = f"({_JSON_STRING}|{_JSON_NUMBER}|true|false|null)"
_JSON_MEMBER = f"{_JSON_STRING}{_JSON_SPACE}:{_JSON_SPACE}{_JSON_SCALAR}"
_YEAR_MONTH_DAY = (
    "[1-9][0-9]{3}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)"
    "|(0[13578]|1[02])-31)"
)
CERTAINLY_VALID = {
    "uuid": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "bigint": "^[0-9]{1,18}$",
    "double precision": "^-?([0-9]{1,30}(\\.[0-9]{0,30})?|\\.[0-9]{1,30})$",
    "timestamptz": (
        f"^{_YEAR_MONTH_DAY}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{{1,6}})?)?"
        "([zZ]|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?$"
    ),
    # a flat JSON object, or an array of strings
    "jsonb": (
        f"^{_JSON_SPACE}(\\{{{_JSON_SPACE}({_JSON_MEMBER}({_JSON_SPACE},{_JSON_SPACE}"
        f"{_JSON_MEMBER})*)?{_JSON_SPACE}\\}}|\\[{_JSON_SPACE}({_JSON_STRING}({_JSON_SPACE},"
        f"{_JSON_SPACE}{_JSON_STRING})*)?{_JSON_SPACE}\\]){_JSON_SPACE}$"
    ),
}


def certainly_valid(ref: sql.Composable, sql_type: str) -> sql.Composable:
    """SQL: true only when the (non-null) text `ref` is certainly valid input of
    `sql_type` (false says nothing)."""
    return sql.SQL("{} ~ {}").format(ref, sql.Literal(CERTAINLY_VALID[sql_type]))


VOUCHED_TYPES = tuple(CERTAINLY_VALID)


def input_is_valid(ref: sql.Composable, sql_type: str, server: Server) -> sql.Composable:
    """SQL: is the (non-null) text `ref` valid input of `sql_type`, as its input function
    reads it (pg_input_is_valid from PostgreSQL 16)."""
    if server.input_is_valid:
        return sql.SQL("pg_input_is_valid({}, {})").format(ref, sql.Literal(sql_type))
    return sql.SQL("({vouched} or raw.input_is_valid({r}, {t}))").format(
        vouched=certainly_valid(ref, sql_type), r=ref, t=sql.Literal(sql_type)
    )


def type_problem(column: Column, value: str | None) -> str:
    shown = "empty" if value is None else repr(value[:80])
    return f"{column.name} {TYPE_PROBLEMS.get(column.kind, 'is not valid')}, got {shown}"


def _shown(ref: sql.Composable) -> sql.Composable:
    return sql.SQL("coalesce(quote_literal(left({}::text, 80)), 'empty')").format(ref)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _iso(ref: sql.Composable) -> sql.Composable:
    """A timestamptz shown as ISO 8601 in UTC, as the limits are written."""
    return sql.SQL("""to_char({} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""").format(
        ref)


def _reason(column: Column, text: str, ref: sql.Composable) -> sql.Composable:
    return sql.SQL("{} || ', got ' || {}").format(sql.Literal(f"{column.name} {text}"), _shown(ref))


def format_problem(stream: Stream, value_of, server: Server) -> sql.Composable:
    """For text values (NDJSON): the first value that does not parse as its type, or null.

    `value_of(column)` gives the SQL text expression of a column's value."""
    branches: list[sql.Composable] = []
    for column in stream.columns:
        if column.sql_type == "text":
            continue
        ref = value_of(column)
        branches.append(
            sql.SQL("when {r} is not null and not {valid} then {why}").format(
                r=ref, valid=input_is_valid(ref, column.sql_type, server),
                why=_reason(column, TYPE_PROBLEMS[column.kind], ref),
            )
        )
        if column.kind == TIMESTAMP:
            branches.append(
                sql.SQL("when {r} is not null and {r} !~ {iso} then {why}").format(
                    r=ref, iso=sql.Literal(ISO_8601),
                    why=_reason(column, "is not a finite ISO 8601 timestamp", ref),
                )
            )
    if not branches:
        return sql.SQL("null::text")
    return sql.SQL("case {} end").format(sql.SQL(" ").join(branches))


def _column_rules(column: Column) -> list[tuple[sql.Composable, sql.Composable]]:
    ref = sql.Identifier(column.name)
    rules: list[tuple[sql.Composable, sql.Composable]] = []
    if column.required:
        rules.append(
            (
                sql.SQL("{} is null").format(ref),
                sql.Literal(f"{column.name} is required but missing or empty"),
            )
        )
    if column.kind == NUMBER:
        rules.append(
            (
                sql.SQL(
                    "{} in ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"
                ).format(ref),
                _reason(column, "is not a finite number", ref),
            )
        )
    if column.kind == TIMESTAMP:
        # PostgreSQL also reads the words 'infinity' and 'now' as timestamps ('epoch' is
        # 1970, outside the plausibility limits below)
        rules.append(
            (
                sql.SQL("not isfinite({r}) or {r} = now()").format(r=ref),
                _reason(column, "is not a finite ISO 8601 timestamp", ref),
            )
        )
        rules.append(
            (
                sql.SQL("{r} < {low}::timestamptz or {r} >= {end}::timestamptz").format(
                    r=ref, low=sql.Literal(EARLIEST_TIMESTAMP),
                    end=sql.Literal(END_OF_TIMESTAMPS),
                ),
                _reason(
                    column,
                    f"is out of range (from {EARLIEST_TIMESTAMP} to before {END_OF_TIMESTAMPS})",
                    _iso(ref),
                ),
            )
        )
    if column.minimum is not None:
        rules.append(
            (
                sql.SQL("{} < {}").format(ref, sql.Literal(column.minimum)),
                _reason(column, f"must be >= {_number(column.minimum)}", ref),
            )
        )
    if column.maximum is not None:
        rules.append(
            (
                sql.SQL("{} > {}").format(ref, sql.Literal(column.maximum)),
                _reason(column, f"must be <= {_number(column.maximum)}", ref),
            )
        )
    if column.kind in (JSON_ARRAY, JSON_OBJECT):
        expected = "array" if column.kind == JSON_ARRAY else "object"
        rules.append(
            (
                sql.SQL("jsonb_typeof({}) <> {}").format(ref, sql.Literal(expected)),
                _reason(column, f"must be a JSON {expected}", ref),
            )
        )
    if column.kind == JSON_ARRAY:
        rules.append(
            (
                sql.SQL(
                    "jsonb_typeof({r}) = 'array' and exists (select from jsonb_array_elements({r})"
                    " as element where jsonb_typeof(element) <> 'string')"
                ).format(r=ref),
                _reason(column, "must be a JSON array of strings", ref),
            )
        )
    if column.allowed:
        rules.append(
            (
                sql.SQL("{} not in ({})").format(
                    ref, sql.SQL(", ").join(sql.Literal(value) for value in column.allowed)
                ),
                _reason(column, "must be one of " + ", ".join(column.allowed), ref),
            )
        )
    if column.allowed_query:
        rules.append(
            (
                sql.SQL("{} not in ({})").format(ref, sql.SQL(column.allowed_query)),
                _reason(column, "is not a known value", ref),
            )
        )
    return rules


def rule_problem(stream: Stream) -> sql.Composable:
    """For typed rows: the reason of a row's first broken rule, or null when it is valid."""
    branches: list[sql.Composable] = []
    for column in stream.columns:
        for condition, reason in _column_rules(column):
            branches.append(sql.SQL("when {} then {}").format(condition, reason))
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
