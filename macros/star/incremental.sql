{#- The loads an incremental model (re)reads: every load of the stream that finished after
    the newest load the model already holds (its highest _load_id) finished, minus
    var('lookback_days') days; with lookback_days = 0, only loads newer than what it holds.
    load_ids are drawn when a load starts but loads commit in their own order, so a file
    whose load started earlier can become visible later than a newer one; the lookback
    re-reads such late files. On a first build or --full-refresh the caller reads everything.
    Returns the load_ids, for `_load_id in (...)`. The model's highest _load_id
    is read through its _load_id index on the big facts. -#}
{% macro star_recent_loads(stream, watermark_relation=none) -%}
    {#- At run time the ids are inlined as constants, so PostgreSQL skips the tables of
        older big files (each carries `check (_load_id = N)`) instead of scanning them. -#}
    {%- if execute -%}
        {%- set found = run_query(star_recent_loads_query(stream, watermark_relation)) -%}
        {%- set ids = found.columns[0].values() | list if found else [] -%}
        {{- ids | join(', ') if ids else 'null' -}}
    {%- else -%}
        {{- star_recent_loads_query(stream, watermark_relation) -}}
    {%- endif -%}
{%- endmacro %}

{#- Filter of a staging model of a versioned stream to the winning versions delivered in
    the recent loads (`_load_id in (...)`), plus the same condition on the record key
    (`<key> = any(array(<keys delivered in those loads>))`): that one pushes down into the
    staging view's DISTINCT ON, so only the versions of these records are ranked, through
    the raw tables' record-key indexes, instead of the whole stream. -#}
{% macro star_in_recent_loads(stream, alias=none) -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    {%- set key = versioned_stream_id(stream) -%}
    {%- set loads = star_recent_loads(stream) -%}
    {{ prefix }}_load_id in ({{ loads }})
    and {{ prefix }}{{ key }} = any(array(
        select delivered.{{ key }} from {{ source('raw', stream) }} as delivered
        where delivered._load_id in ({{ loads }})
    ))
{%- endmacro %}

{% macro star_recent_loads_query(stream, watermark_relation=none) -%}
    {%- set watermark_relation = watermark_relation or this -%}
    {{ loads_after_watermark_query(
        stream,
        "select max(held.loaded_at) from " ~ ref('stg_load_ledger') ~ " as held"
        ~ " where held.load_id = (select max(watermark._load_id) from " ~ watermark_relation ~ " as watermark)",
        ref('stg_load_ledger'),
    ) }}
{%- endmacro %}

{#- The one definition of a batch of loads: the loads of `stream` published after the
    watermark (a query for a loaded_at; none = every load) minus var('lookback_days') days,
    and, given a `ceiling`, no later than it. Used by the facts (star_recent_loads) and the
    entity-incremental marts (macros/incremental/changed_keys.sql). -#}
{% macro loads_after_watermark_query(stream, watermark_loaded_at, ledger, ceiling=none) -%}
    select ledger.load_id
    from {{ ledger }} as ledger
    where
        ledger.stream = '{{ stream }}'
        and ledger.loaded_at > coalesce(({{ watermark_loaded_at }}), '-infinity'::timestamptz)
        - interval '{{ var("lookback_days") | int }} days'
        {%- if ceiling %}
        and ledger.loaded_at <= {{ ceiling }}
        {%- endif %}
{%- endmacro %}

{#-
    Strategy `replace_held`: dbt's delete+insert on `unique_key` for a fact whose rows carry
    their `_load_id`, with the delete probing only the batch rows the table can hold: those
    whose _load_id is at most the table's highest _load_id. Why that is exact for
    fact_kpi_events: the model drops every event the fact holds from the same or an earlier
    load, so a batch row can only replace a held row from a later load (its own _load_id is
    then lower than that row's) or be a held row itself (the same _load_id); a batch row of a
    newer load than any held one is new. In the steady state (new loads only) the delete
    probes nothing, where dbt's probes the table's key index once per new event.
    Plain delete and insert in one transaction: Citus-safe, no MERGE.
-#}
{% macro get_incremental_replace_held_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source_relation = arg_dict["temp_relation"] -%}
    {%- set unique_key = arg_dict["unique_key"] -%}
    {%- set keys = ([unique_key] if unique_key is string else unique_key) | join(', ') -%}
    {%- set columns = arg_dict["dest_columns"] | map(attribute="quoted") | join(", ") -%}
    delete from {{ target }} as held
    where ({{ keys }}) in (
        select {{ keys }} from {{ source_relation }} as batch
        where batch._load_id <= (select max(newest._load_id) from {{ target }} as newest)
    );
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source_relation }};
{% endmacro %}
