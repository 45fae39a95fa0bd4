-- Practice sessions: the winning version of each session_id (newest updated_at, then first
-- loaded), with scores, the six voice metrics and the JSON lists as delivered.
with deliveries as (
    select
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
        _row_number,
        {{ star_version_rank('session_id') }} as version_rank
    from {{ source('raw', 'sessions') }}
),

ledger as (
    select
        load_id,
        loaded_at
    from {{ source('raw', 'load_ledger') }}
)

select
    deliveries.session_id,
    deliveries.org_id,
    deliveries.user_id,
    deliveries.attempt_id,
    deliveries.session_type,
    deliveries.started_at,
    deliveries.duration_ms,
    deliveries.words_spoken,
    deliveries.score,
    deliveries.pronunciation_score,
    deliveries.fluency_score,
    deliveries.grammar_score,
    deliveries.pace_wpm,
    deliveries.pitch_hz,
    deliveries.volume_db,
    deliveries.pauses_per_min,
    deliveries.clarity,
    deliveries.confidence,
    deliveries.topics,
    deliveries.vocabulary_learned,
    deliveries.areas_to_improve,
    deliveries.metadata,
    deliveries.updated_at,
    deliveries._load_id,
    ledger.loaded_at
from deliveries
left join ledger on deliveries._load_id = ledger.load_id
where deliveries.version_rank = 1
