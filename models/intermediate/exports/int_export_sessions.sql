{{ config(materialized='ephemeral') }}
-- One row per practice session (fact_sessions): its scores, the six voice metrics and its
-- lists (topics, vocabulary learned, areas to improve) as text joined with '; '.
-- Ephemeral (inlined where it is read): exports.sessions and exports.user_profile_json
-- read it, so the CSV and JSON exports share one definition and no export view
-- depends on another view (a view rebuilt by dbt drops the views on it until they are rebuilt).
with sessions as (
    select
        session_id,
        org_id,
        user_id,
        attempt_id,
        session_type,
        started_at,
        date_key,
        duration_ms,
        words_spoken,
        score,
        pronunciation_score,
        fluency_score,
        grammar_score,
        pace_wpm,
        pitch_hz,
        volume_db,
        pauses_per_min,
        clarity,
        confidence,
        topics,
        vocabulary_learned,
        areas_to_improve
    from {{ ref('fact_sessions') }}
),

users as (
    select
        user_id,
        name
    from {{ ref('dim_users') }}
)

select
    sessions.session_id,
    sessions.org_id,
    sessions.user_id,
    users.name as user_name,
    sessions.attempt_id,
    sessions.session_type,
    sessions.started_at,
    sessions.date_key,
    sessions.duration_ms,
    sessions.words_spoken,
    sessions.score,
    sessions.pronunciation_score,
    sessions.fluency_score,
    sessions.grammar_score,
    sessions.pace_wpm,
    sessions.pitch_hz,
    sessions.volume_db,
    sessions.pauses_per_min,
    sessions.clarity,
    sessions.confidence,
    {{ export_join_list('sessions.topics') }} as topics,
    {{ export_join_list('sessions.vocabulary_learned') }} as vocabulary_learned,
    {{ export_join_list('sessions.areas_to_improve') }} as areas_to_improve
from sessions
left join users on sessions.user_id = users.user_id
