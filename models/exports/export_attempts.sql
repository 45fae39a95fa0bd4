{{ config(alias='attempts') }}
-- One row per completed attempt (fact_scenario_attempts), with the organisation's name, the
-- user's name, the scenario's title and difficulty, the talk percentage and the KPI counts
-- of kpi_attempt_summary (0 when the attempt has no such event).
with attempts as (
    select
        attempt_id,
        org_id,
        user_id,
        scenario_id,
        score,
        started_at,
        ended_at,
        date_key,
        duration_seconds,
        talk_ms,
        listen_ms
    from {{ ref('fact_scenario_attempts') }}
),

orgs as (
    select
        org_id,
        name
    from {{ ref('dim_orgs') }}
),

users as (
    select
        user_id,
        name,
        team
    from {{ ref('dim_users') }}
),

scenarios as (
    select
        scenario_id,
        title,
        difficulty,
        category
    from {{ ref('dim_scenarios') }}
),

kpi_counts as (
    select
        attempt_id,
        org_id,
        filler_words,
        filler_words_per_minute,
        interruptions,
        questions_asked,
        open_questions,
        objections_raised,
        keywords_mentioned,
        long_pauses
    from {{ ref('kpi_attempt_summary') }}
)

select
    attempts.attempt_id,
    attempts.org_id,
    orgs.name as org_name,
    attempts.user_id,
    users.name as user_name,
    users.team as user_team,
    attempts.scenario_id,
    scenarios.title as scenario_title,
    scenarios.difficulty as scenario_difficulty,
    scenarios.category as scenario_category,
    attempts.score,
    attempts.started_at,
    attempts.ended_at,
    attempts.date_key,
    attempts.duration_seconds,
    attempts.talk_ms,
    attempts.listen_ms,
    {{ talk_percentage('attempts.talk_ms', 'attempts.listen_ms') }} as talk_percentage,
    coalesce(kpi_counts.filler_words, 0) as filler_words,
    kpi_counts.filler_words_per_minute,
    coalesce(kpi_counts.interruptions, 0) as interruptions,
    coalesce(kpi_counts.questions_asked, 0) as questions_asked,
    coalesce(kpi_counts.open_questions, 0) as open_questions,
    coalesce(kpi_counts.objections_raised, 0) as objections_raised,
    coalesce(kpi_counts.keywords_mentioned, 0) as keywords_mentioned,
    coalesce(kpi_counts.long_pauses, 0) as long_pauses
from attempts
left join orgs on attempts.org_id = orgs.org_id
left join users on attempts.user_id = users.user_id
left join scenarios on attempts.scenario_id = scenarios.scenario_id
left join kpi_counts
    on
        attempts.org_id = kpi_counts.org_id
        and attempts.attempt_id = kpi_counts.attempt_id
