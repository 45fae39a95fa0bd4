{{ config(
    indexes=[{'columns': ['org_id', 'month']}, {'columns': ['org_id', 'user_id']}],
) }}
-- Monthly leaderboard per org: each user's completed attempts with a score in a calendar
-- month (UTC, by started_at), ranked by average score (rank(): ties share a rank).
with user_months as (
    select
        org_id,
        user_id,
        period_start as month,
        avg_score,
        attempts,
        total_duration,
        avg_talk_percentage
    from {{ ref('int_star_user_period_scores') }}
    where
        {{ in_batch('orgs') }}
        and period_type = 'month'
)

select
    org_id,
    user_id,
    month,
    avg_score,
    attempts,
    total_duration,
    avg_talk_percentage,
    rank() over (partition by org_id, month order by avg_score desc) as rank
from user_months
