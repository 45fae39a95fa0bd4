-- Scenario variance: which scenarios produce the most uneven scores (sample standard
-- deviation) among scenarios with at least 10 scored attempts, with their spread relative
-- to the mean (coefficient of variation).
select
    insights.org_id,
    insights.scenario_id,
    scenarios.title,
    scenarios.difficulty,
    insights.attempt_count,
    round(insights.avg_score::numeric, 1) as avg_score,
    round(insights.median_score::numeric, 1) as median_score,
    round(insights.score_stddev::numeric, 2) as score_stddev,
    round((insights.score_stddev / nullif(insights.avg_score, 0))::numeric, 3) as coefficient_of_variation
from {{ ref('mv_scenario_insights') }} as insights
left join {{ ref('dim_scenarios') }} as scenarios on insights.scenario_id = scenarios.scenario_id
where insights.attempt_count >= 10
order by insights.score_stddev desc nulls last, insights.scenario_id asc
