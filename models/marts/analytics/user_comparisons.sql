{{ config(
    as_of_relative=true,
) }}
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
    where {{ in_batch('users') }}
),

series as (
    select
        org_id,
        user_id,
        metric,
        started_at,
        value,
        goodness,
        ordinal
    from {{ ref('int_user_metric_series') }}
    where {{ in_batch('users') }}
),

periods as (
    select
        (date_trunc('week', {{ as_of_date() }}::timestamp) - interval '7 days') at time zone 'UTC' as last_week_start,
        date_trunc('week', {{ as_of_date() }}::timestamp) at time zone 'UTC' as last_week_end,
        (date_trunc('month', {{ as_of_date() }}::timestamp) - interval '1 month') at time zone 'UTC' as last_month_start,
        date_trunc('month', {{ as_of_date() }}::timestamp) at time zone 'UTC' as last_month_end
),

period_summary as (
    -- one pass over the series: the two period means, and the peak: the best value by the
    -- metric's direction, the earliest such session's (at the same instant: the smaller
    -- value), picked as the greatest [goodness, −epoch, −value] without sorting the series
    select
        series.org_id,
        series.user_id,
        series.metric,
        avg(series.value order by series.ordinal) filter (
            where series.started_at >= periods.last_week_start and series.started_at < periods.last_week_end
        ) as last_week_value,
        avg(series.value order by series.ordinal) filter (
            where series.started_at >= periods.last_month_start and series.started_at < periods.last_month_end
        ) as last_month_value,
        -(max(array[
            series.goodness,
            -extract(epoch from series.started_at)::double precision,
            -series.value
        ]))[3] as peak_value
    from series
    cross join periods
    group by series.org_id, series.user_id, series.metric
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
    inner join period_summary
        on
            trends.org_id = period_summary.org_id
            and trends.user_id = period_summary.user_id
            and trends.metric = period_summary.metric
    cross join lateral (
        values
        ('baseline', trends.baseline_value),
        ('last_week', period_summary.last_week_value),
        ('last_month', period_summary.last_month_value),
        ('peak', period_summary.peak_value)
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
