-- Each user's current level per metric compared with their baseline, last ISO week, last
-- calendar month (UTC) and their best single session.
with trends as (
    select
        org_id,
        user_id,
        metric,
        baseline_value,
        current_value
    from {{ ref('user_metric_trends') }}
),

series as (
    select
        org_id,
        user_id,
        metric,
        session_id,
        started_at,
        value,
        goodness
    from {{ ref('int_user_metric_series') }}
),

periods as (
    select
        (date_trunc('week', {{ as_of_date() }}::timestamp) - interval '7 days') at time zone 'UTC' as last_week_start,
        date_trunc('week', {{ as_of_date() }}::timestamp) at time zone 'UTC' as last_week_end,
        (date_trunc('month', {{ as_of_date() }}::timestamp) - interval '1 month') at time zone 'UTC' as last_month_start,
        date_trunc('month', {{ as_of_date() }}::timestamp) at time zone 'UTC' as last_month_end
),

period_means as (
    select
        series.org_id,
        series.user_id,
        series.metric,
        avg(series.value) filter (
            where series.started_at >= periods.last_week_start and series.started_at < periods.last_week_end
        ) as last_week_value,
        avg(series.value) filter (
            where series.started_at >= periods.last_month_start and series.started_at < periods.last_month_end
        ) as last_month_value
    from series
    cross join periods
    group by series.org_id, series.user_id, series.metric
),

ranked_sessions as (
    select
        org_id,
        user_id,
        metric,
        value,
        -- best by the metric's direction; equally good values: the earliest session's
        row_number() over (
            partition by org_id, user_id, metric
            order by goodness desc, started_at asc, session_id asc
        ) as best_rank
    from series
),

compared as (
    select
        trends.org_id,
        trends.user_id,
        trends.metric,
        trends.current_value,
        comparison.comparison,
        comparison.compared_value
    from trends
    inner join period_means
        on
            trends.org_id = period_means.org_id
            and trends.user_id = period_means.user_id
            and trends.metric = period_means.metric
    inner join ranked_sessions
        on
            trends.org_id = ranked_sessions.org_id
            and trends.user_id = ranked_sessions.user_id
            and trends.metric = ranked_sessions.metric
            and ranked_sessions.best_rank = 1
    cross join lateral (
        values
        ('baseline', trends.baseline_value),
        ('last_week', period_means.last_week_value),
        ('last_month', period_means.last_month_value),
        ('peak', ranked_sessions.value)
    ) as comparison (comparison, compared_value)
)

select
    user_id::text as user_id,
    metric::text as metric,
    comparison::text as comparison,
    current_value::double precision as current_value,
    compared_value::double precision as compared_value,
    (current_value - compared_value)::double precision as difference,
    {{ pct_change('current_value - compared_value', 'compared_value') }}::double precision as pct_change,
    org_id::uuid as org_id
from compared
