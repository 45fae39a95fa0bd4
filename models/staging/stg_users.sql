-- Users: the winning version of each user_id (newest updated_at, then first loaded);
-- an empty time zone means UTC.
with winners as (
    select distinct on (user_id)
        user_id,
        org_id,
        name,
        email,
        role,
        team,
        manager_id,
        timezone,
        created_at,
        updated_at,
        _load_id,
        _row_number
    from {{ source('raw', 'users') }}
    order by user_id, {{ star_version_order() }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    winners.user_id,
    winners.org_id,
    winners.name,
    winners.email,
    winners.role,
    nullif(btrim(winners.team), '') as team,
    nullif(btrim(winners.manager_id), '') as manager_id,
    coalesce(nullif(btrim(winners.timezone), ''), 'UTC') as timezone,
    winners.created_at,
    winners.updated_at,
    winners._load_id,
    ledger.loaded_at
from winners
left join ledger on winners._load_id = ledger.load_id
