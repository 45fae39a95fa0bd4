{{ config(alias='user_summary') }}
-- One row per user (dim_users): attempt and session totals, practice habits
-- (user_practice_habits), overall consistency (user_consistency), and per voice metric its
-- mean and median (user_metric_stats), slope per week and trend direction
-- (user_metric_trends), plus the user's data metadata (user_data_metadata). Every figure is
-- read from its mart, none is recomputed here; users without data get 0 totals and nulls.
-- The rows of int_export_user_summary, shared with exports.user_profile_json.
select {{ export_user_summary_columns() | join(', ') }}
from {{ ref('int_export_user_summary') }}
