{{ config(severity='warn') }}
-- KPI events whose attempt, or user, is unknown to the warehouse (files arrive in any
-- order, so a few are expected for a while): warns when they exceed
-- var('orphan_event_tolerance_pct', 1.0) percent of all events. Returns one row with the
-- figures when over the tolerance.
with events as (
    select
        event_id,
        org_id,
        attempt_id,
        user_id
    from {{ ref('stg_kpi_events') }}
),

known_attempts as (
    select
        org_id,
        attempt_id
    from {{ ref('stg_attempts') }}
),

known_users as (
    select user_id
    from {{ ref('stg_users') }}
),

counted as (
    select
        count(*) as events,
        count(*) filter (where known_attempts.attempt_id is null) as events_without_attempt,
        count(*) filter (where known_users.user_id is null) as events_without_user,
        count(*) filter (
            where known_attempts.attempt_id is null or known_users.user_id is null
        ) as orphan_events
    from events
    left join known_attempts
        on
            events.org_id = known_attempts.org_id
            and events.attempt_id = known_attempts.attempt_id
    left join known_users on events.user_id = known_users.user_id
)

select
    events,
    events_without_attempt,
    events_without_user,
    orphan_events,
    100.0 * orphan_events / events as orphan_pct,
    {{ var('orphan_event_tolerance_pct', 1.0) }} as tolerance_pct
from counted
where
    events > 0
    and 100.0 * orphan_events / events > {{ var('orphan_event_tolerance_pct', 1.0) }}
