{{ config(
    materialized='incremental',
    incremental_strategy='replace_batch',
    indexes=[{'columns': ['org_id', 'user_id']}],
    post_hook=["{{ star_statements([
        star_primary_key(['user_id', 'streak_start']),
        star_analyze(),
    ]) }}"],
) }}
-- Practice streaks: runs of consecutive local dates (the user's time zone) with at least one
-- session, found set-based with the gaps-and-islands technique: over a user's distinct
-- active dates in order, date − row_number is constant exactly within a run of consecutive
-- dates. Local dates make a 21:30 Los Angeles habit one streak although its UTC dates
-- shift, and a daylight-saving change moves no date. One row per user and run.
with active_days as (
    select distinct
        org_id,
        user_id,
        local_date
    from {{ ref('int_user_local_sessions') }}
    where {{ in_batch('users') }}
),

islands as (
    select
        org_id,
        user_id,
        local_date,
        local_date - (row_number() over (
            partition by org_id, user_id order by local_date
        ))::integer as island
    from active_days
)

select
    org_id,
    user_id,
    min(local_date) as streak_start,
    max(local_date) as streak_end,
    count(*) as streak_days
from islands
group by org_id, user_id, island
