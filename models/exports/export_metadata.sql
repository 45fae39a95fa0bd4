{{ config(alias='export_metadata') }}
-- One row: the export version the export views were built with, and when; `warehouse
-- export --archive` writes it into its manifest.
select
    {{ export_version() }} as export_version,
    '{{ run_started_at.isoformat() }}'::timestamptz as built_at,
    '{{ invocation_id }}'::text as dbt_invocation_id
