-- Scenario attempts, every status: the winning version of each attempt_id (newest
-- updated_at, then first loaded). Unknown columns of the file stay in _extra.
with winners as (
    select distinct on (attempt_id)
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
        _row_number
    from {{ source('raw', 'attempts') }}
    order by attempt_id, {{ star_version_order() }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    winners.attempt_id,
    winners.org_id,
    winners.user_id,
    winners.scenario_id,
    winners.status,
    winners.score,
    winners.duration_seconds,
    winners.talk_ms,
    winners.listen_ms,
    winners.started_at,
    winners.ended_at,
    winners.updated_at,
    winners._extra,
    winners._load_id,
    ledger.loaded_at
from winners
left join ledger on winners._load_id = ledger.load_id
