-- One learning pattern per user and metric, from the trend and the consistency score.
with trends as (
    select
        org_id,
        user_id,
        metric,
        change_pct,
        trend_direction,
        trend_strength
    from {{ ref('user_metric_trends') }}
    where {{ in_batch('users') }}
),

consistency as (
    select
        org_id,
        user_id,
        metric,
        consistency_score
    from {{ ref('user_consistency') }}
    where
        {{ in_batch('users') }}
        and metric <> 'overall'
)

select
    trends.user_id::text as user_id,
    trends.metric::text as metric,
    (case
        when consistency.consistency_score < 60 then 'volatile'
        when
            trends.trend_direction = 'improving'
            and abs(trends.change_pct) >= 20
            and trends.trend_strength in ('strong', 'moderate')
            then 'rapid_improvement'
        when
            trends.trend_direction = 'improving'
            and trends.trend_strength in ('strong', 'moderate')
            then 'consistent_improvement'
        when trends.trend_direction = 'declining' then 'declining'
        when trends.trend_direction = 'stable' then 'plateau'
        else 'none'
    end)::text as pattern,
    trends.org_id::uuid as org_id
from trends
left join consistency
    on
        trends.org_id = consistency.org_id
        and trends.user_id = consistency.user_id
        and trends.metric = consistency.metric
