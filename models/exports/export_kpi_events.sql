{{ config(alias='kpi_events') }}
-- One row per KPI event (fact_kpi_events), ready for NDJSON: event_value stays a JSON
-- object; event_category comes from seed event_types ('unknown' for new event types);
-- schema_version is the export version the row's shape follows.
-- The rows of int_export_kpi_events, shared with exports.user_profile_json.
select
    event_id,
    org_id,
    user_id,
    attempt_id,
    session_id,
    scenario_id,
    event_type,
    event_category,
    event_value,
    timestamp_ms,
    occurred_at,
    schema_version
from {{ ref('int_export_kpi_events') }}
