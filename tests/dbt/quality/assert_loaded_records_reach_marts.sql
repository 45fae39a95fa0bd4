-- Every loaded record reaches its mart: each current record of staging (one winning
-- version per key) is in its dimension or fact, matched on org_id and key. Attempts count
-- when their current status is 'completed' (the fact holds completed attempts only).
-- Returns the records that are missing. Anti-joins, not correlated `not exists`: Citus
-- refuses those when the FROM clause holds a view's subquery.
with missing_orgs as (
    select
        'orgs' as stream,
        staged.org_id::text as record_id
    from {{ ref('stg_orgs') }} as staged
    left join {{ ref('dim_orgs') }} as mart
        on
            mart.org_id = staged.org_id
    where mart.org_id is null
),

missing_users as (
    select
        'users' as stream,
        staged.user_id as record_id
    from {{ ref('stg_users') }} as staged
    left join {{ ref('dim_users') }} as mart
        on
            mart.user_id = staged.user_id
            and mart.org_id = staged.org_id
    where mart.user_id is null
),

missing_scenarios as (
    select
        'scenarios' as stream,
        staged.scenario_id::text as record_id
    from {{ ref('stg_scenarios') }} as staged
    left join {{ ref('dim_scenarios') }} as mart
        on
            mart.scenario_id = staged.scenario_id
            and mart.org_id = staged.org_id
    where mart.scenario_id is null
),

missing_attempts as (
    select
        'attempts' as stream,
        staged.attempt_id::text as record_id
    from {{ ref('stg_attempts') }} as staged
    left join {{ ref('fact_scenario_attempts') }} as mart
        on
            mart.org_id = staged.org_id
            and mart.attempt_id = staged.attempt_id
    where staged.status = 'completed' and mart.org_id is null
),

missing_sessions as (
    select
        'sessions' as stream,
        staged.session_id::text as record_id
    from {{ ref('stg_sessions') }} as staged
    left join {{ ref('fact_sessions') }} as mart
        on
            mart.org_id = staged.org_id
            and mart.session_id = staged.session_id
    where mart.org_id is null
),

missing_events as (
    select
        'kpi_events' as stream,
        staged.event_id::text as record_id
    from {{ ref('stg_kpi_events') }} as staged
    left join {{ ref('fact_kpi_events') }} as mart
        on
            mart.org_id = staged.org_id
            and mart.id = staged.event_id
    where mart.org_id is null
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
