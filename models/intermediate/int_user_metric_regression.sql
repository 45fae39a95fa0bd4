{{ config(
    materialized='incremental',
    incremental_strategy='replace_batch',
    indexes=[{'columns': ['org_id', 'user_id', 'metric']}],
    post_hook=["{{ star_statements([
        star_primary_key(['user_id', 'metric']),
        star_analyze(),
    ]) }}"],
) }}
-- Ordinary least squares of a user's metric value on x = days since their first session for
-- the metric, once for every mart: slope, intercept and r² exactly as Postgres' regr_slope,
-- regr_intercept and regr_r2 define them (null when x has no variance; r² = 1 when the values
-- are constant), x of the last session, and the residual standard error
-- s = sqrt(SSE / (n − 2)) (null when n < 3; 0 for a constant series).
-- Floating-point sums run in session order (order by ordinal), so the figures do not
-- depend on the order rows are read: an incremental build equals a full refresh bit for bit.
with series as (
    select
        org_id,
        user_id,
        metric,
        value,
        x_days,
        ordinal
    from {{ ref('int_user_metric_series') }}
    where {{ in_batch('users') }}
),

fits as (
    select
        org_id,
        user_id,
        metric,
        count(*) as n_sessions,
        regr_slope(value, x_days order by ordinal) as slope_per_day,
        regr_intercept(value, x_days order by ordinal) as intercept,
        regr_r2(value, x_days order by ordinal) as raw_r_squared,
        min(value) = max(value) as is_constant,
        max(x_days) as last_x_days
    from series
    group by org_id, user_id, metric
),

residuals as (
    select
        series.org_id,
        series.user_id,
        series.metric,
        sum(
            (series.value - (fits.intercept + fits.slope_per_day * series.x_days))
            * (series.value - (fits.intercept + fits.slope_per_day * series.x_days))
            order by series.ordinal
        ) as sum_squared_errors
    from series
    inner join fits
        on
            series.org_id = fits.org_id
            and series.user_id = fits.user_id
            and series.metric = fits.metric
    where fits.slope_per_day is not null and fits.n_sessions >= 3
    group by series.org_id, series.user_id, series.metric
)

select
    fits.org_id,
    fits.user_id,
    fits.metric,
    fits.n_sessions,
    fits.slope_per_day,
    fits.intercept,
    -- regr_r2 is 1 when y has no variance; say so exactly, not up to rounding residue
    case
        when fits.raw_r_squared is null then null
        when fits.is_constant then 1.0
        else fits.raw_r_squared
    end::double precision as r_squared,
    fits.last_x_days,
    residuals.sum_squared_errors,
    case
        when fits.n_sessions < 3 or fits.slope_per_day is null then null
        when fits.is_constant then 0.0
        else sqrt(residuals.sum_squared_errors / (fits.n_sessions - 2))
    end::double precision as residual_standard_error
from fits
left join residuals
    on
        fits.org_id = residuals.org_id
        and fits.user_id = residuals.user_id
        and fits.metric = residuals.metric
