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

{#- The loads an incremental model (re)reads. The window: every load of the stream published
    after the newest load the model already holds (its highest _load_id) was published,
    minus var('lookback_days') days (load ids are drawn when a load starts but loads commit
    in their own order, so a file whose load started earlier can become visible later than a
    newer one). Inside the window the model reads from the earliest load it has not taken
    yet (ops.model_loads) onwards: nothing when it has taken them all, only the new loads
    when they are newer than everything taken, and, when a late file turns up, that file and
    every load after it, which the late file's rows can change (an event's first delivery
    wins). So re-reading the lookback costs nothing when nothing is late. The loads come
    from this build's snapshot of the ledger (int_batch_published_loads, so that what the
    post-hook record_loads_taken records was visible before the model read); when that
    snapshot is from another invocation (`--select` of the model alone) every load of the
    window is read and nothing is recorded. On a first build or --full-refresh the caller
    reads everything. Returns the load_ids, for `_load_id in (...)`. -#}
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

{#- (`select 1` in the exists tests: Citus plans this query with the fact's watermark as an
    intermediate result and refuses a subquery of no columns.) -#}
{% macro star_recent_loads_query(stream, watermark_relation=none) -%}
    {%- set watermark_relation = watermark_relation or this -%}
    {%- set ledger = ref('stg_load_ledger') -%}
    {%- set published = ref('int_batch_published_loads') -%}
    {%- set model_name = this.identifier if this is not none else '' -%}
    with window_start as (
        select coalesce((
            select max(held.loaded_at) from {{ ledger }} as held
            where held.load_id = (select max(watermark._load_id) from {{ watermark_relation }} as watermark)
        ), '-infinity'::timestamptz) - interval '{{ var("lookback_days") | int }} days' as loaded_after
    ),

    snapshot_is_current as (
        select exists (
            select 1 from {{ published }} as published
            where published.invocation_id = '{{ invocation_id }}'
        ) as is_current
    ),

    in_window as (
        select
            published.load_id,
            not exists (
                select 1 from {{ source('ops', 'model_loads') }} as taken
                where
                    taken.model = '{{ model_name }}'
                    and taken.load_id = published.load_id
                    and taken.loaded_at = published.loaded_at
            ) as is_new
        from {{ published }} as published
        cross join window_start
        where
            published.invocation_id = '{{ invocation_id }}'
            and published.stream = '{{ stream }}'
            and published.loaded_at > window_start.loaded_after
    )

    select in_window.load_id
    from in_window
    where in_window.load_id >= (select min(untaken.load_id) from in_window as untaken where untaken.is_new)
    union all
    select ledger.load_id
    from {{ ledger }} as ledger
    cross join window_start
    cross join snapshot_is_current
    where
        not snapshot_is_current.is_current
        and ledger.stream = '{{ stream }}'
        and ledger.loaded_at > window_start.loaded_after
    order by load_id
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
