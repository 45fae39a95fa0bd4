-- Organisations: the winning version of each org_id (newest updated_at, then first loaded).
with winners as (
    select distinct on (org_id)
        org_id,
        name,
        plan,
        created_at,
        updated_at,
        _load_id,
        _row_number
    from {{ source('raw', 'orgs') }}
    order by org_id, {{ star_version_order() }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    winners.org_id,
    winners.name,
    winners.plan,
    winners.created_at,
    winners.updated_at,
    winners._load_id,
    ledger.loaded_at
from winners
left join ledger on winners._load_id = ledger.load_id
