-- Scenario attempts, every status: the winning version of each attempt_id (newest
-- updated_at, then first loaded). Unknown columns of the file stay in _extra.
with deliveries as (
    select
        attempt_id,
        org_id,
        user_id,
        scenario_id,
        status,
        score,
        duration_seconds,
        talk_ms,
        listen_ms,
        started_at,
        ended_at,
        updated_at,
        _extra,
        _load_id,
        _row_number,
        {{ star_version_rank('attempt_id') }} as version_rank
    from {{ source('raw', 'attempts') }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.attempt_id,
    deliveries.org_id,
    deliveries.user_id,
    deliveries.scenario_id,
    deliveries.status,
    deliveries.score,
    deliveries.duration_seconds,
    deliveries.talk_ms,
    deliveries.listen_ms,
    deliveries.started_at,
    deliveries.ended_at,
    deliveries.updated_at,
    deliveries._extra,
    deliveries._load_id,
    ledger.loaded_at
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
