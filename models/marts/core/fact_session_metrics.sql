{#- _load_id index: the watermark (highest _load_id held) in one index probe -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    unique_key=['org_id', 'session_id', 'metric'],
    on_schema_change='fail',
    meta={'distribution': 'org_id', 'key_index': ['session_id', 'metric']},
    indexes=[
        {'columns': ['org_id', 'user_id', 'metric', 'started_at']},
        {'columns': ['_load_id']},
    ],
    pre_hook=["{{ star_delete_on_full_refresh() }}", "{{ star_retract_session_metrics() }}"],
    post_hook=["{{ star_statements([
        star_primary_key(['session_id', 'metric']),
        citus_distribute(),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- depends_on: {{ ref('fact_sessions') }}
-- Upserted at session grain: the pre-hook deletes every metric row of the sessions the
-- batch re-reads (the same sessions, through the same loads), so the batch is appended;
-- a key-grain delete would probe one key per row and find nothing. The primary key
-- refuses a duplicate.
-- The voice metrics in long format: one row per session and metric with a non-null value.
-- Which metrics exist and which session column holds each come from the seed
-- metric_definitions (metric, value_column): a new seed row naming any numeric session
-- column adds a metric without a code change; naming another column fails the build.
{%- set numeric_columns = [
    'duration_ms', 'words_spoken', 'score', 'pronunciation_score', 'fluency_score',
    'grammar_score', 'pace_wpm', 'pitch_hz', 'volume_db', 'pauses_per_min', 'clarity',
    'confidence',
] %}
with sessions as (
    select
        session_id,
        org_id,
        user_id,
        started_at,
        {%- for column in numeric_columns %}
            {{ column }},
        {%- endfor %}
        _load_id,
        loaded_at
    from {{ ref('stg_sessions') }}
    {% if star_reads_increment() -%}
        where {{ star_in_recent_loads('sessions') }}
    {%- endif %}
),

definitions as (
    select
        metric,
        value_column
    from {{ ref('metric_definitions') }}
),

metric_values as (
    select
        sessions.session_id,
        definitions.metric,
        case definitions.value_column
            {%- for column in numeric_columns %}
                when '{{ column }}' then sessions.{{ column }}::double precision
            {%- endfor %}
            -- fails the build with a readable message
            else (
                'metric_definitions.value_column ' || definitions.value_column
                || ' is not a numeric column of sessions'
            )::double precision
        end as value,
        sessions.user_id,
        sessions.org_id,
        sessions.started_at,
        sessions._load_id,
        sessions.loaded_at
    from sessions
    cross join definitions
)

select
    session_id,
    metric,
    value,
    user_id,
    org_id,
    started_at,
    (started_at at time zone 'UTC')::date as date_key,
    _load_id,
    loaded_at
from metric_values
where value is not null
