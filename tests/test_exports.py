"""Export views and `warehouse export`: every format read back and compared to its view,
JSON/CSV parity for every user, psql \\copy as the reporting role, the org archive.

Reads the shared `built_warehouse` only (exports are files under pytest's tmp_path).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from warehouse.export import EXPORT_VIEWS

# also run on PostgreSQL 15 by scripts/test.sh (WAREHOUSE_TEST_SERVER_BIN)
pytestmark = pytest.mark.every_server

# each view's key: rows are compared by it
KEYS = {
    "attempts": "attempt_id",
    "sessions": "session_id",
    "user_summary": "user_id",
    "user_profile_json": "user_id",
    "kpi_events": "event_id",
}
# now() of the reading transaction: differs between any two reads
VOLATILE = {"exported_at"}


# --------------------------------------------------------------------------- helpers


def column_types(db, view: str) -> dict[str, str]:
    rows = db.query(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute as a"
        " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"
        " order by a.attnum",
        (f"exports.{view}",),
    )
    return dict(rows)


def view_as_text(db, view: str) -> pd.DataFrame:
    """The view with every value as Postgres prints it (what COPY writes), nulls as ''."""
    types = column_types(db, view)
    columns = ", ".join(f'"{name}"::text as "{name}"' for name in types)
    frame = db.frame(f"select {columns} from exports.{view} order by {KEYS[view]}")
    return frame.fillna("").reset_index(drop=True)


def view_typed(db, view: str) -> pd.DataFrame:
    types = column_types(db, view)
    columns = ", ".join(f'"{name}"' for name in types)
    return db.frame(f"select {columns} from exports.{view} order by {KEYS[view]}")


def normalise(value: Any, type_name: str) -> Any:
    """A view value (psycopg) or a read-back value in one comparable form."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    if type_name == "uuid":
        return str(value)
    if type_name in ("jsonb", "json"):
        return json.loads(value) if isinstance(value, str) else value
    if type_name == "timestamp with time zone":
        return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else (
            pd.Timestamp(value).tz_localize("UTC"))
    if type_name == "date":
        return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
    if type_name in ("bigint", "integer", "smallint"):
        return int(value)
    if type_name in ("double precision", "real", "numeric"):
        return float(value)
    return value


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame, types: dict[str, str],
                     key: str) -> None:
    assert list(actual.columns) == list(types), "columns and their order follow the view"
    assert len(actual) == len(expected)
    actual = actual.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True)
    expected = expected.sort_values(key, key=lambda s: s.astype(str)).reset_index(drop=True)
    for name, type_name in types.items():
        if name in VOLATILE:
            continue
        left = [normalise(value, type_name) for value in expected[name].tolist()]
        right = [normalise(value, type_name) for value in actual[name].tolist()]
        assert left == right, f"column {name} differs"


def export(db, tmp_path: Path, view: str, fmt: str, *extra: str) -> Path:
    suffix = {"csv": ".csv", "ndjson": ".ndjson", "parquet": ".parquet"}[fmt]
    if "--gzip" in extra and fmt != "parquet":
        suffix += ".gz"
    out = tmp_path / f"{view}{suffix}"
    result = db.warehouse("export", view, "--format", fmt, "--out", str(out), *extra)
    assert f"exports.{view}" in result.stdout
    return out


def psql_binary() -> str | None:
    from warehouse.embedded import EmbeddedServer

    path = EmbeddedServer().psql_path()
    if path.exists():
        return str(path)
    return shutil.which("psql")


# --------------------------------------------------------------------------- round trips


def test_export_views_exist_with_version_and_docs(built_warehouse):
    present = {name for (name,) in built_warehouse.query(
        "select table_name from information_schema.views where table_schema = 'exports'")}
    assert set(EXPORT_VIEWS) <= present
    (version,) = built_warehouse.query("select export_version from exports.export_metadata")[0]
    assert version.count(".") == 2
    undocumented = built_warehouse.query(
        "select c.relname, a.attname from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0"
        " where n.nspname = 'exports' and col_description(c.oid, a.attnum) is null"
    )
    assert undocumented == []
    assert all(built_warehouse.query(
        "select obj_description(c.oid) is not null from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace where n.nspname = 'exports'"
    ))
    for view in EXPORT_VIEWS:
        (rows,) = built_warehouse.query(f"select count(*) from exports.{view}")[0]
        assert rows > 0, view


@pytest.mark.parametrize("view", EXPORT_VIEWS)
def test_csv_round_trip(built_warehouse, tmp_path, view):
    out = export(built_warehouse, tmp_path, view, "csv")
    actual = pd.read_csv(out, dtype=str, keep_default_na=False)
    expected = view_as_text(built_warehouse, view)
    assert list(actual.columns) == list(expected.columns)
    volatile = [column for column in actual.columns if column in VOLATILE]
    actual, expected = actual.drop(columns=volatile), expected.drop(columns=volatile)
    key = KEYS[view]
    pd.testing.assert_frame_equal(
        actual.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
    )


@pytest.mark.parametrize("view", EXPORT_VIEWS)
def test_ndjson_round_trip(built_warehouse, tmp_path, view):
    out = export(built_warehouse, tmp_path, view, "ndjson")
    actual = pd.read_json(out, lines=True, dtype=False, precise_float=True)
    types = column_types(built_warehouse, view)
    assert_same_rows(view_typed(built_warehouse, view), actual, types, KEYS[view])


@pytest.mark.parametrize("view", EXPORT_VIEWS)
def test_parquet_round_trip(built_warehouse, tmp_path, view):
    out = export(built_warehouse, tmp_path, view, "parquet")
    table = pq.read_table(out)
    types = column_types(built_warehouse, view)
    assert table.schema.names == list(types)
    assert_same_rows(view_typed(built_warehouse, view), table.to_pandas(), types, KEYS[view])


def test_gzip_and_stdout_give_the_same_bytes(built_warehouse, tmp_path):
    plain = export(built_warehouse, tmp_path, "sessions", "csv")
    zipped = tmp_path / "zipped" / "sessions.csv.gz"
    built_warehouse.warehouse("export", "sessions", "--gzip", "--out", str(zipped))
    assert gzip.decompress(zipped.read_bytes()) == plain.read_bytes()
    piped = built_warehouse.warehouse("export", "kpi_events", "--format", "ndjson", "--out", "-")
    ndjson = export(built_warehouse, tmp_path, "kpi_events", "ndjson")
    assert piped.stdout == ndjson.read_text(encoding="utf-8")
    gz_parquet = tmp_path / "gz" / "attempts.parquet"
    built_warehouse.warehouse("export", "attempts", "--format", "parquet", "--gzip",
                              "--out", str(gz_parquet))
    assert pq.read_metadata(gz_parquet).row_group(0).column(0).compression == "GZIP"


def test_org_filter(built_warehouse, tmp_path):
    orgs = [org for (org,) in built_warehouse.query("select org_id::text from marts.dim_orgs")]
    for org in orgs:
        out = tmp_path / f"attempts_{org}.csv"
        built_warehouse.warehouse("export", "attempts", "--org", org, "--out", str(out))
        frame = pd.read_csv(out, dtype=str)
        (expected,) = built_warehouse.query(
            "select count(*) from exports.attempts where org_id = %s", (org,))[0]
        assert len(frame) == expected
        assert set(frame["org_id"]) <= {org}
    out = tmp_path / "none.ndjson"
    built_warehouse.warehouse("export", "kpi_events", "--format", "ndjson", "--org",
                              "00000000-0000-0000-0000-000000000000", "--out", str(out))
    assert out.read_text() == ""
    refused = built_warehouse.warehouse("export", "attempts", "--org", "not-a-uuid", check=False)
    assert refused.returncode != 0 and "UUID" in refused.stderr
    unknown = built_warehouse.warehouse("export", "no_such_view", check=False)
    assert unknown.returncode != 0 and "no view exports.no_such_view" in unknown.stderr


# --------------------------------------------------------------------------- JSON/CSV parity


def _number_or_text(value: Any) -> Any:
    """CSV text or a JSON value in one comparable form (numbers as float, times as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) > 10 and text[4] == "-" and text[10] in " T":
        return pd.Timestamp(text).tz_convert("UTC")
    return text


def test_json_and_csv_agree_for_every_user(built_warehouse, tmp_path):
    summary_csv = export(built_warehouse, tmp_path, "user_summary", "csv")
    sessions_csv = export(built_warehouse, tmp_path, "sessions", "csv")
    documents = export(built_warehouse, tmp_path, "user_profile_json", "ndjson")
    summary = pd.read_csv(summary_csv, dtype=str, keep_default_na=False).set_index("user_id")
    sessions = pd.read_csv(sessions_csv, dtype=str, keep_default_na=False)
    stats = built_warehouse.frame(
        "select user_id, metric, mean_value, p50 from marts.user_metric_stats")
    by_user = {}
    with open(documents, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            by_user[row["user_id"]] = row
    assert set(by_user) == set(summary.index)
    (version,) = built_warehouse.query("select export_version from exports.export_metadata")[0]
    for user_id, row in by_user.items():
        document = row["document"]
        assert row["export_version"] == document["export_version"] == version
        expected = summary.loc[user_id]
        # the summary section is the user's flat row, column by column
        assert set(document["summary"]) == {"user_id", *summary.columns}
        for column in summary.columns:
            assert _number_or_text(document["summary"][column]) == _number_or_text(
                expected[column]), (user_id, column)
        # sessions: the user's rows of exports.sessions, all columns
        flat = sessions[sessions["user_id"] == user_id].set_index("session_id")
        nested = {item["session_id"]: item for item in document["sessions"]}
        assert set(nested) == set(flat.index), user_id
        for session_id, item in nested.items():
            # the user's own fields are the document's, not repeated per session
            assert set(item) == {"session_id", *flat.columns} - {"user_id", "org_id",
                                                                  "user_name"}
            for column in item:
                if column != "session_id":
                    assert _number_or_text(item[column]) == _number_or_text(
                        flat.loc[session_id, column]), (session_id, column)
        started = [item["started_at"] for item in document["sessions"]]
        assert started == sorted(started)
        # statistics, velocity and metadata repeat the flat figures
        user_stats = stats[stats["user_id"] == user_id].set_index("metric")
        assert {item["metric"] for item in document["statistics"]} == set(user_stats.index)
        for item in document["statistics"]:
            assert item["mean_value"] == user_stats.loc[item["metric"], "mean_value"]
            assert _number_or_text(expected[f"{item['metric']}_mean"]) == item["mean_value"]
            assert _number_or_text(expected[f"{item['metric']}_p50"]) == item["p50"]
        for item in document["velocity"]:
            assert _number_or_text(expected[f"{item['metric']}_slope_per_week"]) == (
                _number_or_text(item["velocity_per_week"]))
        for item in document["trends"]:
            assert expected[f"{item['metric']}_trend_direction"] == item["trend_direction"]
        metadata = document["metadata"]
        for column in ("first_data_date", "last_data_date", "data_points", "completeness_pct"):
            assert _number_or_text(metadata[column]) == _number_or_text(expected[column])
        for section in ("user", "habits", "patterns", "consistency", "best_worst_sessions",
                        "milestones", "feedback", "recommendations", "comparisons",
                        "predictions", "trends"):
            assert section in document, section


def test_document_sections_match_their_marts(built_warehouse):
    """Spot-check of the sections that have no flat view: row counts per user."""
    counts = {
        "comparisons": "user_comparisons",
        "predictions": "user_predictions",
        "milestones": "user_milestones",
        "best_worst_sessions": "user_best_worst_sessions",
        "consistency": "user_consistency",
        "patterns": "user_metric_patterns",
    }
    for section, mart in counts.items():
        mismatched = built_warehouse.query(
            f"""
            select docs.user_id
            from exports.user_profile_json as docs
            left join (select user_id, count(*) as n from marts.{mart} group by user_id) as m
                on m.user_id = docs.user_id
            where jsonb_array_length(docs.document -> '{section}') <> coalesce(m.n, 0)
            """
        )
        assert mismatched == [], section
    history = built_warehouse.query(
        """
        select docs.user_id
        from exports.user_profile_json as docs
        left join (
            select user_id, count(*) as n from exports.kpi_events
            where event_type = 'feedback_given' group by user_id
        ) as events on events.user_id = docs.user_id
        where jsonb_array_length(docs.document -> 'feedback' -> 'history')
            <> coalesce(events.n, 0)
        """
    )
    assert history == []


# --------------------------------------------------------------------------- psql and archive


def test_reporting_role_copies_every_view_with_psql(built_warehouse, tmp_path,
                                                   reporting_password):
    psql = psql_binary()
    if psql is None:
        pytest.skip("no psql binary")
    env = {**os.environ, **built_warehouse.env, "PGUSER": "reporting", "PGTZ": "UTC",
           "PGPASSWORD": reporting_password}
    for view in EXPORT_VIEWS:
        target = tmp_path / f"psql_{view}.csv"
        # unqualified: the reporting role's search_path is marts, exports
        command = f"\\copy (select * from {view}) to '{target}' csv header"
        subprocess.run([psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", command], env=env,
                       check=True, capture_output=True, text=True)
        ours = export(built_warehouse, tmp_path, view, "csv")
        # a view has no row order (PostgreSQL 15 may read the same view in two orders):
        # the same header and the same rows, byte for byte, in any order
        if VOLATILE & set(column_types(built_warehouse, view)):
            volatile = sorted(VOLATILE & set(column_types(built_warehouse, view)))
            theirs_frame = pd.read_csv(target, dtype=str).drop(columns=volatile)
            ours_frame = pd.read_csv(ours, dtype=str).drop(columns=volatile)
            by = list(theirs_frame.columns)
            pd.testing.assert_frame_equal(
                theirs_frame.sort_values(by).reset_index(drop=True),
                ours_frame.sort_values(by).reset_index(drop=True),
            )
        else:
            theirs_lines = target.read_bytes().splitlines()
            ours_lines = ours.read_bytes().splitlines()
            assert theirs_lines[:1] == ours_lines[:1], view
            assert sorted(theirs_lines[1:]) == sorted(ours_lines[1:]), view
    denied = subprocess.run(
        [psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", "select count(*) from raw.load_ledger"],
        env=env, capture_output=True, text=True,
    )
    assert denied.returncode != 0 and "permission denied" in denied.stderr


def test_archive_manifest_and_checksums(built_warehouse, tmp_path):
    (org,) = built_warehouse.query("select org_id::text from marts.dim_orgs limit 1")[0]
    target = tmp_path / "org.zip"
    result = built_warehouse.warehouse("export", "--archive", org, "--out", str(target))
    assert "archive written" in result.stdout
    (version,) = built_warehouse.query("select export_version from exports.export_metadata")[0]
    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["org_id"] == org and manifest["export_version"] == version
        assert [item["view"] for item in manifest["files"]] == [
            f"exports.{view}" for view in EXPORT_VIEWS]
        assert sorted(archive.namelist()) == sorted(
            ["manifest.json", *(item["name"] for item in manifest["files"])])
        for item in manifest["files"]:
            data = archive.read(item["name"])
            assert hashlib.sha256(data).hexdigest() == item["sha256"]
            assert len(data) == item["bytes"]
            view = item["view"].split(".")[1]
            (rows,) = built_warehouse.query(
                f"select count(*) from {item['view']} where org_id = %s", (org,))[0]
            assert item["rows"] == rows
            if item["format"] == "csv":
                member = tmp_path / item["name"]
                member.write_bytes(data)
                assert len(pd.read_csv(member, dtype=str)) == rows
            else:
                assert len(data.decode().splitlines()) == rows
            assert item["columns"] == list(column_types(built_warehouse, view))
    missing = built_warehouse.warehouse(
        "export", "--archive", "00000000-0000-0000-0000-000000000000", "--out",
        str(tmp_path / "none.zip"), check=False)
    assert missing.returncode != 0 and "not in the warehouse" in missing.stderr
