-- The milestones (seed milestone_definitions) each user has reached, with the session that
-- first reached each one.
with definitions as (
    select
        milestone,
        milestone_type,
        threshold::double precision as threshold
    from {{ ref('milestone_definitions') }}
),

sessions as (
    select
        org_id,
        user_id,
        session_id,
        started_at,
        score,
        local_date,
        session_number,
        cumulative_practice_hours
    from {{ ref('int_user_local_sessions') }}
    where {{ in_batch('users') }}
),

streaks as (
    select
        org_id,
        user_id,
        streak_start,
        streak_days
    from {{ ref('int_user_streaks') }}
    where {{ in_batch('users') }}
),

session_milestones as (
    -- session counts, scores and practice hours: every session at or past the threshold
    select
        sessions.org_id,
        sessions.user_id,
        definitions.milestone,
        sessions.session_id,
        sessions.started_at,
        case definitions.milestone_type
            when 'sessions' then sessions.session_number::double precision
            when 'score' then sessions.score
            when 'practice_hours' then sessions.cumulative_practice_hours
        end as value
    from sessions
    inner join definitions
        on
            (definitions.milestone_type = 'sessions' and sessions.session_number = definitions.threshold)
            or (definitions.milestone_type = 'score' and sessions.score >= definitions.threshold)
            or (
                definitions.milestone_type = 'practice_hours'
                and sessions.cumulative_practice_hours >= definitions.threshold
            )
),

streak_reached as materialized (
    -- the local date on which a run of consecutive local dates reached the threshold length
    -- (materialized: computed before it meets the sessions, so that join is on the date)
    select
        streaks.org_id,
        streaks.user_id,
        definitions.milestone,
        definitions.threshold,
        streaks.streak_start + (definitions.threshold::integer - 1) as reached_date
    from streaks
    inner join definitions
        on
            definitions.milestone_type = 'streak_days'
            and streaks.streak_days >= definitions.threshold
),

streak_milestones as (
    -- streaks: the sessions of that local date (the earliest is picked below)
    select
        streak_reached.org_id,
        streak_reached.user_id,
        streak_reached.milestone,
        sessions.session_id,
        sessions.started_at,
        streak_reached.threshold as value
    from streak_reached
    inner join sessions
        on
            streak_reached.org_id = sessions.org_id
            and streak_reached.user_id = sessions.user_id
            and streak_reached.reached_date = sessions.local_date
),

candidates as (
    select
        org_id,
        user_id,
        milestone,
        session_id,
        started_at,
        value
    from session_milestones
    union all
    select
        org_id,
        user_id,
        milestone,
        session_id,
        started_at,
        value
    from streak_milestones
),

firsts as (
    select
        org_id,
        user_id,
        milestone,
        session_id,
        started_at,
        value,
        row_number() over (
            partition by org_id, user_id, milestone order by started_at, session_id
        ) as reach_rank
    from candidates
)

select
    user_id::text as user_id,
    milestone::text as milestone,
    started_at::timestamptz as achieved_at,
    value::double precision as value,
    session_id::uuid as session_id,
    org_id::uuid as org_id
from firsts
where reach_rank = 1
