{{ config(
    as_of_relative=true,
) }}
-- One row per org (every org of dim_orgs and any org with attempts), over completed
-- attempts: distinct users, attempts, average score, the latest end (or start when the end
-- is unknown), and the attempts that ended in the 7- and 30-day windows before as_of's end.
with attempts as (
    select
        org_id,
        user_id,
        score,
        started_at,
        ended_at
    from {{ ref('fact_scenario_attempts') }}
    where {{ in_batch('orgs') }}
),

org_attempts as (
    select
        org_id,
        count(distinct user_id) as active_users,
        count(*) as total_attempts,
        {{ exact_avg('score') }} as avg_score,
        max(coalesce(ended_at, started_at)) as last_activity,
        count(*) filter (where {{ in_window_before_as_of('ended_at', 7) }}) as attempts_this_week,
        count(*) filter (where {{ in_window_before_as_of('ended_at', 30) }}) as attempts_this_month
    from attempts
    group by org_id
),

orgs as (
    select org_id from {{ ref('dim_orgs') }}
    where {{ in_batch('orgs') }}
    union
    select org_id from org_attempts
)

select
    orgs.org_id,
    coalesce(org_attempts.active_users, 0) as active_users,
    coalesce(org_attempts.total_attempts, 0) as total_attempts,
    org_attempts.avg_score,
    org_attempts.last_activity,
    coalesce(org_attempts.attempts_this_week, 0) as attempts_this_week,
    coalesce(org_attempts.attempts_this_month, 0) as attempts_this_month
from orgs
left join org_attempts on orgs.org_id = org_attempts.org_id
