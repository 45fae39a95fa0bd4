-- Filler words per week: per org and ISO week (UTC, by the attempt's start), the completed
-- attempts, their filler words, filler words per attempt and per minute of practice.
with attempt_fillers as (
    select
        summary.org_id,
        dates.week_start,
        summary.filler_words,
        attempts.duration_seconds
    from {{ ref('kpi_attempt_summary') }} as summary
    inner join {{ ref('fact_scenario_attempts') }} as attempts
        on summary.attempt_id = attempts.attempt_id
    inner join {{ ref('dim_time') }} as dates
        on attempts.date_key = dates.date_key
)

select
    org_id,
    week_start,
    count(*) as attempts,
    sum(filler_words) as filler_words,
    round(avg(filler_words), 2) as filler_words_per_attempt,
    round((sum(filler_words) / nullif(sum(duration_seconds) / 60.0, 0))::numeric, 2) as filler_words_per_minute
from attempt_fillers
group by org_id, week_start
order by org_id, week_start
