{#- _load_id index: the watermark (highest _load_id held) in one index probe -#}
{{ config(
    materialized='incremental',
    incremental_strategy='star_upsert',
    unique_key=['org_id', 'attempt_id'],
    on_schema_change='fail',
    meta={'distribution': 'org_id', 'key_index': ['attempt_id']},
    indexes=[
        {'columns': ['org_id', 'date_key']},
        {'columns': ['org_id', 'user_id', 'started_at']},
        {'columns': ['org_id', 'scenario_id']},
        {'columns': ['_load_id']},
        {'columns': ['date_key']},
    ],
    pre_hook=["{{ star_delete_on_full_refresh() }}", "{{ star_retract_attempts() }}"],
    post_hook=["{{ star_statements([
        star_primary_key(['attempt_id']),
        citus_distribute(),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- Completed scenario attempts (the winning version of each attempt whose status is
-- 'completed'). Incremental: re-reads the attempt loads since the watermark (minus the
-- lookback) and upserts them on (org_id, attempt_id); the pre-hook first removes attempts
-- whose current version is no longer completed or moved to another org.
with attempts as (
    select
        attempt_id,
        org_id,
        user_id,
        scenario_id,
        score,
        duration_seconds,
        talk_ms,
        listen_ms,
        started_at,
        ended_at,
        updated_at,
        _load_id,
        loaded_at
    from {{ ref('stg_attempts') }}
    where
        status = 'completed'
        {% if star_reads_increment() -%}
            and {{ star_in_recent_loads('attempts') }}
        {%- endif %}
)

select
    attempt_id,
    org_id,
    user_id,
    scenario_id,
    score,
    duration_seconds,
    talk_ms,
    listen_ms,
    started_at,
    ended_at,
    (started_at at time zone 'UTC')::date as date_key,
    loaded_at as created_at,
    updated_at,
    _load_id,
    loaded_at
from attempts
