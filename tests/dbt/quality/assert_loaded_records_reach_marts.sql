-- Every loaded record reaches its mart: each current record of staging (one winning
-- version per key) is in its dimension or fact, matched on org_id and key. Attempts count
-- when their current status is 'completed' (the fact holds completed attempts only).
-- Returns the records that are missing.
with missing_orgs as (
    select
        'orgs' as stream,
        staged.org_id::text as record_id
    from {{ ref('stg_orgs') }} as staged
    where not exists (
        select from {{ ref('dim_orgs') }} as mart
        where mart.org_id = staged.org_id
    )
),

missing_users as (
    select
        'users' as stream,
        staged.user_id as record_id
    from {{ ref('stg_users') }} as staged
    where not exists (
        select from {{ ref('dim_users') }} as mart
        where mart.user_id = staged.user_id and mart.org_id = staged.org_id
    )
),

missing_scenarios as (
    select
        'scenarios' as stream,
        staged.scenario_id::text as record_id
    from {{ ref('stg_scenarios') }} as staged
    where not exists (
        select from {{ ref('dim_scenarios') }} as mart
        where mart.scenario_id = staged.scenario_id and mart.org_id = staged.org_id
    )
),

missing_attempts as (
    select
        'attempts' as stream,
        staged.attempt_id::text as record_id
    from {{ ref('stg_attempts') }} as staged
    where
        staged.status = 'completed'
        and not exists (
            select from {{ ref('fact_scenario_attempts') }} as mart
            where mart.org_id = staged.org_id and mart.attempt_id = staged.attempt_id
        )
),

missing_sessions as (
    select
        'sessions' as stream,
        staged.session_id::text as record_id
    from {{ ref('stg_sessions') }} as staged
    where not exists (
        select from {{ ref('fact_sessions') }} as mart
        where mart.org_id = staged.org_id and mart.session_id = staged.session_id
    )
),

missing_events as (
    select
        'kpi_events' as stream,
        staged.event_id::text as record_id
    from {{ ref('stg_kpi_events') }} as staged
    where not exists (
        select from {{ ref('fact_kpi_events') }} as mart
        where mart.org_id = staged.org_id and mart.id = staged.event_id
    )
)

select
    stream,
    record_id
from missing_orgs
union all
select
    stream,
    record_id
from missing_users
union all
select
    stream,
    record_id
from missing_scenarios
union all
select
    stream,
    record_id
from missing_attempts
union all
select
    stream,
    record_id
from missing_sessions
union all
select
    stream,
    record_id
from missing_events
