{#- Pre-hooks of the incremental facts: before the new batch is upserted, remove rows whose
    record changed in the loads being re-read so that it no longer belongs where it is
    (delete+insert only replaces rows whose key is in the batch). Only records delivered in
    those loads can have changed, so only they are looked at. No-ops on a first build or a
    --full-refresh. -#}

{#- fact_scenario_attempts: attempts whose current version is no longer completed, or now
    belongs to another org. -#}
{% macro star_retract_attempts() -%}
    {%- if star_reads_increment() -%}
    delete from {{ this }} as fact
    using {{ ref('stg_attempts') }} as current_version
    where
        current_version.attempt_id = fact.attempt_id
        and {{ star_in_recent_loads('attempts', 'current_version') }}
        and (current_version.status <> 'completed' or current_version.org_id <> fact.org_id)
    {%- endif -%}
{%- endmacro %}

{#- fact_sessions: sessions whose current version belongs to another org. -#}
{% macro star_retract_sessions() -%}
    {%- if star_reads_increment() -%}
    delete from {{ this }} as fact
    using {{ ref('stg_sessions') }} as current_version
    where
        current_version.session_id = fact.session_id
        and {{ star_in_recent_loads('sessions', 'current_version') }}
        and current_version.org_id <> fact.org_id
    {%- endif -%}
{%- endmacro %}

{#- fact_session_metrics: every metric row of the sessions re-delivered in the loads being
    re-read; the batch inserts their current non-null metrics again (a metric that became
    empty disappears). -#}
{% macro star_retract_session_metrics() -%}
    {%- if star_reads_increment() -%}
    delete from {{ this }} as fact
    using {{ ref('stg_sessions') }} as current_version
    where
        current_version.session_id = fact.session_id
        and {{ star_in_recent_loads('sessions', 'current_version') }}
    {%- endif -%}
{%- endmacro %}
