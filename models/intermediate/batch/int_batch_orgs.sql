{{ config(materialized='table') }}
-- The organisations this build's loads touched: those of the touched users and attempts
-- (int_batch_users, int_batch_attempts) and every version of each org record delivered in
-- the batch's loads.
with touched_orgs as (
    {{ touched_record_versions('orgs', ['org_id']) }}
)

select org_id from touched_orgs
union
select org_id from {{ ref('int_batch_users') }}
union
select org_id from {{ ref('int_batch_attempts') }}
