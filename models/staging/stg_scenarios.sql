-- Scenarios: the winning version of each scenario_id (newest updated_at, then first loaded).
with deliveries as (
    select
        scenario_id,
        org_id,
        title,
        difficulty,
        category,
        created_at,
        updated_at,
        _load_id,
        _row_number,
        {{ star_version_rank('scenario_id') }} as version_rank
    from {{ source('raw', 'scenarios') }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.scenario_id,
    deliveries.org_id,
    deliveries.title,
    deliveries.difficulty,
    deliveries.category,
    deliveries.created_at,
    deliveries.updated_at,
    deliveries._load_id,
    ledger.loaded_at
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
