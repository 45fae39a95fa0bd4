-- How steady each user's metric values are, per metric and overall. Floating-point sums
-- run in session order (order by ordinal): the same bits on every build.
with series as (
    select
        org_id,
        user_id,
        metric,
        value,
        change_from_previous,
        ordinal
    from {{ ref('int_user_metric_series') }}
    where {{ in_batch('users') }}
),

per_metric as (
    select
        org_id,
        user_id,
        metric,
        case
            when count(*) >= 2 and avg(value order by ordinal) <> 0
                then greatest(0.0, 100.0 * (1.0 - stddev_samp(value order by ordinal) / abs(avg(value order by ordinal))))
        end as consistency_score,
        -- the n − 1 successive differences; var_samp is null below 2 of them (n < 3)
        var_samp(change_from_previous order by ordinal) as session_to_session_variance
    from series
    group by org_id, user_id, metric
),

overall as (
    select
        org_id,
        user_id,
        'overall' as metric,
        avg(consistency_score order by metric) as consistency_score,
        null::double precision as session_to_session_variance
    from per_metric
    group by org_id, user_id
),

combined as (
    select
        org_id,
        user_id,
        metric,
        consistency_score,
        session_to_session_variance
    from per_metric
    union all
    select
        org_id,
        user_id,
        metric,
        consistency_score,
        session_to_session_variance
    from overall
)

select
    user_id::text as user_id,
    metric::text as metric,
    consistency_score::double precision as consistency_score,
    session_to_session_variance::double precision as session_to_session_variance,
    org_id::uuid as org_id
from combined
