{#- the watermark (highest _load_id held) in one index probe -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['org_id', 'attempt_id'],
    on_schema_change='fail',
    indexes=[{'columns': ['_load_id']}],
    post_hook=["{{ star_statements([
        star_primary_key(['org_id', 'attempt_id', 'event_type']),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- KPI events counted per org, attempt and event type (every event of fact_kpi_events,
-- whether or not its attempt is known), with the open questions among question_asked
-- events (event_value kind = 'open'). The per-attempt and weekly KPI marts read this.
-- Incremental on (org_id, attempt_id): the attempts that received events in the event
-- loads since the watermark (minus the lookback) are counted again from all their events.
with events as (
    select
        fact.org_id,
        fact.attempt_id,
        fact.event_type,
        fact.event_value,
        fact._load_id
    from {{ ref('fact_kpi_events') }} as fact
    {% if is_incremental() -%}
        inner join (
            select distinct
                org_id,
                attempt_id
            from {{ ref('fact_kpi_events') }}
            where _load_id in ({{ star_recent_loads('kpi_events') }})
        ) as touched_attempts
            on
                fact.org_id = touched_attempts.org_id
                and fact.attempt_id = touched_attempts.attempt_id
    {%- endif %}
)

select
    org_id,
    attempt_id,
    event_type,
    count(*) as events,
    count(*) filter (where event_value ->> 'kind' = 'open') as open_questions,
    max(_load_id) as _load_id
from events
group by org_id, attempt_id, event_type
