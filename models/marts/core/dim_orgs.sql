{{ config(
    post_hook=["{{ citus_distribute('reference') }}"],
) }}
-- Organisations: the current version of each org (newest updated_at wins).
select
    org_id,
    name,
    plan,
    created_at,
    updated_at
from {{ ref('stg_orgs') }}
