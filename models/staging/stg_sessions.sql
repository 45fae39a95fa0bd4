-- Practice sessions: the winning version of each session_id (newest updated_at, then first
-- loaded), with scores, the six voice metrics and the JSON lists as delivered.
with winners as (
    select distinct on (session_id)
        session_id,
        org_id,
        user_id,
        attempt_id,
        session_type,
        started_at,
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
        areas_to_improve,
        metadata,
        updated_at,
        _load_id,
        _row_number
    from {{ source('raw', 'sessions') }}
    order by session_id, {{ star_version_order() }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    winners.session_id,
    winners.org_id,
    winners.user_id,
    winners.attempt_id,
    winners.session_type,
    winners.started_at,
    winners.duration_ms,
    winners.words_spoken,
    winners.score,
    winners.pronunciation_score,
    winners.fluency_score,
    winners.grammar_score,
    winners.pace_wpm,
    winners.pitch_hz,
    winners.volume_db,
    winners.pauses_per_min,
    winners.clarity,
    winners.confidence,
    winners.topics,
    winners.vocabulary_learned,
    winners.areas_to_improve,
    winners.metadata,
    winners.updated_at,
    winners._load_id,
    ledger.loaded_at
from winners
left join ledger on winners._load_id = ledger.load_id
