"""The stream declarations are the single source: the raw tables and the dbt sources follow."""

from __future__ import annotations

from pathlib import Path

import yaml

from loaders.schema import landing_columns
from loaders.streams import SQL_TYPES, STREAMS, stream_for_file_name

ROOT = Path(__file__).resolve().parent.parent
LOADER_COLUMNS = ["_extra", "_load_id", "_row_number"]


def _raw_tables() -> dict[str, dict]:
    document = yaml.safe_load((ROOT / "models" / "staging" / "_sources.yml").read_text())
    raw = next(source for source in document["sources"] if source["name"] == "raw")
    return {table["name"]: table for table in raw["tables"]}


def _sources() -> dict[str, list[dict]]:
    return {name: table.get("columns", []) for name, table in _raw_tables().items()}


def test_dbt_sources_carry_each_streams_record_key() -> None:
    """The entity-incremental marts read a stream's record key and versioning from here."""
    for stream in STREAMS.values():
        meta = _raw_tables()[stream.name]["config"]["meta"]
        assert meta == {
            "record_key": stream.key, "versioned": stream.version_column is not None,
        }, stream.name


def test_dbt_sources_follow_the_stream_declarations() -> None:
    sources = _sources()
    for stream in STREAMS.values():
        declared = [column["name"] for column in sources[stream.name]]
        assert declared == [*stream.column_names, *LOADER_COLUMNS], stream.name
        types = {column["name"]: column.get("data_type") for column in sources[stream.name]}
        for column in stream.columns:
            assert types[column.name] == SQL_TYPES[column.kind], (stream.name, column.name)


def test_raw_tables_follow_the_stream_declarations(fresh_database, generated_data) -> None:
    fresh_database.warehouse("load", str(generated_data))
    for stream in STREAMS.values():
        rows = fresh_database.query(
            "select column_name, format_type(atttypid, atttypmod) from information_schema.columns"
            " join pg_attribute on attrelid = format('raw.%%I', table_name)::regclass"
            " and attname = column_name"
            " where table_schema = 'raw' and table_name = %s order by ordinal_position",
            (stream.name,),
        )
        assert [name for name, _ in rows] == [*stream.column_names, *LOADER_COLUMNS]
        typed = dict(rows)
        for column in stream.columns:
            expected = {"timestamptz": "timestamp with time zone"}.get(
                column.sql_type, column.sql_type
            )
            assert typed[column.name] == expected, (stream.name, column.name)
    assert len(landing_columns(STREAMS["orgs"])) == len(STREAMS["orgs"].columns) + 3
    # versioned streams index their record key (earlier versions looked up by builds)
    indexed = {
        table: column for table, column in fresh_database.query(
            "select tablename, substring(indexdef from '\\((\\w+)\\)$') from pg_indexes"
            " where schemaname = 'raw' and indexname like '%%record_key'"
        )
    }
    assert indexed == {
        stream.name: stream.key for stream in STREAMS.values() if stream.version_column
    }


def test_stream_from_file_name_prefix() -> None:
    assert stream_for_file_name("kpi_events_0001.csv.gz").name == "kpi_events"
    assert stream_for_file_name("Sessions-2025.jsonl").name == "sessions"
    assert stream_for_file_name("orgs.csv").name == "orgs"
    assert stream_for_file_name("readme.csv") is None
