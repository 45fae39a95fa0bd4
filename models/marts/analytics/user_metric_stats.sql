-- All-time descriptive statistics of each user's sessions for each metric.
-- Floating-point aggregates run in session order (order by ordinal): the same bits on
-- every build, incremental or full.
with series as (
    select
        org_id,
        user_id,
        metric,
        value,
        ordinal,
        improved_vs_previous,
        optimal_low,
        optimal_high
    from {{ ref('int_user_metric_series') }}
    where {{ in_batch('users') }}
),

summary as (
    select
        org_id,
        user_id,
        metric,
        count(*) as n,
        min(value) as min_value,
        max(value) as max_value,
        avg(value order by ordinal) as mean_value,
        stddev_samp(value order by ordinal) as stddev_value,
        var_samp(value order by ordinal) as variance_value,
        percentile_cont(array[0.25, 0.5, 0.75, 0.9, 0.95, 0.99]) within group (
            order by value
        ) as percentiles,
        -- most frequent value rounded to 1 decimal (half away from zero); ties: the smallest
        mode() within group (order by round(value::numeric, 1)) as mode_value,
        count(*) filter (where value >= optimal_low and value <= optimal_high) as n_in_optimal,
        count(*) filter (where value > optimal_high) as n_above_optimal,
        count(*) filter (where value < optimal_low) as n_below_optimal,
        count(*) filter (where improved_vs_previous) as n_improved,
        count(*) filter (where ordinal > 1) as n_pairs
    from series
    group by org_id, user_id, metric
)

select
    user_id::text as user_id,
    metric::text as metric,
    n::bigint as n,
    min_value::double precision as min_value,
    max_value::double precision as max_value,
    mean_value::double precision as mean_value,
    percentiles[2]::double precision as median_value,
    mode_value::double precision as mode_value,
    stddev_value::double precision as stddev_value,
    variance_value::double precision as variance_value,
    (max_value - min_value)::double precision as range_value,
    (percentiles[3] - percentiles[1])::double precision as iqr_value,
    percentiles[1]::double precision as p25,
    percentiles[2]::double precision as p50,
    percentiles[3]::double precision as p75,
    percentiles[4]::double precision as p90,
    percentiles[5]::double precision as p95,
    percentiles[6]::double precision as p99,
    {{ pct_of('n_in_optimal', 'n') }}::double precision as pct_in_optimal,
    {{ pct_of('n_above_optimal', 'n') }}::double precision as pct_above_optimal,
    {{ pct_of('n_below_optimal', 'n') }}::double precision as pct_below_optimal,
    {{ pct_of('n_improved', 'n_pairs') }}::double precision as pct_improved_vs_previous,
    org_id::uuid as org_id
from summary
