{{ config(
    meta={'distribution': 'reference'},
    indexes=[{'columns': ['org_id', 'team']}],
    post_hook=["{{ star_statements([
        citus_distribute(),
    ]) }}"],
) }}
-- Users: the current version of each user (the open row of the SCD2 snapshot snap_users).
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
    dbt_valid_from as valid_from
from {{ ref('snap_users') }}
where dbt_valid_to is null
