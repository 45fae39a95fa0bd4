-- Every delivered KPI event row (re-deliveries included), typed, with its load and row
-- number. Not for analysis: stg_kpi_events keeps the winning rows. fact_kpi_events reads
-- this only on incremental runs, to take the rows of the newest loads without
-- re-deduplicating all events (it then applies the same rule, star_version_rank).
with ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.event_id,
    deliveries.attempt_id,
    deliveries.session_id,
    deliveries.org_id,
    deliveries.user_id,
    deliveries.scenario_id,
    deliveries.event_type,
    deliveries.event_value,
    deliveries.timestamp_ms,
    deliveries.occurred_at,
    deliveries._load_id,
    deliveries._row_number,
    ledger.loaded_at
from {{ source('raw', 'kpi_events') }} as deliveries
left join ledger on deliveries._load_id = ledger.load_id
