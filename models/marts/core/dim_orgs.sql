{{ config(
    meta={'distribution': 'reference'},
    post_hook=["{{ citus_distribute() }}"],
) }}
-- Organisations: the current version of each org (newest updated_at wins).
select
    org_id,
    name,
    plan,
    created_at,
    updated_at
from {{ ref('stg_orgs') }}
