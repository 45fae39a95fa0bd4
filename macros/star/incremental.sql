{#- True when a fact reads only the recent loads: an incremental run that is not a
    --full-refresh. The marts keep their tables on --full-refresh (config full_refresh:
    false in dbt_project.yml, so the export views on them stay readable throughout):
    is_incremental() is then true, and a fact is recomputed whole in place (its rows
    deleted by star_delete_on_full_refresh, every row inserted, in one transaction). -#}
{% macro star_reads_increment() -%}
    {{- return(is_incremental() and not flags.FULL_REFRESH) -}}
{%- endmacro %}

{#- pre-hook of the facts: on a --full-refresh of a table that stays, its rows go first. -#}
{% macro star_delete_on_full_refresh() -%}
    {%- if is_incremental() and flags.FULL_REFRESH -%}
    delete from {{ this }}
    {%- endif -%}
{%- endmacro %}

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

{#- The loads of `stream` published after the watermark (a query for a loaded_at; none =
    every load) minus var('lookback_days') days. -#}
{% macro loads_after_watermark_query(stream, watermark_loaded_at, ledger) -%}
    select ledger.load_id
    from {{ ledger }} as ledger
    where
        ledger.stream = '{{ stream }}'
        and ledger.loaded_at > coalesce(({{ watermark_loaded_at }}), '-infinity'::timestamptz)
        - interval '{{ var("lookback_days") | int }} days'
{%- endmacro %}

{#- The record id of a versioned stream (newest version wins), from the source's meta
    (models/staging/_sources.yml, which follows loaders/streams.py). -#}
{% macro versioned_stream_id(stream) -%}
    {%- if not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set node = graph.sources['source.' ~ project_name ~ '.raw.' ~ stream] -%}
    {%- set meta = node.config.meta or node.meta -%}
    {{- return(meta['record_key'] if meta['versioned'] else none) -}}
{%- endmacro %}
