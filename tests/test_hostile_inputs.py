"""A hostile-input corpus: malformed, absurd and non-regular files, each given to
`warehouse load` followed by a good file in the same call.

Every case ends in exactly one of two outcomes, asserted exactly:
- loaded, its bad rows quarantined (file, line, the file's own text, a reason): the line
  printed, the ledger's counts, every quarantine row;
- rejected whole: one clear line naming the file and the problem, a row of
  `raw.rejected_files`, nothing of it in `raw`, exit status 1.
After each case rows read = loaded + quarantined, the ledger, `raw` and `raw.quarantine`
agree, no landing table is left behind, and the good file after it in the same call
loaded.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from loader_fixtures import (
    assert_ledger_balanced,
    count,
    database_fixtures,
    dicts,
    landing_tables,
    ledger,
    load,
    quarantine,
    summary_line,
)

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

module_database, empty_database = database_fixtures("hostile")

ORG_HEADER = "org_id,name,plan,created_at,updated_at\n"
KPI_HEADER = (
    "event_id,attempt_id,session_id,org_id,user_id,scenario_id,event_type,event_value,"
    "timestamp_ms,occurred_at\n"
)
ATTEMPT_HEADER = "attempt_id,org_id,user_id,status,started_at,updated_at,talk_ms,listen_ms\n"
SESSION_HEADER = "session_id,org_id,user_id,session_type,started_at,updated_at,pace_wpm\n"
T0 = "2026-03-01T10:00:00Z"
ORG = "11111111-0000-4000-8000-000000000001"
BIGINT_MAX = "9223372036854775807"
RANGE = "from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z"


def org_row(n: int, name: str | None = None) -> str:
    return f"{n:08x}-0000-4000-8000-00000000000a,{name or f'Org {n}'},pro,{T0},{T0}\n"


def org_json(n: int, name: str | None = None) -> str:
    return json.dumps({"org_id": f"{n:08x}-0000-4000-8000-00000000000b",
                       "name": name or f"Org {n}", "updated_at": T0})


def kpi_row(n: int, timestamp_ms: str = "1500", occurred_at: str = T0) -> str:
    return (f"{n:08x}-0000-4000-8000-00000000000e,{n:08x}-0000-4000-8000-00000000000f,,"
            f"{ORG},user_1,,filler_word,\"{{\"\"word\"\": \"\"um\"\"}}\",{timestamp_ms},"
            f"{occurred_at}\n")


@dataclass
class Loaded:
    stream: str
    read: int
    # (location, raw text, reason) of every quarantined row, in row order
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Rejected:
    stream: str | None
    reason: str  # after "<file name>: "


@dataclass
class Case:
    id: str
    name: str  # file name
    write: Callable[[Path], None]  # writes the file (or whatever it is) at the path
    outcome: Loaded | Rejected
    args: tuple[str, ...] = ()  # before the paths: a stream, a flag


def text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content, encoding="utf-8", newline="")


def data(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def _link_elsewhere(path: Path) -> None:
    secret = path.parent / "elsewhere" / "orgs_secret.csv"
    secret.parent.mkdir()
    secret.write_text(ORG_HEADER + org_row(77))
    path.symlink_to(secret)


STRAY_ROWS = [org_row(n) if n != 3 else org_row(3, 'us"er') for n in range(1, 10)]
UNTERMINATED_ROWS = [org_row(n) if n != 3 else org_row(3, '"Org 3') for n in range(1, 54)]
LATIN1 = org_json(2).encode().replace(b"Org 2", b"Org \xe9")
NUL_LINE = org_json(2).encode().replace(b"Org 2", b"O\x00rg")
DEEP = "[" * 100_000 + "]" * 100_000

CASES = [
    # --- silent loss before: quote problems are found, never re-parsed into other rows
    Case("stray_quote_in_unquoted_field", "orgs_stray.csv",
         text(ORG_HEADER + "".join(STRAY_ROWS)),
         Loaded("orgs", 9, [("line 4", STRAY_ROWS[2].rstrip("\n"),
                             'malformed CSV: field 2: a quote inside an unquoted field (stray '
                             'quote; RFC 4180 quotes the whole field and doubles the quote: '
                             '"us""er")')])),
    Case("unterminated_quote_then_50_good_rows", "orgs_unterminated.csv",
         text(ORG_HEADER + "".join(UNTERMINATED_ROWS)),
         Loaded("orgs", 53, [("line 4", UNTERMINATED_ROWS[2].rstrip("\n"),
                              "malformed CSV: field 2: a quote opens a quoted field that is "
                              "never closed (unterminated quote)")])),
    Case("text_after_closing_quote", "orgs_after_quote.csv",
         text(ORG_HEADER + org_row(1) + org_row(2, '"Org"s') + org_row(3)),
         Loaded("orgs", 3, [("line 3", org_row(2, '"Org"s').rstrip("\n"),
                             "malformed CSV: field 2: text after the closing quote of a quoted "
                             "field: a stray or unbalanced quote")])),
    Case("stray_quote_among_quoted_json_values", "kpi_events_stray.csv",
         text(KPI_HEADER + "".join(kpi_row(n) for n in range(1, 6))
              + kpi_row(6).replace("user_1", 'us"er_1') + "".join(kpi_row(n) for n in range(7, 9))),
         Loaded("kpi_events", 8, [("line 7", kpi_row(6).replace("user_1", 'us"er_1').rstrip("\n"),
                                   "malformed CSV: field 5: a quote inside an unquoted field "
                                   "(stray quote; RFC 4180 quotes the whole field and doubles "
                                   'the quote: "us""er")')])),
    # --- one file that stopped everything after it
    Case("carriage_return_line_ends", "orgs_mac.csv",
         text((ORG_HEADER + org_row(1) + org_row(2)).replace("\n", "\r")),
         Rejected("orgs", "line 1: carriage returns alone end its lines (old Mac style); CSV "
                          "lines end with \\n or \\r\\n (RFC 4180): nothing loaded")),
    Case("mixed_line_ends_load", "orgs_mixed.csv",
         text(ORG_HEADER + org_row(1).replace("\n", "\r\n") + org_row(2) + org_row(3)),
         Loaded("orgs", 3)),
    Case("fifo", "orgs_pipe.csv", lambda path: os.mkfifo(path),
         Rejected("orgs", "is not a regular file but a named pipe (FIFO): refused")),
    Case("symlink", "orgs_link.csv",
         lambda path: _link_elsewhere(path),
         Rejected("orgs", "is a symbolic link (to {target}): refused; files are loaded from "
                          "their own location (warehouse load --follow-symlinks loads what a "
                          "link points to)")),
    Case("dangling_symlink", "orgs_dangling.csv",
         lambda path: path.symlink_to(path.parent / "gone.csv"),
         Rejected("orgs", "is a symbolic link (to {target}): refused; files are loaded from "
                          "their own location (warehouse load --follow-symlinks loads what a "
                          "link points to)")),
    Case("empty_folder", "empty", lambda path: path.mkdir(),
         Rejected(None, "is a folder holding no data files (expected .csv, .csv.gz, .jsonl, "
                        ".ndjson, .jsonl.gz, .ndjson.gz or .parquet)")),
    Case("folder_named_like_a_file", "orgs_folder.csv", lambda path: path.mkdir(),
         Rejected(None, "is a folder holding no data files (expected .csv, .csv.gz, .jsonl, "
                        ".ndjson, .jsonl.gz, .ndjson.gz or .parquet)")),
    Case("no_such_file", "orgs_missing.csv", lambda path: None,
         Rejected("orgs", "no such file or folder")),
    # --- one row that broke every later build: quarantined by the plausibility limits
    Case("kpi_timestamp_ms_bigint_max", "kpi_events_overflow.csv",
         text(KPI_HEADER + kpi_row(1) + kpi_row(2, BIGINT_MAX, "") + kpi_row(3)),
         Loaded("kpi_events", 3, [("line 3", kpi_row(2, BIGINT_MAX, "").rstrip("\n"),
                                   f"timestamp_ms must be <= 86400000, got '{BIGINT_MAX}'")])),
    Case("kpi_timestamp_ms_a_day_loads", "kpi_events_a_day.csv",
         text(KPI_HEADER + kpi_row(1, "86400000", "")), Loaded("kpi_events", 1)),
    Case("session_pace_1e308", "sessions_pace.csv",
         text(SESSION_HEADER + f"{ORG[:-1]}2,{ORG},user_1,roleplay,{T0},{T0},130\n"
              + f"{ORG[:-1]}3,{ORG},user_1,roleplay,{T0},{T0},1e308\n"),
         Loaded("sessions", 2, [("line 3", f"{ORG[:-1]}3,{ORG},user_1,roleplay,{T0},{T0},1e308",
                                 "pace_wpm must be <= 1000, got '1e+308'")])),
    Case("attempt_talk_ms_bigint_max", "attempts_talk.csv",
         text(ATTEMPT_HEADER + f"{ORG[:-1]}4,{ORG},user_1,completed,{T0},{T0},"
              f"{BIGINT_MAX},{BIGINT_MAX}\n"),
         Loaded("attempts", 1, [("line 2", f"{ORG[:-1]}4,{ORG},user_1,completed,{T0},{T0},"
                                           f"{BIGINT_MAX},{BIGINT_MAX}",
                                 f"talk_ms must be <= 86400000, got '{BIGINT_MAX}'")])),
    Case("number_beyond_double", "sessions_huge.csv",
         text(SESSION_HEADER + f"{ORG[:-1]}5,{ORG},user_1,roleplay,{T0},{T0},1e400\n"),
         Loaded("sessions", 1, [("line 2", f"{ORG[:-1]}5,{ORG},user_1,roleplay,{T0},{T0},1e400",
                                 "pace_wpm is not a number, got '1e400'")])),
    Case("timestamps_outside_2000_2100", "orgs_years.csv",
         text(ORG_HEADER
              + f"{ORG[:-1]}6,a,pro,1970-01-01T00:00:00Z,{T0}\n"
              + f"{ORG[:-1]}7,b,pro,0001-01-01T00:00:00Z,{T0}\n"
              + f"{ORG[:-1]}8,c,pro,{T0},9999-12-31T00:00:00Z\n"
              + f"{ORG[:-1]}9,d,pro,1999-12-31T23:59:59Z,{T0}\n"
              + f"{ORG[:-2]}10,e,pro,2000-01-01T00:00:00Z,2099-12-31T23:59:59.999Z\n"
              + f"{ORG[:-2]}11,f,pro,{T0},2100-01-01T00:00:00Z\n"),
         Loaded("orgs", 6, [
             ("line 2", f"{ORG[:-1]}6,a,pro,1970-01-01T00:00:00Z,{T0}",
              f"created_at is out of range ({RANGE}), got '1970-01-01T00:00:00Z'"),
             ("line 3", f"{ORG[:-1]}7,b,pro,0001-01-01T00:00:00Z,{T0}",
              f"created_at is out of range ({RANGE}), got '0001-01-01T00:00:00Z'"),
             ("line 4", f"{ORG[:-1]}8,c,pro,{T0},9999-12-31T00:00:00Z",
              f"updated_at is out of range ({RANGE}), got '9999-12-31T00:00:00Z'"),
             ("line 5", f"{ORG[:-1]}9,d,pro,1999-12-31T23:59:59Z,{T0}",
              f"created_at is out of range ({RANGE}), got '1999-12-31T23:59:59Z'"),
             ("line 7", f"{ORG[:-2]}11,f,pro,{T0},2100-01-01T00:00:00Z",
              f"updated_at is out of range ({RANGE}), got '2100-01-01T00:00:00Z'"),
         ])),
    Case("ndjson_timestamps_outside_2000_2100", "orgs_years.jsonl",
         text(json.dumps({"org_id": ORG, "name": "a", "updated_at": "1970-01-01T00:00:00Z"})
              + "\n" + org_json(1) + "\n"),
         Loaded("orgs", 2, [("line 1", json.dumps({"org_id": ORG, "name": "a",
                                                   "updated_at": "1970-01-01T00:00:00Z"}),
                             f"updated_at is out of range ({RANGE}), got "
                             "'1970-01-01T00:00:00Z'")])),
    # --- NDJSON: one bad line is one quarantined row, never the whole file
    Case("ndjson_latin1_line", "orgs_latin1.jsonl",
         data((org_json(1) + "\n").encode() + LATIN1 + b"\n" + (org_json(3) + "\n").encode()),
         Loaded("orgs", 3, [("line 2", LATIN1.decode("utf-8", "replace"),
                             f"line is not valid UTF-8 (byte 0xe9 at {LATIN1.index(0xE9) + 1})")])),
    Case("ndjson_nul_byte_line", "orgs_nul.jsonl",
         data((org_json(1) + "\n").encode() + NUL_LINE + b"\n"),
         Loaded("orgs", 2, [("line 2", NUL_LINE.decode().replace("\x00", "\\x00"),
                             "line contains a NUL byte")])),
    Case("ndjson_escaped_nul", "orgs_escaped_nul.jsonl",
         text(org_json(1) + "\n" + org_json(2, "O\x00rg") + "\n"),
         Loaded("orgs", 2, [("line 2", org_json(2, "O\x00rg"), "line is not valid JSON")])),
    Case("ndjson_nested_100000_levels", "orgs_deep.jsonl",
         text(org_json(1) + "\n" + DEEP + "\n" + org_json(3) + "\n"),
         Loaded("orgs", 3, [("line 2", DEEP, "line is nested deeper than 512 levels")])),
    Case("ndjson_byte_order_mark", "orgs_bom.jsonl",
         data(b"\xef\xbb\xbf" + (org_json(1) + "\n" + org_json(2) + "\n").encode()),
         Loaded("orgs", 2)),
    Case("ndjson_crlf", "orgs_crlf.jsonl",
         text(org_json(1) + "\r\n" + org_json(2) + "\r\n"), Loaded("orgs", 2)),
    Case("ndjson_not_json_and_array", "orgs_notjson.jsonl",
         text(org_json(1) + "\n{\"org_id\": \n[1, 2]\n" + org_json(4) + "\n"),
         Loaded("orgs", 4, [("line 2", '{"org_id": ', "line is not valid JSON"),
                            ("line 3", "[1, 2]", "line is a JSON array, not an object")])),
    Case("csv_nul_byte", "orgs_nul.csv",
         data((ORG_HEADER + org_row(1) + org_row(2, "O\x00rg") + org_row(3)).encode()),
         Loaded("orgs", 3, [("line 3", org_row(2, "O\\x00rg").rstrip("\n"),
                             "row contains a NUL byte")])),
    Case("csv_latin1_row", "orgs_latin1.csv",
         data((ORG_HEADER + org_row(1)).encode() + org_row(2, "Org \xe9").encode("latin-1")
              + org_row(3).encode()),
         Loaded("orgs", 3, [("line 3", org_row(2, "Org \ufffd").rstrip("\n"),
                             "row is not valid UTF-8")])),
    Case("csv_ragged_row", "orgs_ragged.csv",
         text(ORG_HEADER + org_row(1) + org_row(2).replace("\n", ",extra\n") + org_row(3)),
         Loaded("orgs", 3, [("line 3", org_row(2).replace("\n", ",extra").rstrip("\n"),
                             "row has 6 fields, the header has 5")])),
    # --- rejected whole, as before
    Case("empty_file", "orgs_empty.csv", text(""),
         Rejected("orgs", "is empty: a CSV file needs a header row")),
    Case("missing_required_column", "orgs_noname.csv", text("org_id,updated_at\n"),
         Rejected("orgs", "lacks required column(s) name for stream orgs")),
    Case("duplicate_column", "orgs_dup.csv", text("org_id,name,name,updated_at\n"),
         Rejected("orgs", "duplicate column(s) in header: name")),
    Case("not_gzip", "orgs_fake.csv.gz", text(ORG_HEADER + org_row(1)),
         Rejected("orgs", "cannot be read as csv: Not a gzipped file (b'or')")),
    Case("truncated_gzip", "orgs_cut.csv.gz",
         data(gzip.compress((ORG_HEADER + org_row(1) * 50).encode())[:60]),
         Rejected("orgs", "cannot be read as csv: Compressed file ended before the "
                          "end-of-stream marker was reached")),
    Case("not_parquet", "orgs_fake.parquet", text("PAR1 not really"),
         Rejected("orgs", "cannot be read as Parquet: Parquet magic bytes not found in "
                          "footer. Either the file is corrupted or this is not a parquet "
                          "file.")),
    Case("unknown_stream", "leads.csv", text("a,b\n1,2\n"),
         Rejected(None, "cannot tell the stream from the file name (expected a name starting "
                        "with orgs, users, scenarios, attempts, sessions, kpi_events)")),
    Case("unknown_format", "orgs.xlsx", text("not a sheet"),
         Rejected("orgs", "unknown format: expected .csv, .csv.gz, .jsonl, .ndjson, .jsonl.gz, "
                          ".ndjson.gz or .parquet")),
]


def _target(path: Path) -> str:
    return os.readlink(path) if path.is_symlink() else ""


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_file(empty_database, tmp_path: Path, case: Case) -> None:
    db = empty_database
    path = tmp_path / case.name
    case.write(path)
    # a good file after it in the same call: kpi_events sort last, "~" after any name
    following = tmp_path / "kpi_events~next.csv"
    following.write_text(KPI_HEADER + kpi_row(999))
    result = load(db, *case.args, path, following, check=False)
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    outcome = case.outcome

    assert summary_line(following, "kpi_events", 1, 1, 0) in result.stdout.splitlines()
    assert "Traceback" not in result.stderr
    entries = {entry["file_name"]: entry for entry in ledger(db)}
    assert entries[following.name]["rows_loaded"] == 1

    if isinstance(outcome, Rejected):
        reason = f"{case.name}: " + outcome.reason.format(target=_target(path))
        assert f"{path}: REJECTED: {reason}" in result.stderr.splitlines(), lines
        assert result.returncode == 1
        assert dicts(db, "select stream, file_name, reason from raw.rejected_files") == [
            {"stream": outcome.stream, "file_name": case.name, "reason": reason}]
        assert sorted(entries) == [following.name]
        assert quarantine(db) == []
    else:
        quarantined = len(outcome.quarantined)
        line = summary_line(path, outcome.stream, outcome.read, outcome.read - quarantined,
                            quarantined)
        assert any(printed.startswith(line) for printed in result.stdout.splitlines()), lines
        assert result.returncode == 0, lines
        assert count(db, "raw.rejected_files") == 0
        entry = entries[case.name]
        assert (entry["stream"], entry["rows_read"], entry["rows_loaded"],
                entry["rows_quarantined"]) == (
            outcome.stream, outcome.read, outcome.read - quarantined, quarantined)
        assert [(row["location"], row["raw_row"], row["reason"])
                for row in quarantine(db, case.name)] == outcome.quarantined
        assert count(db, f"raw.{outcome.stream}") == outcome.read - quarantined + (
            1 if outcome.stream == "kpi_events" else 0)
    assert_ledger_balanced(db)
    assert landing_tables(db) == []


def test_symlink_followed_on_request(empty_database, tmp_path: Path) -> None:
    """`--follow-symlinks` loads what a link points to (its name gives the stream)."""
    target = tmp_path / "elsewhere" / "exported.csv"
    target.parent.mkdir()
    target.write_text(ORG_HEADER + org_row(1) + org_row(2))
    link = tmp_path / "orgs_link.csv"
    link.symlink_to(target)
    result = load(empty_database, "--follow-symlinks", link)
    assert result.stdout.splitlines() == [summary_line(link, "orgs", 2, 2, 0)]
    assert count(empty_database, "raw.orgs") == 2


def test_symlinks_and_pipes_in_a_folder(empty_database, tmp_path: Path) -> None:
    """In a folder, links (to files or folders) and FIFOs are refused one by one; the
    regular files beside them load."""
    folder = tmp_path / "drop"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "orgs_x.csv").write_text(ORG_HEADER + org_row(5))
    (folder / "orgs_a.csv").write_text(ORG_HEADER + org_row(1))
    (folder / "orgs_link.csv").symlink_to(tmp_path / "outside" / "orgs_x.csv")
    (folder / "orgs_dirlink").symlink_to(tmp_path / "outside")
    os.mkfifo(folder / "orgs_pipe.csv")
    result = load(empty_database, folder, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [summary_line(folder / "orgs_a.csv", "orgs", 1, 1, 0)]
    link_reason = ("is a symbolic link (to {}): refused; files are loaded from their own "
                   "location (warehouse load --follow-symlinks loads what a link points to)")
    assert sorted(result.stderr.splitlines()) == sorted([
        f"{folder / 'orgs_dirlink'}: REJECTED: orgs_dirlink: "
        + link_reason.format(tmp_path / "outside"),
        f"{folder / 'orgs_link.csv'}: REJECTED: orgs_link.csv: "
        + link_reason.format(tmp_path / "outside" / "orgs_x.csv"),
        f"{folder / 'orgs_pipe.csv'}: REJECTED: orgs_pipe.csv: is not a regular file but a "
        "named pipe (FIFO): refused",
    ])
    assert count(empty_database, "raw.orgs") == 1
    assert count(empty_database, "raw.rejected_files") == 3


def test_already_loaded_under_another_stream(empty_database, tmp_path: Path) -> None:
    """The same bytes named as another stream: reported with the stream they loaded as."""
    path = tmp_path / "orgs.csv"
    path.write_text(ORG_HEADER + org_row(1))
    load(empty_database, path)
    again = load(empty_database, "kpi_events", path)
    assert again.stdout.splitlines() == [
        f"{path}: orgs: already loaded (same content), nothing changed; not loaded again as "
        "kpi_events: the same content was loaded as orgs from orgs.csv"]
    assert count(empty_database, "raw.kpi_events") == 0


def test_retry_later_only_for_errors_a_retry_can_cure(empty_database) -> None:
    """`retry later` (and no rejection recorded) only for the database's state: a lost
    connection, a lock not granted in time; a data error or a program limit is the file's,
    and retrying it can never help."""
    import psycopg

    from loaders.load import retryable

    def error_of(statement: str, conn: psycopg.Connection) -> psycopg.Error:
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(statement)
        conn.rollback()
        return raised.value

    with empty_database.connect() as conn, empty_database.connect() as other:
        assert not retryable(error_of("select 1 / 0", conn))
        assert not retryable(error_of("select repeat('[', 100000)::jsonb", conn))
        assert not retryable(error_of("select E'\\\\xff'::bytea::text::int", conn))
        other.execute("create table held (x int)")
        other.commit()
        other.execute("lock table held")
        conn.execute("set lock_timeout = '50ms'")
        assert retryable(error_of("select * from held", conn))
        other.rollback()
        pid = conn.info.backend_pid
        other.execute("select pg_terminate_backend(%s)", (pid,))
        other.commit()
        with pytest.raises(psycopg.Error) as lost:
            conn.execute("select 1")
        assert retryable(lost.value)


def test_values_at_the_limits_build(fresh_database, tmp_path: Path) -> None:
    """Every value inside the plausibility limits, at its edge, loads and builds: no mart's
    arithmetic overflows (the limits are what keeps it safe)."""
    db = fresh_database
    user = "user_edge"
    attempts = [
        (f"{ORG[:-1]}a", "2000-01-01T00:00:00Z", "2000-01-02T00:00:00Z"),
        (f"{ORG[:-1]}b", "2099-12-31T00:00:00Z", "2099-12-31T23:59:59Z"),
        (f"{ORG[:-1]}c", "2026-11-19T10:00:00Z", "2026-11-19T10:30:00Z"),
    ]
    (tmp_path / "orgs.csv").write_text(ORG_HEADER + f"{ORG},Edge,pro,{T0},{T0}\n")
    (tmp_path / "users.csv").write_text(
        "user_id,org_id,role,timezone,updated_at\n" + f"{user},{ORG},trainee,Pacific/Kiritimati,"
        f"{T0}\n")
    (tmp_path / "attempts.csv").write_text(
        "attempt_id,org_id,user_id,status,score,duration_seconds,talk_ms,listen_ms,"
        "started_at,ended_at,updated_at\n" + "".join(
            f"{attempt},{ORG},{user},completed,100,86400,86400000,86400000,{start},{end},{T0}\n"
            for attempt, start, end in attempts))
    (tmp_path / "sessions.csv").write_text(
        "session_id,org_id,user_id,attempt_id,session_type,started_at,duration_ms,"
        "words_spoken,score,pace_wpm,pitch_hz,volume_db,pauses_per_min,clarity,confidence,"
        "updated_at\n" + "".join(
            f"{attempt[:-1]}{n},{ORG},{user},{attempt},roleplay,{start},86400000,1000000,"
            f"{score},{pace},{pitch},{volume},{pauses},100,0,{T0}\n"
            for n, ((attempt, start, _), score, pace, pitch, volume, pauses) in enumerate(zip(
                attempts, (0, 100, 50), (1000, 0, 500), (5000, 0, 2500), (-200, 200, 0),
                (1000, 0, 500), strict=True))))
    (tmp_path / "kpi_events.csv").write_text(KPI_HEADER + "".join(
        f"{n:08x}-0000-4000-8000-0000000000ee,{attempt},,{ORG},{user},,long_pause,"
        f"\"{{\"\"seconds\"\": 86400}}\",{ms},\n"
        for n, (attempt, ms) in enumerate(
            [(attempts[0][0], 0), (attempts[1][0], 86_400_000), (attempts[2][0], 86_400_000)])))
    result = db.warehouse("load", str(tmp_path))
    assert "quarantined" in result.stdout and "REJECTED" not in result.stdout + result.stderr
    assert count(db, "raw.quarantine") == 0
    db.build()
    assert db.query(
        "select count(*), max(occurred_at) from marts.fact_kpi_events") == [
        (3, dt_utc(2100, 1, 1))]
    assert db.query("select count(*) from marts.fact_scenario_attempts") == [(3,)]
    assert db.query("select count(*) from marts.fact_sessions") == [(3,)]
    assert db.query("select count(*) > 0 from marts.user_metric_stats") == [(True,)]


def dt_utc(*parts: int):
    import datetime as dt

    return dt.datetime(*parts, tzinfo=dt.UTC)
