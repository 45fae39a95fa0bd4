"""`warehouse forget`: a person erased end to end, kept erased, audited.

A generated data set (every stream; CSV, gzip CSV, NDJSON, gzip NDJSON, Parquet;
re-deliveries and bad rows) gets a planted person: one generated trainee renamed to a
unique id, e-mail and name everywhere, plus planted files with a newer version of them, a
colleague whose manager they are, a re-delivered session in Parquet and quarantined rows
(a rule broken, a value COPY cannot type, a user row without id naming their e-mail). The
warehouse is built, the person forgotten, the warehouse built again; then:
- no text, uuid or JSON value of any relation in any schema names the person;
- no kept file names them, and the ledger knows each rewritten file by its new hash;
- every mart and intermediate table equals a second warehouse built from the same files
  with the person's records removed by this test (their reference cleared);
- the original files delivered again quarantine the person's rows as `erased user`
  without raw text, and a full refresh brings nothing of them back.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF, Database
from loader_fixtures import own_database, write_any, write_csv, write_ndjson
from psycopg import sql

SCALE = 0.05
SEED = 7
PLANTED_ID = "user_3ForgetMeZq8PlantedX"
PLANTED_EMAIL = "zelda.forgetmenot@planted.example.org"
PLANTED_NAME = "Zelda Forgetmenot"
NEEDLES = (PLANTED_ID, PLANTED_EMAIL, PLANTED_NAME)
# columns whose values depend on when something ran, not on the data
RUN_TIME_COLUMNS = {"loaded_at", "built_at", "quarantined_at", "dbt_updated_at",
                    "dbt_valid_from", "dbt_valid_to", "dbt_scd_id", "_loaded_at",
                    "invocation_id", "generated_at", "exported_at"}
BATCH_STATE_TABLES = {"int_batch_published_loads", "int_batch_window", "int_batch_loads",
                      "int_batch_users", "int_batch_orgs", "int_batch_attempts"}


# --------------------------------------------------------------------------- files


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _replace_everywhere(folder: Path, replacements: dict[str, str]) -> None:
    for path in folder.iterdir():
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            columns = []
            for column in table.columns:
                if pa.types.is_string(column.type):
                    for old, new in replacements.items():
                        column = pc.replace_substring(column, old, new)
                columns.append(column)
            pq.write_table(pa.table(columns, schema=table.schema), path)
        elif path.name.startswith(("users", "attempts", "sessions", "kpi_events")):
            text = _read_bytes(path).decode()
            for old, new in replacements.items():
                text = text.replace(old, new)
            _write_bytes(path, text.encode())


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_read_bytes(path).decode())))


def _json_rows(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in _read_bytes(path).decode().splitlines() if line]
    return [row for row in rows if row.get("_type") != "schema"]


def _plant(folder: Path) -> dict[str, Any]:
    """Rename a generated trainee to the planted person; add the planted files."""
    users = _csv_rows(folder / "users.csv") + _csv_rows(folder / "users_9001_redelivery.csv")
    sessions = _json_rows(folder / "sessions_0001.jsonl")
    owners = {row.get("user_id") for row in sessions}
    names = [row["name"] for row in users]
    victim = next(
        row for row in users
        if row["role"] == "trainee" and row["user_id"] in owners
        and sum(name.startswith(row["name"]) for name in names)
        == sum(other["user_id"] == row["user_id"] for other in users)
    )
    colleague = next(
        row for row in users
        if row["user_id"] != victim["user_id"] and row["role"] in ("trainee", "manager")
        and row["org_id"] == victim["org_id"]
    )
    _replace_everywhere(folder, {victim["user_id"]: PLANTED_ID, victim["email"]: PLANTED_EMAIL})
    for path in folder.glob("users*.csv"):
        path.write_text(path.read_text().replace(victim["name"], PLANTED_NAME))
    planted = {**victim, "user_id": PLANTED_ID, "email": PLANTED_EMAIL, "name": PLANTED_NAME}

    # a newer version of the person, and a colleague they now manage (NDJSON)
    write_ndjson(folder / "users_9101_forget.jsonl", [
        {**planted, "team": "Renamed Team", "updated_at": "2026-10-01T00:00:00Z"},
        {**colleague, "manager_id": PLANTED_ID, "updated_at": "2026-10-01T00:00:00Z"},
    ])
    # a session of theirs re-delivered, next to someone else's, in Parquet
    theirs = next(row for row in _json_rows(folder / "sessions_0001.jsonl")
                  if row.get("user_id") == PLANTED_ID)
    other = next(row for row in sessions if row.get("user_id") not in (None, victim["user_id"]))
    write_any(folder / "sessions_9101_forget", "parquet", [
        {**theirs, "score": 99.5, "updated_at": "2026-10-02T00:00:00Z"}, other,
    ], "sessions")
    # quarantine: a rule broken, a value COPY cannot type, and someone else's valid row
    attempts = _csv_rows(folder / "attempts_0001.csv")
    mine = next(row for row in attempts if row.get("user_id") == PLANTED_ID)
    someone = next(row for row in attempts if row["user_id"] not in ("", PLANTED_ID))
    write_csv(folder / "attempts_9101_bad.csv", [
        {**mine, "score": "150"}, {**mine, "started_at": "not-a-time"}, someone,
    ])
    # a user row without an id that names the person's e-mail and name
    write_csv(folder / "users_9102_bad.csv", [
        {**planted, "user_id": ""}, colleague,
    ])
    return {"victim": victim, "colleague": colleague}


def _names_person(text: str) -> bool:
    lowered = text.lower()
    return any(needle.lower() in lowered for needle in NEEDLES)


def _without_person(source: Path, target: Path) -> None:
    """The reference files: every record naming the person dropped, their reference
    (a colleague's manager_id) cleared; written independently of the warehouse's code."""
    target.mkdir()
    for path in sorted(source.iterdir()):
        if path.name.endswith(".csv") or path.name.endswith(".csv.gz"):
            text = _read_bytes(path).decode()
            reader = csv.reader(io.StringIO(text))
            header = next(reader)
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            for row in reader:
                if "manager_id" in header and row[header.index("manager_id")] == PLANTED_ID:
                    row[header.index("manager_id")] = ""
                if not _names_person(",".join(row)):
                    writer.writerow(row)
            _write_bytes(target / path.name, out.getvalue().encode())
        elif ".jsonl" in path.name:
            lines = []
            for line in _read_bytes(path).decode().splitlines():
                record = json.loads(line)
                if record.get("manager_id") == PLANTED_ID:
                    record["manager_id"] = None
                    line = json.dumps(record, ensure_ascii=False)
                if not _names_person(line):
                    lines.append(line)
            _write_bytes(target / path.name, ("\n".join(lines) + "\n").encode())
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            rows = [row for row in table.to_pylist()
                    if not _names_person(json.dumps(row, default=str, ensure_ascii=False))]
            pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), target / path.name)


def _person_records(folder: Path) -> int:
    """Records of the person's own (user_id) or naming them, in every file of a folder."""
    total = 0
    for path in folder.iterdir():
        if path.suffix == ".parquet":
            total += sum(
                _names_person(json.dumps(row, default=str, ensure_ascii=False))
                and row.get("manager_id") != PLANTED_ID
                for row in pq.read_table(path).to_pylist()
            )
        elif path.name.startswith(("users", "attempts", "sessions", "kpi_events")):
            lines = _read_bytes(path).decode().splitlines()
            lines = lines[1:] if ".csv" in path.name else [
                line for line in lines if '"_type"' not in line]
            total += sum(_names_person(line) and f'"manager_id": "{PLANTED_ID}"' not in line
                         for line in lines)
    return total


def _file_mentions(folder: Path) -> list[str]:
    found = []
    for path in folder.iterdir():
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
        else:
            text = _read_bytes(path).decode("utf-8", "replace")
        if _names_person(text):
            found.append(path.name)
    return found


# --------------------------------------------------------------------------- database


def _hits(db: Database, min_columns: int = 100) -> dict[str, int]:
    """Every text, uuid and JSON column of every relation in every schema, searched for the
    person's id, e-mail and name."""
    with db.connect() as conn:
        columns = conn.execute(
            """
            select n.nspname, c.relname, a.attname
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where c.relkind in ('r', 'p', 'v', 'm')
              and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
              and a.atttypid in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype,
                                 'uuid'::regtype, 'json'::regtype, 'jsonb'::regtype)
            """
        ).fetchall()
        assert len(columns) > min_columns  # the whole warehouse is searched
        hits = {}
        for schema, table, column in columns:
            count = conn.execute(
                sql.SQL("select count(*) from {} where {}::text ilike any(%s)").format(
                    sql.Identifier(schema, table), sql.Identifier(column)),
                ([f"%{needle}%" for needle in NEEDLES],),
            ).fetchone()[0]
            if count:
                hits[f"{schema}.{table}.{column}"] = count
    return hits


def _fingerprints(db: Database) -> dict[str, tuple[int, str]]:
    """Every table of schemas marts and intermediate (build state aside), each row as text
    without the columns that record when things ran."""
    with db.connect() as conn:
        tables = conn.execute(
            "select table_schema, table_name, array_agg(column_name::text order by"
            " ordinal_position), array_agg(data_type::text order by ordinal_position)"
            " from information_schema.columns where table_schema in"
            " ('marts', 'intermediate') and table_name in (select table_name from"
            " information_schema.tables where table_type = 'BASE TABLE' and table_schema ="
            " columns.table_schema) group by 1, 2"
        ).fetchall()
        prints = {}
        for schema, table, names, types in tables:
            if table in BATCH_STATE_TABLES:
                continue
            kept = [(name, kind) for name, kind in zip(names, types, strict=True)
                    if name not in RUN_TIME_COLUMNS]
            row = conn.execute(sql.SQL(
                "select count(*), md5(coalesce(string_agg(row_text, e'\\n' order by row_text),"
                " '')) from (select concat_ws('|', {}) as row_text from {}) as t"
            ).format(
                sql.SQL(", ").join(_as_text(name, kind) for name, kind in kept),
                sql.Identifier(schema, table),
            )).fetchone()
            prints[f"{schema}.{table}"] = (row[0], row[1])
    return prints


def _as_text(name: str, kind: str) -> sql.Composable:
    """A value as text; a timestamp after the data's as_of is when something ran (a load's
    publication, a build), not data."""
    if kind.startswith("timestamp"):
        return sql.SQL("case when {c} > {limit} then 'run time' else {c}::text end").format(
            c=sql.Identifier(name), limit=sql.Literal(f"{AS_OF.isoformat()}T23:59:59Z"))
    return sql.SQL("{}::text").format(sql.Identifier(name))


def _table_counts(output: str) -> dict[str, str]:
    return {
        line.split(":")[0].strip(): line.split(":", 1)[1].strip()
        for line in output.splitlines()
        if line.startswith("  ") and ":" in line and not line.startswith("  file")
    }


def _ledger_hashes(db: Database) -> set[str]:
    return {row[0] for row in db.query("select content_sha256 from raw.load_ledger")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Any]:
    from warehouse.generate import generate

    delivered = tmp_path_factory.mktemp("forget_delivered")
    generate(delivered, scale=SCALE, seed=SEED, as_of=AS_OF)
    (delivered / "manifest.json").unlink()
    planted = _plant(delivered)
    original = tmp_path_factory.mktemp("forget_original") / "files"
    shutil.copytree(delivered, original)
    reference = tmp_path_factory.mktemp("forget_reference") / "files"
    _without_person(delivered, reference)
    return {"delivered": delivered, "original": original, "reference": reference, **planted}


def test_forget_end_to_end(fresh_database: Database, server_env, folders, tmp_path) -> None:
    db = fresh_database
    delivered: Path = folders["delivered"]
    db.warehouse("load", str(delivered))
    db.build()

    # planted across every stream, format, version, the quarantine, snapshots and marts
    before = _hits(db)
    for column in ("raw.users.user_id", "raw.users.email", "raw.users.name",
                   "raw.attempts.user_id", "raw.sessions.user_id", "raw.kpi_events.user_id",
                   "raw.users.manager_id", "raw.quarantine.raw_row",
                   "snapshots.snap_users.email", "marts.dim_users.name",
                   "marts.fact_kpi_events.user_id", "marts.leaderboards.user_id",
                   "marts.team_weekly_digest.top_performers"):
        assert column in before, column
    assert any(column.startswith("exports.") for column in before)
    formats = {row[0] for row in db.query(
        "select distinct file_format from raw.load_ledger as l where exists (select from"
        " raw.sessions as s where s._load_id = l.load_id and s.user_id = %s) or exists ("
        " select from raw.kpi_events as k where k._load_id = l.load_id and k.user_id = %s)"
        " or exists (select from raw.attempts as a where a._load_id = l.load_id"
        " and a.user_id = %s)", (PLANTED_ID,) * 3)}
    assert formats == {"csv", "ndjson", "parquet"}
    assert db.query("select count(*) from raw.users where user_id = %s", (PLANTED_ID,))[0][0] >= 2

    # the dry run counts, changes nothing
    dry = db.warehouse("forget", "--user", PLANTED_ID, "--dry-run", "--inbox",
                       str(tmp_path / "inbox"))
    assert "would be deleted" in dry.stdout and "raw.kpi_events" in dry.stdout
    assert _hits(db) == before
    assert not db.query("select to_regclass('ops.erasures')")[0][0]

    hashes_before = _ledger_hashes(db)
    expected_raw = {
        f"raw.{stream}": db.query(
            f"select count(*) from raw.{stream} where user_id = %s", (PLANTED_ID,))[0][0]
        for stream in ("users", "attempts", "sessions", "kpi_events")
    }
    expected_raw["raw.quarantine"] = db.query(
        "select count(*) from raw.quarantine where raw_row ilike any(%s)",
        ([f"%{needle}%" for needle in NEEDLES],))[0][0]
    assert expected_raw["raw.quarantine"] >= 3  # the planted bad rows at least
    result = db.warehouse("forget", "--user", PLANTED_ID, "--reason",
                          f"GDPR art. 17 request of {PLANTED_EMAIL}", "--inbox",
                          str(tmp_path / "inbox"))
    assert "recomputed by the next build" in result.stdout
    counts = _table_counts(result.stdout)
    assert {"raw.users", "raw.attempts", "raw.sessions", "raw.kpi_events", "raw.quarantine",
            "snapshots.snap_users", "marts.dim_users", "marts.fact_sessions",
            "marts.team_weekly_digest"} <= set(counts)
    assert _table_counts(dry.stdout.replace("would be ", "")) == counts
    for table, count in expected_raw.items():
        assert re.match(rf"{count} rows? deleted\b", counts[table]), (table, counts[table])
    db.build()

    assert _hits(db) == {}
    assert _file_mentions(delivered) == []
    # the ledger knows every rewritten file by its new content
    from loaders.formats import content_hash

    delivered_hashes = {content_hash(path) for path in delivered.iterdir()}
    assert delivered_hashes <= _ledger_hashes(db)
    assert _ledger_hashes(db) != hashes_before
    again = db.warehouse("load", str(delivered))
    assert "loaded," not in again.stdout.replace("already loaded", "")

    # audited, without personal data
    audit = db.warehouse("forget", "--list").stdout
    assert "done" in audit and "reason: GDPR art. 17 request of [erased]" in audit
    assert PLANTED_EMAIL not in audit and PLANTED_ID not in audit

    # every other user's figures equal a warehouse built without the person's records
    with own_database(server_env, "forget_ref") as reference:
        reference.warehouse("load", str(folders["reference"]))
        reference.build()
        expected = _fingerprints(reference)
        assert _hits(reference) == {}
    actual = _fingerprints(db)
    assert set(actual) == set(expected)
    assert all(count > 0 for count, _ in expected.values() if count is not None)
    different = sorted(table for table in expected if actual[table] != expected[table])
    assert not different, f"differs from a warehouse built without the person: {different}"

    # delivered again: quarantined as erased user, no raw text, nothing comes back
    db.warehouse("load", str(folders["original"]))
    erased = db.query(
        "select count(*), count(raw_row) from raw.quarantine where reason = 'erased user'")[0]
    assert erased == (_person_records(folders["original"]), 0)
    db.build("--full-refresh")
    assert _hits(db) == {}


def test_forget_unknown_user_blocks_later_rows(fresh_database: Database, tmp_path) -> None:
    """An erasure before any delivery: the rows never land; --org scopes it."""
    db = fresh_database
    org, other_org = "0e0e0e0e-0000-4000-8000-000000000001", "0e0e0e0e-0000-4000-8000-000000000002"
    result = db.warehouse("forget", "--user", PLANTED_ID, "--org", org, "--inbox",
                          str(tmp_path / "inbox"))
    assert "no rows in the database name this person" in result.stdout
    row = {"user_id": PLANTED_ID, "name": PLANTED_NAME, "email": PLANTED_EMAIL,
           "role": "trainee", "updated_at": "2026-01-01T00:00:00Z"}
    path = write_csv(tmp_path / "users.csv", [
        {**row, "org_id": org}, {**row, "org_id": other_org},
        {**row, "org_id": org, "user_id": "user_someone_else", "manager_id": PLANTED_ID,
         "name": "Someone Else", "email": "someone.else@planted.example.org"},
    ])
    db.warehouse("load", str(path))
    assert db.query("select org_id::text, user_id, manager_id from raw.users order by 1, 2") == [
        (org, "user_someone_else", None), (other_org, PLANTED_ID, None),
    ]
    assert db.query("select location, raw_row, reason from raw.quarantine") == [
        ("line 2", None, "erased user"),
    ]
    hashes = db.query("select value_hash from ops.erased_identifiers")
    assert hashes and all(PLANTED_ID not in value for (value,) in hashes)


def test_forget_rewrites_kept_files(fresh_database: Database, tmp_path) -> None:
    """Files in processed/ (the ledger names their inbox path), gzip and Parquet included,
    lose the person's records and keep every other record's bytes; a zip archive is listed
    for the operator (exit 2); the ledger follows the new content."""
    db = fresh_database
    org = "0e0e0e0e-0000-4000-8000-000000000001"
    inbox, processed, archives = (tmp_path / name for name in ("inbox", "processed", "archives"))
    for folder in (inbox, processed, archives):
        folder.mkdir()
    base = {"org_id": org, "role": "trainee", "updated_at": "2026-01-01T00:00:00Z"}
    users = [
        {**base, "user_id": "user_keep_1", "name": "Kept One", "email": "kept.one@x.example"},
        {**base, "user_id": PLANTED_ID, "name": PLANTED_NAME, "email": PLANTED_EMAIL},
        {**base, "user_id": "user_keep_2", "name": "Kept Two", "email": "kept.two@x.example",
         "manager_id": PLANTED_ID, "team": '"quoted", team'},
    ]
    session = {"session_id": "5e5e5e5e-0000-4000-8000-000000000001", "org_id": org,
               "user_id": "user_keep_1", "session_type": "conversation",
               "started_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-02T11:00:00Z",
               "metadata": {"device": "web"}}
    sessions = [session, {**session, "session_id": "5e5e5e5e-0000-4000-8000-000000000002",
                          "user_id": PLANTED_ID, "metadata": {"note": PLANTED_NAME}}]
    files = [
        write_csv(inbox / "users.csv.gz", users),
        write_ndjson(inbox / "sessions_1.jsonl", sessions),
        write_any(inbox / "sessions_2", "parquet", sessions, "sessions"),
    ]
    db.warehouse("load", *(str(path) for path in files))
    for path in files:
        path.rename(processed / path.name)
    with zipfile.ZipFile(archives / "processed_old.zip", "w") as archive:
        archive.write(processed / "sessions_1.jsonl", "processed/sessions_1.jsonl")
    untouched = _read_bytes(processed / "users.csv.gz").decode().splitlines()[1]

    result = db.warehouse("forget", "--user", PLANTED_ID, "--inbox", str(inbox), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{archives / 'processed_old.zip'}:processed/sessions_1.jsonl" in result.stdout
    assert _file_mentions(processed) == []
    users_lines = _read_bytes(processed / "users.csv.gz").decode().splitlines()
    assert users_lines[1] == untouched
    assert len(users_lines) == 3 and users_lines[2].split(",")[6] == ""  # manager_id cleared
    assert [row["user_id"] for row in pq.read_table(processed / "sessions_2.parquet")
            .to_pylist()] == ["user_keep_1"]
    assert len(_read_bytes(processed / "sessions_1.jsonl").splitlines()) == 1
    from loaders.formats import content_hash

    assert {content_hash(path) for path in processed.iterdir()} <= _ledger_hashes(db)
    assert _hits(db, min_columns=50) == {}
    assert db.query("select rows_read, rows_loaded, rows_quarantined from raw.load_ledger"
                    " order by load_id") == [(2, 2, 0), (1, 1, 0), (1, 1, 0)]
