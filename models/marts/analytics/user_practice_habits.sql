{{ config(
    as_of_relative=true,
) }}
-- How and when each user practises; days, dates and hours in the user's own time zone.
with sessions as (
    select
        org_id,
        user_id,
        started_at,
        duration_ms,
        time_zone,
        local_date,
        local_day_of_week,
        local_hour_of_day
    from {{ ref('int_user_local_sessions') }}
    where {{ in_batch('users') }}
),

streaks as (
    select
        org_id,
        user_id,
        streak_end,
        streak_days
    from {{ ref('int_user_streaks') }}
    where {{ in_batch('users') }}
),

activity as (
    select
        org_id,
        user_id,
        count(*) as total_sessions,
        coalesce(sum(duration_ms), 0) / 60000.0 as total_practice_minutes,
        min(started_at) as first_session_at,
        max(started_at) as last_session_at,
        min(local_date) as first_date,
        max(local_date) as last_date,
        count(distinct local_date) as active_days,
        -- the mean of the gaps between consecutive sessions telescopes to (last − first) / (n − 1)
        case
            when count(*) >= 2
                then {{ fractional_days('min(started_at)', 'max(started_at)') }} / (count(*) - 1)
        end as avg_days_between_sessions,
        -- most frequent; ties: the smallest (mode() keeps the first value in sort order)
        mode() within group (order by local_day_of_week) as preferred_day_of_week,
        mode() within group (order by local_hour_of_day) as preferred_hour_of_day,
        -- the user's local date at the last instant of as_of (UTC): as_of, or as_of + 1 east of UTC
        max((({{ as_of_end() }}) - interval '1 microsecond') at time zone time_zone)::date as local_as_of_date
    from sessions
    group by org_id, user_id
),

streak_summary as (
    select
        streaks.org_id,
        streaks.user_id,
        max(streaks.streak_days) as longest_streak_days,
        -- the run ending on as_of or the day before (local dates; or on the user's local
        -- date at as_of's end, which is as_of + 1 for zones ahead of UTC)
        max(streaks.streak_days) filter (
            where streaks.streak_end between {{ as_of_date() }} - 1 and activity.local_as_of_date
        ) as current_streak_days
    from streaks
    inner join activity
        on
            streaks.org_id = activity.org_id
            and streaks.user_id = activity.user_id
    group by streaks.org_id, streaks.user_id
)

select
    activity.user_id::text as user_id,
    activity.total_sessions::bigint as total_sessions,
    activity.total_practice_minutes::double precision as total_practice_minutes,
    activity.first_session_at::timestamptz as first_session_at,
    activity.last_session_at::timestamptz as last_session_at,
    activity.active_days::bigint as active_days,
    (
        activity.total_sessions
        / greatest(1.0, (activity.last_date - activity.first_date + 1) / 7.0)
    )::double precision as sessions_per_week,
    activity.avg_days_between_sessions::double precision as avg_days_between_sessions,
    streak_summary.longest_streak_days::bigint as longest_streak_days,
    coalesce(streak_summary.current_streak_days, 0)::bigint as current_streak_days,
    activity.preferred_day_of_week::integer as preferred_day_of_week,
    activity.preferred_hour_of_day::integer as preferred_hour_of_day,
    activity.org_id::uuid as org_id
from activity
inner join streak_summary
    on
        activity.org_id = streak_summary.org_id
        and activity.user_id = streak_summary.user_id
