{{ config(
    materialized='table',
    indexes=[{'columns': ['org_id', 'user_id', 'metric']}]
) }}
-- The per-user metric series every user-analytics mart reads: one row per user, metric and
-- session with a non-null value, numbered in session order (started_at, ties: session_id),
-- with x = fractional days since the user's first session for the metric, the previous
-- session's value and whether the value moved the good way (by the metric's direction).
with session_metrics as (
    select
        org_id,
        user_id,
        metric,
        session_id,
        started_at,
        value::double precision as value
    from {{ ref('fact_session_metrics') }}
    where value is not null
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

ordered as (
    select
        session_metrics.org_id,
        session_metrics.user_id,
        session_metrics.metric,
        session_metrics.session_id,
        session_metrics.started_at,
        session_metrics.value,
        definitions.optimal_low,
        definitions.optimal_high,
        definitions.higher_is_better,
        definitions.target,
        {{ metric_goodness('session_metrics.value', 'definitions.higher_is_better',
                           'definitions.optimal_low', 'definitions.optimal_high') }} as goodness,
        row_number() over metric_order as ordinal,
        count(*) over metric_partition as n_sessions,
        first_value(session_metrics.started_at) over metric_order as first_started_at,
        lag(session_metrics.value) over metric_order as previous_value
    from session_metrics
    left join definitions on session_metrics.metric = definitions.metric
    window
        metric_partition as (
            partition by session_metrics.org_id, session_metrics.user_id, session_metrics.metric
        ),
        metric_order as (
            partition by session_metrics.org_id, session_metrics.user_id, session_metrics.metric
            order by session_metrics.started_at, session_metrics.session_id
        )
)

select
    org_id,
    user_id,
    metric,
    session_id,
    started_at,
    value,
    ordinal,
    n_sessions,
    n_sessions - ordinal + 1 as ordinal_from_last,
    {{ fractional_days('first_started_at', 'started_at') }} as x_days,
    previous_value,
    value - previous_value as change_from_previous,
    goodness,
    goodness > lag(goodness) over (
        partition by org_id, user_id, metric order by ordinal
    ) as improved_vs_previous,
    optimal_low,
    optimal_high,
    (optimal_low + optimal_high) / 2.0 as optimal_midpoint,
    higher_is_better,
    target
from ordered
