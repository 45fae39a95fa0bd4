{#- Pre-hooks of the incremental facts: before the new batch is upserted, remove rows whose
    record changed in the loads being re-read so that it no longer belongs where it is
    (delete+insert only replaces rows whose key is in the batch). Only records delivered in
    those loads can have changed, so only they are looked at. No-ops on a first build or a
    --full-refresh.
    The re-delivered records are a CTE of their own: Citus plans a CTE over local tables
    whole, with its filter, as one small intermediate result sent to the shards; the same
    view joined directly in the DELETE's USING was shipped whole (161 MB of ranked
    sessions at 10 M events, 24 s) with the filter applied on every shard. On one server the
    materialized CTE holds the few re-delivered records and the delete probes the fact by
    key. -#}

{#- DELETE of the fact rows whose record was re-delivered in the loads being re-read and
    whose current version (in `current_version`, with the columns `columns`) meets
    `condition` (SQL over `fact` and `redelivered`; none: every such row). -#}
{% macro star_retract_redelivered(stream, current_version, key, columns, condition=none) -%}
    {%- if star_reads_increment() -%}
    with redelivered as materialized (
        select {% for column in [key] + columns %}current_version.{{ column }}{{ ', ' if not loop.last }}{% endfor %}
        from {{ current_version }} as current_version
        where {{ star_in_recent_loads(stream, 'current_version') }}
    )

    delete from {{ this }} as fact
    using redelivered
    where
        redelivered.{{ key }} = fact.{{ key }}
        {%- if condition %}
        and ({{ condition }})
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- fact_scenario_attempts: attempts whose current version is no longer completed, or now
    belongs to another org. -#}
{% macro star_retract_attempts() -%}
    {{- star_retract_redelivered(
        'attempts', ref('stg_attempts'), 'attempt_id', ['org_id', 'status'],
        "redelivered.status <> 'completed' or redelivered.org_id <> fact.org_id",
    ) -}}
{%- endmacro %}

{#- fact_sessions: sessions whose current version belongs to another org. -#}
{% macro star_retract_sessions() -%}
    {{- star_retract_redelivered(
        'sessions', ref('stg_sessions'), 'session_id', ['org_id'],
        'redelivered.org_id <> fact.org_id',
    ) -}}
{%- endmacro %}

{#- fact_session_metrics: every metric row of the sessions re-delivered in the loads being
    re-read; the batch inserts their current non-null metrics again (a metric that became
    empty disappears). -#}
{% macro star_retract_session_metrics() -%}
    {{- star_retract_redelivered('sessions', ref('stg_sessions'), 'session_id', []) -}}
{%- endmacro %}
