{{ config(
    indexes=[{'columns': ['org_id', 'scenario_id']}],
) }}
-- Per org and scenario, over completed attempts with a score: how often it was attempted,
-- the average, sample standard deviation and median (percentile_cont(0.5)) of the score,
-- the average duration and the last start. Attempts without a scenario_id are left out.
select
    org_id,
    scenario_id,
    count(*) as attempt_count,
    {{ exact_avg('score') }} as avg_score,
    {{ exact_stddev_samp('score') }} as score_stddev,
    {{ exact_avg('duration_seconds') }} as avg_duration,
    percentile_cont(0.5) within group (order by score) as median_score,
    max(started_at) as last_attempted
from {{ ref('fact_scenario_attempts') }}
where
    {{ in_batch('orgs') }}
    and score is not null
    and scenario_id is not null
group by org_id, scenario_id
