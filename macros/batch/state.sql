{#-
    The warehouse's build state, all in schema `ops` (docs/architecture.md, "Incremental
    design"):
    - ops.model_watermarks: per entity-incremental model, the newest load it has taken
      (`loaded_through`) and the as_of date of that build; written by the model's own
      post-hook, in its transaction, so a failed or unselected model keeps its old mark.
    - ops.model_loads: per incremental model, the loads it has taken (load id and the
      publish time it had then), written by the model's post-hook in its transaction: the
      lookback re-reads a load only when something was not taken yet (docs/architecture.md).
    - ops.build_runs: one row per dbt invocation that ran hooks (start, end, status).
-#}

{% macro state_schema() -%}
    {{- generate_schema_name('ops') | trim -}}
{%- endmacro %}

{#- on-run-start: the state tables exist before any model reads them; this run is recorded. -#}
{% macro ensure_state() %}
    create schema if not exists {{ state_schema() }};
    create table if not exists {{ state_schema() }}.model_watermarks (
        model text primary key,
        loaded_through timestamptz not null,
        as_of date not null,
        invocation_id text not null,
        built_at timestamptz not null default now()
    );
    comment on table {{ state_schema() }}.model_watermarks is
        'Per entity-incremental model: the newest load its last successful build took and that build''s as_of date (macros/batch/state.sql).';
    create table if not exists {{ state_schema() }}.model_loads (
        model text not null,
        load_id bigint not null,
        loaded_at timestamptz not null,
        invocation_id text not null,
        primary key (model, load_id)
    );
    comment on table {{ state_schema() }}.model_loads is
        'Per incremental model: each load it has taken, with the publish time the load had then (a load published again after an erasure is taken again) (macros/batch/state.sql).';
    create table if not exists {{ state_schema() }}.build_runs (
        invocation_id text primary key,
        command text not null,
        started_at timestamptz not null,
        finished_at timestamptz,
        as_of date,
        nodes integer,
        failures integer
    );
    comment on table {{ state_schema() }}.build_runs is
        'One row per dbt invocation of the warehouse: when it ran, its as_of date, how many nodes ran and failed (macros/batch/state.sql).';
    insert into {{ state_schema() }}.build_runs (invocation_id, command, started_at, as_of)
    values ('{{ invocation_id }}', '{{ flags.WHICH }}', {{ batch_ceiling() }}, {{ as_of_date() }})
    on conflict (invocation_id) do nothing;
    -- state of the build machinery before ops existed (nothing reads it any more)
    drop table if exists {{ generate_schema_name('intermediate') | trim }}.batch_watermarks;
    drop table if exists {{ generate_schema_name('intermediate') | trim }}.batch_touched_keys;
    drop table if exists {{ generate_schema_name('intermediate') | trim }}.view_fingerprints;
{% endmacro %}

{#- on-run-end: how this run ended. -#}
{% macro record_build_run(results) %}
    {%- set failures = results | selectattr('status', 'in', ['error', 'fail', 'runtime error']) | list | length -%}
    update {{ state_schema() }}.build_runs
    set finished_at = clock_timestamp(), nodes = {{ results | length }}, failures = {{ failures }}
    where invocation_id = '{{ invocation_id }}';
{% endmacro %}

{#- The newest load a build takes: the loads published before this dbt invocation started.
    Fixed for the whole invocation, so every model of a build sees the same batch (a file
    published mid-build waits for the next run). -#}
{% macro batch_ceiling() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}

{#- post-hook of an entity-incremental model (strategy replace_batch): what it has now taken,
    written in the model's own transaction. -#}
{% macro record_watermark() -%}
    {%- if config.get('incremental_strategy') != 'replace_batch' or not batch_entity() -%}
        {{- return('') -}}
    {%- endif -%}
    insert into {{ state_schema() }}.model_watermarks as mark (model, loaded_through, as_of, invocation_id)
    values ('{{ this.identifier }}', {{ batch_ceiling() }}, {{ as_of_date() }}, '{{ invocation_id }}')
    on conflict (model) do update set
        loaded_through = excluded.loaded_through,
        as_of = excluded.as_of,
        invocation_id = excluded.invocation_id,
        built_at = now()
{%- endmacro %}

{#- post-hook of every model that reads loads incrementally (the facts, the per-load
    intermediates, the entity-incremental marts): every load of this build's snapshot of the
    ledger (int_batch_published_loads) is now taken by the model, in the model's own
    transaction. Each of those loads was visible before the model's statement ran, so the
    model read it (a whole recompute), or it lies inside the window the model read and was
    not taken yet, or it was taken before, or it is older than the window, which the
    lookback never re-reads anyway. Nothing is recorded when the snapshot is from another
    invocation (`--select` of a model without its batch models): its loads are then read
    again next time, never skipped. -#}
{% macro record_loads_taken() -%}
    {%- if not reads_loads_incrementally() -%}
        {{- return('') -}}
    {%- endif -%}
    {#- named, not ref()'d: a hook of every model must not make each one depend on it -#}
    {%- set published = generate_schema_name('intermediate') | trim ~ '.int_batch_published_loads' -%}
    insert into {{ state_schema() }}.model_loads as taken (model, load_id, loaded_at, invocation_id)
    select '{{ this.identifier }}', published.load_id, published.loaded_at, '{{ invocation_id }}'
    from {{ published }} as published
    where
        published.invocation_id = '{{ invocation_id }}'
        and not exists (
            select 1 from {{ state_schema() }}.model_loads as held
            where
                held.model = '{{ this.identifier }}'
                and held.load_id = published.load_id
                and held.loaded_at = published.loaded_at
        )
    on conflict (model, load_id) do update set
        loaded_at = excluded.loaded_at,
        invocation_id = excluded.invocation_id
{%- endmacro %}

{#- True for a model whose builds read only some loads: an incremental model that is not
    recomputed whole on every build (a fact or per-load intermediate, strategy delete+insert
    or append, or an entity-incremental mart). -#}
{% macro reads_loads_incrementally() -%}
    {%- if config.get('materialized') != 'incremental' -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- if config.get('incremental_strategy') == 'replace_batch' -%}
        {{- return(batch_entity() is not none) -}}
    {%- endif -%}
    {{- return(true) -}}
{%- endmacro %}
