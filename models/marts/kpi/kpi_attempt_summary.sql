{#- the touched attempts' constant lists make the planner expect a handful of rows and
    choose a nested loop over the event counts (seen: 2.8 k x 1.4 k rows, 0.3 s); the
    hash join it should pick is the plan for any batch size -#}
{{ config(
    indexes=[{'columns': ['org_id', 'user_id']}],
    pre_hook=["set local enable_nestloop = off"],
) }}
-- Per completed attempt: how many KPI events of each kind it had (0 when none), and filler
-- words per minute of the attempt (filler words / (duration_seconds / 60); null when the
-- duration is 0 or unknown). Events are matched to the attempt on (org_id, attempt_id).
with attempts as (
    select
        attempt_id,
        org_id,
        user_id,
        scenario_id,
        duration_seconds
    from {{ ref('fact_scenario_attempts') }}
    where {{ in_batch('attempts') }}
),

event_counts as (
    select
        org_id,
        attempt_id,
        sum(events) filter (where event_type = 'filler_word') as filler_words,
        sum(events) filter (where event_type = 'interruption') as interruptions,
        sum(events) filter (where event_type = 'question_asked') as questions_asked,
        sum(open_questions) filter (where event_type = 'question_asked') as open_questions,
        sum(events) filter (where event_type = 'objection_raised') as objections_raised,
        sum(events) filter (where event_type = 'keyword_mentioned') as keywords_mentioned,
        sum(events) filter (where event_type = 'long_pause') as long_pauses
    from {{ ref('int_kpi_attempt_event_counts') }}
    where {{ in_batch('attempts') }}
    group by org_id, attempt_id
)

select
    attempts.attempt_id,
    attempts.org_id,
    attempts.user_id,
    attempts.scenario_id,
    coalesce(event_counts.filler_words, 0)::bigint as filler_words,
    coalesce(event_counts.filler_words, 0)::double precision
    / nullif(attempts.duration_seconds / 60.0, 0) as filler_words_per_minute,
    coalesce(event_counts.interruptions, 0)::bigint as interruptions,
    coalesce(event_counts.questions_asked, 0)::bigint as questions_asked,
    coalesce(event_counts.open_questions, 0)::bigint as open_questions,
    coalesce(event_counts.objections_raised, 0)::bigint as objections_raised,
    coalesce(event_counts.keywords_mentioned, 0)::bigint as keywords_mentioned,
    coalesce(event_counts.long_pauses, 0)::bigint as long_pauses
from attempts
left join event_counts
    on
        attempts.org_id = event_counts.org_id
        and attempts.attempt_id = event_counts.attempt_id
