{{ config(
    indexes=[
        {'columns': ['org_id', 'period_type', 'period_start']},
        {'columns': ['org_id', 'user_id']},
    ],
) }}
-- Weekly (ISO week) and monthly leaderboards per org, UTC, over completed attempts with a
-- score: rank, dense_rank and percent_rank by average score (highest first), the user's
-- rank in the previous period and the change since then.
with user_periods as (
    select
        org_id,
        user_id,
        period_type,
        period_start,
        attempts,
        avg_score
    from {{ ref('int_star_user_period_scores') }}
),

ranked as (
    select
        org_id,
        user_id,
        period_type,
        period_start,
        attempts,
        avg_score,
        rank() over period_ranking as rank,
        dense_rank() over period_ranking as dense_rank,
        percent_rank() over period_ranking as percent_rank
    from user_periods
    window period_ranking as (partition by org_id, period_type, period_start order by avg_score desc)
),

users as (
    select
        user_id,
        team
    from {{ ref('dim_users') }}
)

select
    ranked.org_id,
    ranked.period_type,
    ranked.period_start,
    ranked.user_id,
    users.team,
    ranked.attempts,
    ranked.avg_score,
    ranked.rank,
    ranked.dense_rank,
    ranked.percent_rank,
    previous.rank as previous_rank,
    previous.rank - ranked.rank as rank_change,
    ranked.period_start = case ranked.period_type
        when 'week' then date_trunc('week', {{ as_of_date() }}::timestamp)::date
        else date_trunc('month', {{ as_of_date() }}::timestamp)::date
    end as is_current_period
from ranked
left join ranked as previous
    on
        ranked.org_id = previous.org_id
        and ranked.user_id = previous.user_id
        and ranked.period_type = previous.period_type
        and previous.period_start = case ranked.period_type
            when 'week' then ranked.period_start - 7
            else (ranked.period_start - interval '1 month')::date
        end
left join users on ranked.user_id = users.user_id
