-- Where each user's metric is heading: the trend line projected 7, 30 and 91 days past the
-- user's last session for the metric, and the chance of meeting the metric's goal there.
with trends as (
    select
        org_id,
        user_id,
        metric,
        n,
        slope_per_day,
        intercept
    from {{ ref('user_metric_trends') }}
    where {{ in_batch('users') }}
),

regression as (
    select
        org_id,
        user_id,
        metric,
        last_x_days,
        residual_standard_error
    from {{ ref('int_user_metric_regression') }}
    where {{ in_batch('users') }}
),

definitions as (
    select
        metric,
        optimal_low::double precision as optimal_low,
        optimal_high::double precision as optimal_high,
        higher_is_better::boolean as higher_is_better,
        target::double precision as target
    from {{ ref('metric_definitions') }}
),

horizons as (
    select
        horizon,
        horizon_days
    from (
        values
        ('next_week', 7),
        ('next_month', 30),
        ('next_quarter', 91)
    ) as horizon_list (horizon, horizon_days)
),

projections as (
    select
        trends.org_id,
        trends.user_id,
        trends.metric,
        horizons.horizon,
        horizons.horizon_days,
        case
            when trends.n >= 3 and trends.slope_per_day is not null
                then trends.intercept + trends.slope_per_day * (regression.last_x_days + horizons.horizon_days)
        end as projected_value,
        regression.residual_standard_error as s,
        definitions.target,
        definitions.optimal_low,
        definitions.optimal_high,
        definitions.higher_is_better
    from trends
    inner join regression
        on
            trends.org_id = regression.org_id
            and trends.user_id = regression.user_id
            and trends.metric = regression.metric
    left join definitions on trends.metric = definitions.metric
    cross join horizons
)

select
    user_id::text as user_id,
    metric::text as metric,
    horizon::text as horizon,
    horizon_days::integer as horizon_days,
    projected_value::double precision as projected_value,
    target::double precision as target_value,
    (case
        when projected_value is null then null
        when s = 0
            then case
                when {{ metric_meets_goal('projected_value', 'higher_is_better', 'target',
                                          'optimal_low', 'optimal_high') }} then 1.0
                else 0.0
            end
        when higher_is_better then {{ normal_cdf('(projected_value - target) / s') }}
        when not higher_is_better then {{ normal_cdf('(target - projected_value) / s') }}
        else
            {{ normal_cdf('(optimal_high - projected_value) / s') }}
            - {{ normal_cdf('(optimal_low - projected_value) / s') }}
    end)::double precision as goal_probability,
    org_id::uuid as org_id
from projections
