-- Users asking few (< 3) vs many (> 7) questions per attempt: users bucketed by their
-- average questions_asked per completed attempt, with the bucket's average score and share
-- of open questions.
with user_questions as (
    select
        summary.org_id,
        summary.user_id,
        avg(summary.questions_asked) as questions_per_attempt,
        sum(summary.open_questions)::numeric / nullif(sum(summary.questions_asked), 0) as open_share,
        avg(attempts.score) as avg_score
    from {{ ref('kpi_attempt_summary') }} as summary
    inner join {{ ref('fact_scenario_attempts') }} as attempts
        on summary.attempt_id = attempts.attempt_id
    group by summary.org_id, summary.user_id
),

bucketed as (
    select
        org_id,
        user_id,
        questions_per_attempt,
        open_share,
        avg_score,
        case
            when questions_per_attempt < 3 then 'fewer than 3'
            when questions_per_attempt > 7 then 'more than 7'
            else '3 to 7'
        end as question_bucket
    from user_questions
)

select
    org_id,
    question_bucket,
    count(*) as users,
    round(avg(questions_per_attempt), 2) as questions_per_attempt,
    round(avg(open_share) * 100, 1) as open_question_pct,
    round(avg(avg_score)::numeric, 1) as avg_score
from bucketed
group by org_id, question_bucket
order by org_id, question_bucket
