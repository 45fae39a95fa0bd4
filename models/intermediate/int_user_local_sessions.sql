{{ config(
    materialized='incremental',
    incremental_strategy='replace_batch',
    indexes=[
        {'columns': ['org_id', 'user_id', 'local_date']},
        {'columns': ['session_id'], 'unique': True},
    ],
    post_hook=["{{ star_analyze() }}"],
) }}
-- Every session with its user's local wall-clock time: the user's current IANA time zone
-- from dim_users (UTC when empty, or when the user is unknown to dim_users), the local
-- timestamp, local date, ISO day of week (1 = Monday) and hour of day, the session's
-- number in the user's history (started_at, ties: session_id) and the practice hours
-- accumulated up to and including it.
with sessions as (
    select
        session_id,
        org_id,
        user_id,
        session_type,
        started_at,
        duration_ms,
        score
    from {{ ref('fact_sessions') }}
    where {{ in_batch('users') }}
),

users as (
    select
        user_id,
        timezone
    from {{ ref('dim_users') }}
    where {{ in_batch('users') }}
),

localized as (
    select
        sessions.session_id,
        sessions.org_id,
        sessions.user_id,
        sessions.session_type,
        sessions.started_at,
        sessions.duration_ms,
        sessions.score,
        {{ user_time_zone('users.timezone') }} as time_zone,
        {{ local_timestamp('sessions.started_at', 'users.timezone') }} as local_started_at
    from sessions
    left join users on sessions.user_id = users.user_id
)

select
    session_id,
    org_id,
    user_id,
    session_type,
    started_at,
    duration_ms,
    score,
    time_zone,
    local_started_at,
    local_started_at::date as local_date,
    extract(isodow from local_started_at)::integer as local_day_of_week,
    extract(hour from local_started_at)::integer as local_hour_of_day,
    row_number() over user_order as session_number,
    (coalesce(sum(duration_ms) over user_order, 0) / 3600000.0)::double precision as cumulative_practice_hours
from localized
window user_order as (
    partition by org_id, user_id
    order by started_at, session_id
    rows between unbounded preceding and current row
)
