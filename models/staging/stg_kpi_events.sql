-- KPI events: the first loaded row of each event_id (events carry no updated_at).
-- occurred_at stays as delivered (null when empty); the fact resolves it from the attempt.
with deliveries as (
    select
        event_id,
        attempt_id,
        session_id,
        org_id,
        user_id,
        scenario_id,
        event_type,
        event_value,
        timestamp_ms,
        occurred_at,
        _load_id,
        _row_number,
        {{ star_version_rank('event_id', version_column=none) }} as version_rank
    from {{ source('raw', 'kpi_events') }}
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
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
