-- Every attempt in its current version, any status (started, completed, abandoned), with
-- its UTC periods and talk percentage: the base of completion rates and of the KPI marts
-- that group events by their attempt's week.
select
    attempt_id,
    org_id,
    user_id,
    scenario_id,
    status,
    status = 'completed' as is_completed,
    score,
    duration_seconds,
    talk_ms,
    listen_ms,
    {{ talk_percentage('talk_ms', 'listen_ms') }} as talk_percentage,
    started_at,
    ended_at,
    {{ utc_date('started_at') }} as date_key,
    {{ utc_week_start('started_at') }} as week_start,
    {{ utc_month_start('started_at') }} as month_start
from {{ ref('stg_attempts') }}
