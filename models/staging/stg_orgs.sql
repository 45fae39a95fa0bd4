-- Organisations: the winning version of each org_id (newest updated_at, then first loaded).
with deliveries as (
    select
        org_id,
        name,
        plan,
        created_at,
        updated_at,
        _load_id,
        _row_number,
        {{ star_version_rank('org_id') }} as version_rank
    from {{ source('raw', 'orgs') }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.org_id,
    deliveries.name,
    deliveries.plan,
    deliveries.created_at,
    deliveries.updated_at,
    deliveries._load_id,
    ledger.loaded_at
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
