{{ config(
    materialized='incremental',
    incremental_strategy='replace_batch',
    post_hook=["{{ star_primary_key(['org_id', 'user_id', 'metric', 'session_id']) }}", "{{ star_analyze() }}"],
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
    where
        {{ in_batch('users') }}
        and value is not null
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
    -- one sort, one window: the definition is joined after numbering (narrower sort rows)
    select
        org_id,
        user_id,
        metric,
        session_id,
        started_at,
        value,
        row_number() over metric_order as ordinal,
        count(*) over metric_order_all as n_sessions,
        first_value(started_at) over metric_order as first_started_at,
        lag(value) over metric_order as previous_value
    from session_metrics
    window
        metric_order as (
            partition by org_id, user_id, metric
            order by started_at, session_id
        ),
        metric_order_all as (
            metric_order rows between unbounded preceding and unbounded following
        )
)

select
    ordered.org_id,
    ordered.user_id,
    ordered.metric,
    ordered.session_id,
    ordered.started_at,
    ordered.value,
    ordered.ordinal,
    ordered.n_sessions,
    ordered.n_sessions - ordered.ordinal + 1 as ordinal_from_last,
    {{ fractional_days('ordered.first_started_at', 'ordered.started_at') }} as x_days,
    ordered.previous_value,
    ordered.value - ordered.previous_value as change_from_previous,
    {{ metric_goodness('ordered.value', 'definitions.higher_is_better',
                       'definitions.optimal_low', 'definitions.optimal_high') }} as goodness,
    {{ metric_goodness('ordered.value', 'definitions.higher_is_better',
                       'definitions.optimal_low', 'definitions.optimal_high') }}
    > {{ metric_goodness('ordered.previous_value', 'definitions.higher_is_better',
                         'definitions.optimal_low', 'definitions.optimal_high') }} as improved_vs_previous,
    definitions.optimal_low,
    definitions.optimal_high,
    (definitions.optimal_low + definitions.optimal_high) / 2.0 as optimal_midpoint,
    definitions.higher_is_better,
    definitions.target
from ordered
left join definitions on ordered.metric = definitions.metric
