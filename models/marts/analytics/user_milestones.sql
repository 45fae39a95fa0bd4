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
),

streaks as (
    select
        org_id,
        user_id,
        streak_start,
        streak_days
    from {{ ref('int_user_streaks') }}
),

first_session_of_day as (
    select
        org_id,
        user_id,
        local_date,
        session_id,
        started_at,
        row_number() over (
            partition by org_id, user_id, local_date order by started_at, session_id
        ) as rank_in_day
    from sessions
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

streak_milestones as (
    -- streaks: the first session on the local date a run reached the threshold length
    select
        streaks.org_id,
        streaks.user_id,
        definitions.milestone,
        first_session_of_day.session_id,
        first_session_of_day.started_at,
        definitions.threshold as value
    from streaks
    inner join definitions
        on
            definitions.milestone_type = 'streak_days'
            and streaks.streak_days >= definitions.threshold
    inner join first_session_of_day
        on
            streaks.org_id = first_session_of_day.org_id
            and streaks.user_id = first_session_of_day.user_id
            and first_session_of_day.local_date = streaks.streak_start + (definitions.threshold::integer - 1)
            and first_session_of_day.rank_in_day = 1
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
