-- Users: the winning version of each user_id (newest updated_at, then first loaded);
-- an empty time zone means UTC.
with deliveries as (
    select
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
        _row_number,
        {{ star_version_rank('user_id') }} as version_rank
    from {{ source('raw', 'users') }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.user_id,
    deliveries.org_id,
    deliveries.name,
    deliveries.email,
    deliveries.role,
    nullif(btrim(deliveries.team), '') as team,
    nullif(btrim(deliveries.manager_id), '') as manager_id,
    coalesce(nullif(btrim(deliveries.timezone), ''), 'UTC') as timezone,
    deliveries.created_at,
    deliveries.updated_at,
    deliveries._load_id,
    ledger.loaded_at
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
