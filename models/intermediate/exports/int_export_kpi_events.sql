{{ config(materialized='ephemeral') }}
-- One row per KPI event (fact_kpi_events), ready for NDJSON: event_value stays a JSON
-- object; event_category comes from seed event_types ('unknown' for new event types);
-- schema_version is the export version the row's shape follows.
-- Ephemeral (inlined where it is read): exports.kpi_events and exports.user_profile_json
-- read it, so the CSV and JSON exports share one definition and no export view
-- depends on another view (a view rebuilt by dbt drops the views on it until they are rebuilt).
with events as (
    select
        id,
        org_id,
        user_id,
        attempt_id,
        session_id,
        scenario_id,
        event_type,
        event_value,
        timestamp_ms,
        occurred_at
    from {{ ref('fact_kpi_events') }}
),

event_types as (
    select
        event_type,
        category
    from {{ ref('event_types') }}
)

select
    events.id as event_id,
    events.org_id,
    events.user_id,
    events.attempt_id,
    events.session_id,
    events.scenario_id,
    events.event_type,
    {{ event_category('event_types.category') }}::text as event_category,
    events.event_value,
    events.timestamp_ms,
    events.occurred_at,
    {{ export_version() }} as schema_version
from events
left join event_types on events.event_type = event_types.event_type
