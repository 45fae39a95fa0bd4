{#-
    Entity-incremental models ("recompute what this build's loads touched", after
    Snowplow's "this run" models). The batch models in models/intermediate/batch list the
    entities the loads since the last build touched: int_batch_users (org_id, user_id),
    int_batch_orgs (org_id), int_batch_attempts (org_id, attempt_id). A mart built with

        config(incremental_strategy='replace_batch')
        ... from {{ ref('int_user_metric_series') }} where {{ in_batch('users') }}

    recomputes only those entities, each from its whole history, and the strategy
    (macros/batch/replace_batch.sql) replaces exactly their rows. The whole model is
    recomputed instead (every row replaced, in place) on a first build or --full-refresh, when the
    model has no watermark in ops.model_watermarks yet, when the batch models were not
    built in this invocation (e.g. `--select` of the mart alone), when the batch's loads hold
    more than var batch_max_share (0.2) of every row loaded (a backfill), and, for a model with
    config as_of_relative=true, when as_of differs from its last build's.
-#}

{#- The batch models every entity-incremental build needs, built in this invocation. -#}
{% macro batch_models() -%}
    {{- return(['int_batch_published_loads', 'int_batch_window', 'int_batch_loads', 'int_batch_users', 'int_batch_orgs', 'int_batch_attempts']) -}}
{%- endmacro %}

{#- True when this build of the current model recomputes only the batch's entities. -#}
{% macro is_batch_build() -%}
    {%- if model.resource_type == 'unit_test' -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set watermarks = source('ops', 'model_watermarks') -%}
    {%- set batch_loads = ref('int_batch_loads') -%}
    {%- set published = ref('int_batch_published_loads') -%}
    {#- --full-refresh: the marts keep their tables (full_refresh: false) and are recomputed whole -#}
    {%- if not execute or this is none or not is_incremental() or flags.FULL_REFRESH -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- for name in batch_models() -%}
        {%- if 'model.' ~ project_name ~ '.' ~ name not in selected_resources -%}
            {{- return(false) -}}
        {%- endif -%}
    {%- endfor -%}
    {#- a batch holding most of the data (a backfill) is recomputed whole: one pass over
        everything is cheaper than probing most entities one by one -#}
    {%- set found = run_query(
        "select count(*) from " ~ watermarks ~ " as mark"
        ~ " where mark.model = '" ~ this.identifier ~ "'"
        ~ " and (select coalesce(sum(batch.rows_loaded), 0) from " ~ batch_loads ~ " as batch)"
        ~ " <= " ~ var('batch_max_share', 0.2)
        ~ " * (select coalesce(sum(published.rows_loaded), 0) from " ~ published ~ " as published)"
        ~ (" and mark.as_of = " ~ as_of_date() if config.get('as_of_relative') else "")
    ) -%}
    {{- return(found.columns[0].values()[0] > 0) -}}
{%- endmacro %}

{#- The key columns of each batch model. -#}
{% macro batch_keys(entity) -%}
    {%- set keys = {'users': ['org_id', 'user_id'], 'orgs': ['org_id'], 'attempts': ['org_id', 'attempt_id']} -%}
    {%- if entity not in keys -%}
        {{ exceptions.raise_compiler_error("in_batch: unknown entity '" ~ entity ~ "' (users, orgs, attempts)") }}
    {%- endif -%}
    {{- return(keys[entity]) -}}
{%- endmacro %}

{#- Filter: the rows of the batch's entities on a batch build, every row otherwise. One
    `= any(array(...))` per key column: an array of the batch's values is computed once
    (an init plan), pushes down into views and GROUP BY and probes indexes. Per column,
    the set is the product of the touched values (a few entities more, never fewer); the
    strategy deletes with this same filter, so exactly the recomputed entities are replaced.
    `alias` qualifies the key columns. -#}
{% macro in_batch(entity, alias=none) -%}
    {%- set keys = batch_keys(entity) -%}
    {#- a unit test renders the model on its given inputs only: always the whole-model path -#}
    {%- if model.resource_type == 'unit_test' -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set batch = ref('int_batch_' ~ entity) -%}
    {%- if is_batch_build() -%}
        {%- for key in keys -%}
            {{ alias ~ '.' if alias else '' }}{{ key }} = any(array(select touched.{{ key }} from {{ batch }} as touched))
            {{- '\n    and ' if not loop.last }}
        {%- endfor -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Filter for a staging view of a versioned stream (attempts, sessions) read for the
    batch's entities: the records any version of which belongs to one of them
    (`<record key> = any(array(...))`, through the raw record-key index). It pushes into
    the staging view's DISTINCT ON, so only those records' versions are ranked; a record
    that moved between entities is found from either. Combine with in_batch() on the
    winners. `true` when the whole model is recomputed, and when the batch's entities hold
    more than a fifth (var batch_records_max_share) of the stream's rows (a load touching
    most orgs): ranking everything in one pass is then cheaper than that many probes. -#}
{% macro in_batch_records(stream, entity, alias=none) -%}
    {%- if model.resource_type == 'unit_test' -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set raw = source('raw', stream) -%}
    {%- set record_key = stream[:-1] ~ '_id' -%}
    {%- if not is_batch_build() -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set touched_versions -%}
        select versions.{{ record_key }} from {{ raw }} as versions
        where {{ in_batch(entity, 'versions') }}
    {%- endset -%}
    {%- set sizes = run_query(
        "select (select count(*) from (" ~ touched_versions ~ ") as touched)"
        ~ " > " ~ var('batch_records_max_share', 0.2) ~ " * (select coalesce(sum(ledger.rows_loaded), 0) from "
        ~ source('raw', 'load_ledger') ~ " as ledger where ledger.stream = '" ~ stream ~ "')"
    ) -%}
    {%- if sizes.rows[0][0] -%}
        {{- return('true') -}}
    {%- endif -%}
    {{ alias ~ '.' if alias else '' }}{{ record_key }} = any(array(
            {{ touched_versions }}
        ))
{%- endmacro %}

{#- The ids of this build's loads of `stream` (int_batch_loads), inlined as constants so
    PostgreSQL skips the raw tables of other big files through their check constraints. -#}
{% macro batch_load_ids(stream) -%}
    {%- set loads = ref('int_batch_loads') -%}
    {%- set ids = [] -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select load_id from " ~ loads ~ " where stream = '" ~ stream ~ "' order by load_id"
        ) -%}
        {%- set ids = found.columns[0].values() | list -%}
    {%- endif -%}
    {{- ids | join(', ') if ids else 'null' -}}
{%- endmacro %}

{#- select <columns> from every version of each record of `stream` (users, attempts,
    sessions, orgs) delivered in this build's loads: a record delivered again under another
    owner touches both. Earlier versions are found through the raw tables' record-key
    indexes (`= any(array(...))`). -#}
{% macro touched_record_versions(stream, columns) -%}
    {%- set record_key = stream[:-1] ~ '_id' -%}
    select
        {%- for column in columns %}
        versions.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ source('raw', stream) }} as versions
    where versions.{{ record_key }} = any(array(
        select delivered.{{ record_key }} from {{ source('raw', stream) }} as delivered
        where delivered._load_id in ({{ batch_load_ids(stream) }})
    ))
{%- endmacro %}

{#- The entity-incremental models of the project (strategy replace_batch), by name. -#}
{% macro entity_incremental_models() -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.config.incremental_strategy == 'replace_batch' -%}
            {%- do names.append(node.name) -%}
        {%- endfor -%}
    {%- endif -%}
    {{- return(names) -}}
{%- endmacro %}
