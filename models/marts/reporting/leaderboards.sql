{{ config(
    as_of_relative=true,
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
    where {{ in_batch('orgs') }}
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
        percent_rank() over period_ranking as percent_rank,
        case period_type
            when 'week' then period_start - 7
            else (period_start - interval '1 month')::date
        end as previous_period_start
    from user_periods
    window period_ranking as (partition by org_id, period_type, period_start order by avg_score desc)
),

with_previous as (
    -- the user's rank in the period just before: the rank of their previous ranked period
    -- when that period is the one just before, else none
    select
        org_id,
        user_id,
        period_type,
        period_start,
        attempts,
        avg_score,
        rank,
        dense_rank,
        percent_rank,
        case
            when lag(period_start) over user_history = previous_period_start
                then lag(rank) over user_history
        end as previous_rank
    from ranked
    window user_history as (partition by org_id, user_id, period_type order by period_start)
),

users as (
    select
        user_id,
        team
    from {{ ref('dim_users') }}
)

select
    with_previous.org_id,
    with_previous.period_type,
    with_previous.period_start,
    with_previous.user_id,
    users.team,
    with_previous.attempts,
    with_previous.avg_score,
    with_previous.rank,
    with_previous.dense_rank,
    with_previous.percent_rank,
    with_previous.previous_rank,
    with_previous.previous_rank - with_previous.rank as rank_change,
    with_previous.period_start = case with_previous.period_type
        when 'week' then date_trunc('week', {{ as_of_date() }}::timestamp)::date
        else date_trunc('month', {{ as_of_date() }}::timestamp)::date
    end as is_current_period
from with_previous
left join users on with_previous.user_id = users.user_id
