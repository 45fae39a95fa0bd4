{#- _load_id index: the watermark (highest _load_id held) in one index probe -#}
{{ config(
    materialized='incremental',
    incremental_strategy='star_upsert',
    unique_key=['org_id', 'session_id'],
    on_schema_change='fail',
    meta={'distribution': 'org_id', 'key_index': ['session_id']},
    indexes=[
        {'columns': ['org_id', 'date_key']},
        {'columns': ['org_id', 'user_id', 'started_at']},
        {'columns': ['_load_id']},
        {'columns': ['date_key']},
    ],
    pre_hook=["{{ star_delete_on_full_refresh() }}", "{{ star_retract_sessions() }}"],
    post_hook=["{{ star_statements([
        star_primary_key(['session_id']),
        citus_distribute(),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- Practice sessions (the winning version of each session), with scores, the six voice
-- metrics and the JSON lists. Incremental on (org_id, session_id) from the session loads
-- since the watermark minus the lookback.
with sessions as (
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
        loaded_at
    from {{ ref('stg_sessions') }}
    {% if star_reads_increment() -%}
        where {{ star_in_recent_loads('sessions') }}
    {%- endif %}
)

select
    session_id,
    org_id,
    user_id,
    attempt_id,
    session_type,
    started_at,
    (started_at at time zone 'UTC')::date as date_key,
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
    loaded_at
from sessions
