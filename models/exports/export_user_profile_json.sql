{{ config(
    alias='user_profile_json',
    pre_hook="{{ user_profile_per_user_functions(
        ref('dim_users'), ref('export_user_summary'), ref('export_sessions'), ref('export_kpi_events'),
        ref('fact_sessions'), ref('fact_kpi_events'),
    ) }}",
) }}
-- The full per-user export document: one row per user (dim_users) with a JSON object
-- assembled from the very relations the flat views and the analytics marts publish, so
-- every figure equals its flat counterpart: summary = the user's exports.user_summary row,
-- sessions = their exports.sessions rows, history events = their exports.kpi_events rows,
-- and one section per analytics mart (rows as stored, user_id left out).
-- On a distributed (Citus) warehouse the view reads its Citus tables only through the
-- functions of macro user_profile_per_user_functions (the same rows, columns, order and
-- JSON as the set-based form here): the people once, with the organisations holding
-- their rows, then each user's sessions and coaching history per row read, from those
-- organisations' shards. Set-based, Citus would gather every user's sessions and
-- events on the coordinator before the first row, even for dbt's contract check, beyond
-- its 1 GB intermediate-result limit at 10 M events.
-- depends_on: {{ ref('export_user_summary') }}, {{ ref('export_sessions') }}, {{ ref('export_kpi_events') }}
{%- set reads_per_user = warehouse_distributed() %}
-- sqlfluff:indentation:template_blocks_indent:False
with statistics as (
    select
        user_id,
        metric,
        n,
        min_value,
        max_value,
        mean_value,
        median_value,
        mode_value,
        stddev_value,
        variance_value,
        range_value,
        iqr_value,
        p25,
        p50,
        p75,
        p90,
        p95,
        p99,
        pct_in_optimal,
        pct_above_optimal,
        pct_below_optimal,
        pct_improved_vs_previous
    from {{ ref('user_metric_stats') }}
),

statistics_documents as (
    select
        statistics.user_id,
        jsonb_agg(to_jsonb(statistics) - 'user_id' order by statistics.metric) as document
    from statistics
    group by statistics.user_id
),

trends as (
    select
        user_id,
        metric,
        n,
        baseline_value,
        current_value,
        change_abs,
        change_pct,
        slope_per_day,
        intercept,
        r_squared,
        velocity_per_week,
        trend_direction,
        trend_strength
    from {{ ref('user_metric_trends') }}
),

trend_documents as (
    select
        trends.user_id,
        jsonb_agg(to_jsonb(trends) - 'user_id' order by trends.metric) as document,
        jsonb_agg(
            jsonb_build_object(
                'metric', trends.metric,
                'slope_per_day', trends.slope_per_day,
                'velocity_per_week', trends.velocity_per_week
            ) order by trends.metric
        ) as velocity
    from trends
    group by trends.user_id
),

patterns as (
    select
        user_id,
        metric,
        pattern
    from {{ ref('user_metric_patterns') }}
),

pattern_documents as (
    select
        patterns.user_id,
        jsonb_agg(to_jsonb(patterns) - 'user_id' order by patterns.metric) as document
    from patterns
    group by patterns.user_id
),

consistency as (
    select
        user_id,
        metric,
        consistency_score,
        session_to_session_variance
    from {{ ref('user_consistency') }}
),

consistency_documents as (
    select
        consistency.user_id,
        jsonb_agg(to_jsonb(consistency) - 'user_id' order by consistency.metric) as document
    from consistency
    group by consistency.user_id
),

habits as (
    select {{ user_practice_habits_columns() | join(', ') }}
    from {{ ref('user_practice_habits') }}
),

best_worst as (
    select
        user_id,
        kind,
        rank,
        session_id,
        started_at,
        score
    from {{ ref('user_best_worst_sessions') }}
),

best_worst_documents as (
    select
        best_worst.user_id,
        jsonb_agg(
            to_jsonb(best_worst) - 'user_id' order by best_worst.kind, best_worst.rank
        ) as document
    from best_worst
    group by best_worst.user_id
),

milestones as (
    select
        user_id,
        milestone,
        achieved_at,
        value
    from {{ ref('user_milestones') }}
),

milestone_documents as (
    select
        milestones.user_id,
        jsonb_agg(
            to_jsonb(milestones) - 'user_id' order by milestones.achieved_at, milestones.milestone
        ) as document
    from milestones
    group by milestones.user_id
),

feedback as (
    select
        user_id,
        metric,
        feedback_count,
        warning_count,
        most_common_message,
        first_at,
        last_at
    from {{ ref('user_feedback_summary') }}
),

feedback_documents as (
    select
        feedback.user_id,
        jsonb_agg(to_jsonb(feedback) - 'user_id' order by feedback.metric) as document
    from feedback
    group by feedback.user_id
),

recommendations as (
    select
        user_id,
        priority,
        total,
        implemented,
        implementation_rate
    from {{ ref('user_recommendations_summary') }}
),

recommendation_documents as (
    select
        recommendations.user_id,
        jsonb_agg(
            to_jsonb(recommendations) - 'user_id' order by recommendations.priority
        ) as document
    from recommendations
    group by recommendations.user_id
),

comparisons as (
    select
        user_id,
        metric,
        comparison,
        current_value,
        compared_value,
        difference,
        pct_change
    from {{ ref('user_comparisons') }}
),

comparison_documents as (
    select
        comparisons.user_id,
        jsonb_agg(
            to_jsonb(comparisons) - 'user_id' order by comparisons.metric, comparisons.comparison
        ) as document
    from comparisons
    group by comparisons.user_id
),

predictions as (
    select
        user_id,
        metric,
        horizon,
        horizon_days,
        projected_value,
        target_value,
        goal_probability
    from {{ ref('user_predictions') }}
),

prediction_documents as (
    select
        predictions.user_id,
        jsonb_agg(
            to_jsonb(predictions) - 'user_id' order by predictions.metric, predictions.horizon_days
        ) as document
    from predictions
    group by predictions.user_id
),

{%- if reads_per_user %}

people as (
    select
        user_id,
        org_id,
        user_document,
        summary_document,
        session_orgs,
        event_orgs
    from {{ this.schema }}.user_profile_people()
),

session_documents as (
    select
        people.user_id,
        {{ this.schema }}.user_profile_sessions(people.user_id, people.session_orgs) as document
    from people
),

coaching_history as (
    select
        people.user_id,
        history.feedback,
        history.recommendations
    from people
    cross join lateral {{ this.schema }}.user_profile_coaching_history(people.user_id, people.event_orgs) as history
),
{%- else %}

users as (
    select {{ user_profile_user_columns() | join(', ') }}
    from {{ ref('dim_users') }}
),

summary as (
    select {{ export_user_summary_columns() | join(', ') }}
    from {{ ref('int_export_user_summary') }}
),

people as (
    select
        users.user_id,
        users.org_id,
        to_jsonb(users) as user_document,
        to_jsonb(summary) as summary_document
    from users
    left join summary on users.user_id = summary.user_id
),

sessions as (
    select {{ user_profile_session_columns() | join(', ') }}
    from {{ ref('int_export_sessions') }}
),

session_documents as (
    select
        sessions.user_id,
        {{ user_profile_sessions_document('sessions') }} as document
    from sessions
    group by sessions.user_id
),

coaching_events as (
    select {{ user_profile_coaching_event_columns() | join(', ') }}
    from {{ ref('int_export_kpi_events') }}
    where event_type in ('feedback_given', 'recommendation_made')
),

coaching_history as (
    select
        coaching_events.user_id,
        {{ user_profile_coaching_history('coaching_events', 'feedback_given') }} as feedback,
        {{ user_profile_coaching_history('coaching_events', 'recommendation_made') }} as recommendations
    from coaching_events
    group by coaching_events.user_id
),
{%- endif %}

data_metadata as (
    select
        user_id,
        first_data_date,
        last_data_date,
        data_points,
        sessions,
        attempts,
        kpi_events,
        metric_values,
        records_expected,
        completeness_pct,
        metric_coverage_pct
    from {{ ref('user_data_metadata') }}
)

select
    people.user_id,
    people.org_id,
    {{ export_version() }} as export_version,
    now() as exported_at,
    jsonb_build_object(
        'export_version', {{ export_version() }},
        'user', people.user_document,
        'summary', people.summary_document,
        'sessions', coalesce(session_documents.document, '[]'::jsonb),
        'statistics', coalesce(statistics_documents.document, '[]'::jsonb),
        'trends', coalesce(trend_documents.document, '[]'::jsonb),
        'patterns', coalesce(pattern_documents.document, '[]'::jsonb),
        'consistency', coalesce(consistency_documents.document, '[]'::jsonb),
        'habits', to_jsonb(habits) - 'user_id',
        'velocity', coalesce(trend_documents.velocity, '[]'::jsonb),
        'best_worst_sessions', coalesce(best_worst_documents.document, '[]'::jsonb),
        'milestones', coalesce(milestone_documents.document, '[]'::jsonb),
        'feedback', jsonb_build_object(
            'summary', coalesce(feedback_documents.document, '[]'::jsonb),
            'history', coalesce(coaching_history.feedback, '[]'::jsonb)
        ),
        'recommendations', jsonb_build_object(
            'summary', coalesce(recommendation_documents.document, '[]'::jsonb),
            'history', coalesce(coaching_history.recommendations, '[]'::jsonb)
        ),
        'comparisons', coalesce(comparison_documents.document, '[]'::jsonb),
        'predictions', coalesce(prediction_documents.document, '[]'::jsonb),
        'metadata', to_jsonb(data_metadata) - 'user_id'
    ) as document
from people
left join session_documents on people.user_id = session_documents.user_id
left join statistics_documents on people.user_id = statistics_documents.user_id
left join trend_documents on people.user_id = trend_documents.user_id
left join pattern_documents on people.user_id = pattern_documents.user_id
left join consistency_documents on people.user_id = consistency_documents.user_id
left join habits on people.user_id = habits.user_id
left join best_worst_documents on people.user_id = best_worst_documents.user_id
left join milestone_documents on people.user_id = milestone_documents.user_id
left join feedback_documents on people.user_id = feedback_documents.user_id
left join recommendation_documents on people.user_id = recommendation_documents.user_id
left join coaching_history on people.user_id = coaching_history.user_id
left join comparison_documents on people.user_id = comparison_documents.user_id
left join prediction_documents on people.user_id = prediction_documents.user_id
left join data_metadata on people.user_id = data_metadata.user_id
