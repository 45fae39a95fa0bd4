{{ config(materialized='ephemeral') }}
-- One row per user (dim_users): attempt and session totals, practice habits
-- (user_practice_habits), overall consistency (user_consistency), and per voice metric its
-- mean and median (user_metric_stats), slope per week and trend direction
-- (user_metric_trends), plus the user's data metadata (user_data_metadata). Every figure is
-- read from its mart, none is recomputed here; users without data get 0 totals and nulls.
-- Ephemeral (inlined where it is read): exports.user_summary and exports.user_profile_json
-- read it, so the CSV and JSON exports share one definition and no export view
-- depends on another view (a view rebuilt by dbt drops the views on it until they are rebuilt).
with users as (
    select
        user_id,
        org_id,
        name,
        role,
        team,
        timezone
    from {{ ref('dim_users') }}
),

attempt_totals as (
    select
        user_id,
        count(*) as total_attempts,
        -- numeric: exact, so every read gives the same last digit (a float sum depends on row order)
        avg(score::numeric)::double precision as avg_attempt_score
    from {{ ref('fact_scenario_attempts') }}
    group by user_id
),

habits as (
    select {{ user_practice_habits_columns() | join(', ') }}
    from {{ ref('user_practice_habits') }}
),

overall_consistency as (
    select
        user_id,
        consistency_score
    from {{ ref('user_consistency') }}
    where metric = 'overall'
),

metric_stats as (
    select
        user_id,
        max(mean_value) filter (where metric = 'pace') as pace_mean,
        max(median_value) filter (where metric = 'pace') as pace_p50,
        max(mean_value) filter (where metric = 'pitch') as pitch_mean,
        max(median_value) filter (where metric = 'pitch') as pitch_p50,
        max(mean_value) filter (where metric = 'volume') as volume_mean,
        max(median_value) filter (where metric = 'volume') as volume_p50,
        max(mean_value) filter (where metric = 'pauses') as pauses_mean,
        max(median_value) filter (where metric = 'pauses') as pauses_p50,
        max(mean_value) filter (where metric = 'clarity') as clarity_mean,
        max(median_value) filter (where metric = 'clarity') as clarity_p50,
        max(mean_value) filter (where metric = 'confidence') as confidence_mean,
        max(median_value) filter (where metric = 'confidence') as confidence_p50
    from {{ ref('user_metric_stats') }}
    group by user_id
),

metric_trends as (
    select
        user_id,
        max(velocity_per_week) filter (where metric = 'pace') as pace_slope_per_week,
        max(trend_direction) filter (where metric = 'pace') as pace_trend_direction,
        max(velocity_per_week) filter (where metric = 'pitch') as pitch_slope_per_week,
        max(trend_direction) filter (where metric = 'pitch') as pitch_trend_direction,
        max(velocity_per_week) filter (where metric = 'volume') as volume_slope_per_week,
        max(trend_direction) filter (where metric = 'volume') as volume_trend_direction,
        max(velocity_per_week) filter (where metric = 'pauses') as pauses_slope_per_week,
        max(trend_direction) filter (where metric = 'pauses') as pauses_trend_direction,
        max(velocity_per_week) filter (where metric = 'clarity') as clarity_slope_per_week,
        max(trend_direction) filter (where metric = 'clarity') as clarity_trend_direction,
        max(velocity_per_week) filter (where metric = 'confidence') as confidence_slope_per_week,
        max(trend_direction) filter (where metric = 'confidence') as confidence_trend_direction
    from {{ ref('user_metric_trends') }}
    group by user_id
),

data_metadata as (
    select
        user_id,
        first_data_date,
        last_data_date,
        data_points,
        completeness_pct
    from {{ ref('user_data_metadata') }}
)

select
    users.user_id,
    users.org_id,
    users.name as user_name,
    users.role,
    users.team,
    users.timezone,
    coalesce(attempt_totals.total_attempts, 0) as total_attempts,
    attempt_totals.avg_attempt_score,
    coalesce(habits.total_sessions, 0) as total_sessions,
    coalesce(habits.total_practice_minutes, 0) as total_practice_minutes,
    habits.first_session_at,
    habits.last_session_at,
    coalesce(habits.active_days, 0) as active_days,
    habits.sessions_per_week,
    habits.avg_days_between_sessions,
    coalesce(habits.longest_streak_days, 0) as longest_streak_days,
    coalesce(habits.current_streak_days, 0) as current_streak_days,
    habits.preferred_day_of_week,
    habits.preferred_hour_of_day,
    overall_consistency.consistency_score as overall_consistency_score,
    metric_stats.pace_mean,
    metric_stats.pace_p50,
    metric_trends.pace_slope_per_week,
    metric_trends.pace_trend_direction,
    metric_stats.pitch_mean,
    metric_stats.pitch_p50,
    metric_trends.pitch_slope_per_week,
    metric_trends.pitch_trend_direction,
    metric_stats.volume_mean,
    metric_stats.volume_p50,
    metric_trends.volume_slope_per_week,
    metric_trends.volume_trend_direction,
    metric_stats.pauses_mean,
    metric_stats.pauses_p50,
    metric_trends.pauses_slope_per_week,
    metric_trends.pauses_trend_direction,
    metric_stats.clarity_mean,
    metric_stats.clarity_p50,
    metric_trends.clarity_slope_per_week,
    metric_trends.clarity_trend_direction,
    metric_stats.confidence_mean,
    metric_stats.confidence_p50,
    metric_trends.confidence_slope_per_week,
    metric_trends.confidence_trend_direction,
    data_metadata.first_data_date,
    data_metadata.last_data_date,
    coalesce(data_metadata.data_points, 0) as data_points,
    data_metadata.completeness_pct
from users
left join attempt_totals on users.user_id = attempt_totals.user_id
left join habits on users.user_id = habits.user_id
left join overall_consistency on users.user_id = overall_consistency.user_id
left join metric_stats on users.user_id = metric_stats.user_id
left join metric_trends on users.user_id = metric_trends.user_id
left join data_metadata on users.user_id = data_metadata.user_id
