-- Per org, user and calendar period (ISO week and month, UTC, by started_at) over completed
-- attempts with a score: attempts, average score, total duration and average talk
-- percentage (attempts with neither talk nor listen time skipped). Leaderboards rank these.
with scored_attempts as not materialized (
    select
        org_id,
        user_id,
        score,
        duration_seconds,
        {{ talk_percentage('talk_ms', 'listen_ms') }} as talk_percentage,
        {{ utc_week_start('started_at') }} as week_start,
        {{ utc_month_start('started_at') }} as month_start
    from {{ ref('fact_scenario_attempts') }}
    where score is not null
),

periods as (
    select
        org_id,
        user_id,
        'week' as period_type,
        week_start as period_start,
        score,
        duration_seconds,
        talk_percentage
    from scored_attempts

    union all

    select
        org_id,
        user_id,
        'month' as period_type,
        month_start as period_start,
        score,
        duration_seconds,
        talk_percentage
    from scored_attempts
)

select
    org_id,
    user_id,
    period_type,
    period_start,
    count(*) as attempts,
    -- exact decimal average, so users with the same scores tie exactly in the rankings
    {{ exact_avg('score') }} as avg_score,
    sum(duration_seconds) as total_duration,
    {{ exact_avg('talk_percentage') }} as avg_talk_percentage
from periods
group by org_id, user_id, period_type, period_start
