-- KPI events: the first loaded row of each event_id (events carry no updated_at).
-- occurred_at stays as delivered (null when empty); the fact resolves it from the attempt.
-- For speed at 10 million events the version rank is computed over the narrow key columns
-- only, to list the superseded rows (re-deliveries: few); every other row passes through
-- without being sorted.
with delivered_keys as (
    select
        _load_id,
        _row_number,
        {{ star_version_rank('event_id', version_column=none) }} as version_rank
    from {{ source('raw', 'kpi_events') }}
),

superseded as (
    select
        _load_id,
        _row_number
    from delivered_keys
    -- = version_rank > 1, written as an equality so the planner expects few rows and hashes
    -- this side of the anti-join rather than all deliveries
    where least(version_rank, 2) = 2
),

ledger as (
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
    ledger.loaded_at
from {{ source('raw', 'kpi_events') }} as deliveries
left join ledger on deliveries._load_id = ledger.load_id
where not exists (
    select from superseded
    where
        superseded._load_id = deliveries._load_id
        and superseded._row_number = deliveries._row_number
)
