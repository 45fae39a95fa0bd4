{{ config(materialized='table') }}
-- The records the marts should hold, counted once from staging (one current version per
-- key) per stream and user: data_completeness sums it per stream and user_data_metadata
-- per user, so the KPI-event staging dedupe runs once per build, not once per mart.
-- user_id is null for the streams without a user (orgs, scenarios) and for users.
select
    'orgs' as stream,
    null::text as user_id,
    count(*) as records_expected
from {{ ref('stg_orgs') }}
union all
select
    'users' as stream,
    null::text as user_id,
    count(*) as records_expected
from {{ ref('stg_users') }}
union all
select
    'scenarios' as stream,
    null::text as user_id,
    count(*) as records_expected
from {{ ref('stg_scenarios') }}
union all
select
    'attempts' as stream,
    user_id,
    count(*) as records_expected
from {{ ref('stg_attempts') }}
where status = 'completed'
group by user_id
union all
select
    'sessions' as stream,
    user_id,
    count(*) as records_expected
from {{ ref('stg_sessions') }}
group by user_id
union all
select
    'kpi_events' as stream,
    user_id,
    count(*) as records_expected
from {{ ref('stg_kpi_events') }}
group by user_id
