"""What BI users see in the catalogue: readable index names (`<table>_<columns>_idx`, not
dbt's md5 hashes)."""

from __future__ import annotations

from conftest import Database


def test_indexes_have_readable_names(built_warehouse: Database) -> None:
    indexes = dict(built_warehouse.query(
        "select index_class.relname, table_class.relname from pg_index as present"
        " join pg_class as index_class on index_class.oid = present.indexrelid"
        " join pg_class as table_class on table_class.oid = present.indrelid"
        " join pg_namespace as schema on schema.oid = table_class.relnamespace"
        " where schema.nspname in ('marts', 'intermediate')"
    ))
    hashed = sorted(name for name in indexes if len(name) == 32 and name.isalnum())
    assert not hashed, f"indexes named by a hash: {hashed}"
    assert indexes["fact_kpi_events_org_id_attempt_id_idx"] == "fact_kpi_events"
    assert indexes["fact_kpi_events_org_id_user_id_idx"] == "fact_kpi_events"
