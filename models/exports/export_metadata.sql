{{ config(alias='export_metadata') }}
-- One row: the export version the export views were built with, and when; `warehouse
-- export --archive` writes it into its manifest.
select
    {{ export_version() }} as export_version,
    {{ export_built_at() }} as built_at,
    {{ export_invocation_id() }} as dbt_invocation_id
