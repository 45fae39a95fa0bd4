{{ config(materialized='table', indexes=[{'columns': ['org_id', 'user_id']}]) }}
-- The records the marts should hold per stream, org and user: data_completeness sums it
-- per stream and user_data_metadata per user. Orgs, users, scenarios, completed attempts
-- and sessions are the current versions in staging (one per key); KPI events are the sum
-- of int_quality_expected_events_by_load, which counts each load once, so no build
-- re-deduplicates the whole event history. org_id and user_id are null for the streams
-- without them (org_id for orgs is the org itself).
select
    'orgs' as stream,
    org_id,
    null::text as user_id,
    count(*) as records_expected
from {{ ref('stg_orgs') }}
group by org_id
union all
select
    'users' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from {{ ref('stg_users') }}
group by org_id, user_id
union all
select
    'scenarios' as stream,
    org_id,
    null::text as user_id,
    count(*) as records_expected
from {{ ref('stg_scenarios') }}
group by org_id
union all
select
    'attempts' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from {{ ref('stg_attempts') }}
where status = 'completed'
group by org_id, user_id
union all
select
    'sessions' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from {{ ref('stg_sessions') }}
group by org_id, user_id
union all
select
    'kpi_events' as stream,
    org_id,
    user_id,
    sum(records_expected) as records_expected
from {{ ref('int_quality_expected_events_by_load') }}
group by org_id, user_id
