-- Scenarios: the winning version of each scenario_id (newest updated_at, then first loaded).
with winners as (
    select distinct on (scenario_id)
        scenario_id,
        org_id,
        title,
        difficulty,
        category,
        created_at,
        updated_at,
        _load_id,
        _row_number
    from {{ source('raw', 'scenarios') }}
    order by scenario_id, {{ star_version_order() }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    winners.scenario_id,
    winners.org_id,
    winners.title,
    winners.difficulty,
    winners.category,
    winners.created_at,
    winners.updated_at,
    winners._load_id,
    ledger.loaded_at
from winners
left join ledger on winners._load_id = ledger.load_id
