{{ config(alias='sessions') }}
-- One row per practice session (fact_sessions): its scores, the six voice metrics and its
-- lists (topics, vocabulary learned, areas to improve) as text joined with '; '.
-- The rows of int_export_sessions, shared with exports.user_profile_json.
select
    session_id,
    org_id,
    user_id,
    user_name,
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
from {{ ref('int_export_sessions') }}
