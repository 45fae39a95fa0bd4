-- Each user's trend per metric: baseline (first 3 sessions) vs current (last 3), and the
-- least-squares line of value on days since the first session (int_user_metric_regression).
-- Floating-point aggregates run in session order (order by ordinal): the same bits on
-- every build, incremental or full.
with series as (
    select
        org_id,
        user_id,
        metric,
        value,
        ordinal,
        ordinal_from_last,
        optimal_low,
        optimal_high,
        higher_is_better
    from {{ ref('int_user_metric_series') }}
    where {{ in_batch('users') }}
),

regression as (
    select
        org_id,
        user_id,
        metric,
        slope_per_day,
        intercept,
        r_squared
    from {{ ref('int_user_metric_regression') }}
    where {{ in_batch('users') }}
),

endpoints as (
    select
        org_id,
        user_id,
        metric,
        optimal_low,
        optimal_high,
        higher_is_better,
        count(*) as n,
        avg(value order by ordinal) filter (where ordinal <= 3) as baseline_value,
        avg(value order by ordinal) filter (where ordinal_from_last <= 3) as current_value
    from series
    group by org_id, user_id, metric, optimal_low, optimal_high, higher_is_better
),

changes as (
    select
        endpoints.org_id,
        endpoints.user_id,
        endpoints.metric,
        endpoints.n,
        endpoints.baseline_value,
        endpoints.current_value,
        endpoints.current_value - endpoints.baseline_value as change_abs,
        {{ pct_change('endpoints.current_value - endpoints.baseline_value', 'endpoints.baseline_value') }}
            as change_pct,
        {{ metric_goodness('endpoints.current_value', 'endpoints.higher_is_better',
                           'endpoints.optimal_low', 'endpoints.optimal_high') }}
        > {{ metric_goodness('endpoints.baseline_value', 'endpoints.higher_is_better',
                             'endpoints.optimal_low', 'endpoints.optimal_high') }}
            as current_is_better,
        regression.slope_per_day,
        regression.intercept,
        regression.r_squared
    from endpoints
    inner join regression
        on
            endpoints.org_id = regression.org_id
            and endpoints.user_id = regression.user_id
            and endpoints.metric = regression.metric
)

select
    user_id::text as user_id,
    metric::text as metric,
    n::bigint as n,
    baseline_value::double precision as baseline_value,
    current_value::double precision as current_value,
    change_abs::double precision as change_abs,
    change_pct::double precision as change_pct,
    slope_per_day::double precision as slope_per_day,
    intercept::double precision as intercept,
    r_squared::double precision as r_squared,
    (7 * slope_per_day)::double precision as velocity_per_week,
    (case
        when n < 3 or change_pct is null or abs(change_pct) < 5 then 'stable'
        when current_is_better then 'improving'
        else 'declining'
    end)::text as trend_direction,
    (case
        when r_squared >= 0.7 then 'strong'
        when r_squared >= 0.4 then 'moderate'
        else 'weak'
    end)::text as trend_strength,
    org_id::uuid as org_id
from changes
