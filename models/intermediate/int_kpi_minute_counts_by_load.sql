{#- the watermark (highest _load_id held) in one index probe -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['org_id', '_load_id'],
    on_schema_change='fail',
    indexes=[{'columns': ['_load_id']}],
    post_hook=["{{ star_statements([
        star_primary_key(['org_id', '_load_id', 'event_type', 'minute_offset']),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- KPI events per org, load, event type and minute into the attempt (floor(timestamp_ms /
-- 60000), an integer division since timestamp_ms >= 0). Loads never change once loaded,
-- so each build only counts the event loads since the watermark (minus the lookback) and
-- replaces their rows (delete+insert on org_id, _load_id); kpi_event_heatmap sums the loads.
select
    org_id,
    _load_id,
    event_type,
    timestamp_ms / 60000 as minute_offset,
    count(*) as events
from {{ ref('fact_kpi_events') }}
{% if is_incremental() -%}
    where _load_id in ({{ star_recent_loads('kpi_events') }})
{%- endif %}
group by org_id, _load_id, event_type, timestamp_ms / 60000
