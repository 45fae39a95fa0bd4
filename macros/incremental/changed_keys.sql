{#-
    Entity-incremental models ("recompute what the new loads touched"), the pattern of
    mature event packages (Snowplow's sessions-this-run): a model declares its grain and the
    raw streams that feed it,

        config(materialized='incremental', incremental_strategy='replace_changed',
               changed_by={'keys': ['org_id', 'user_id'], 'streams': ['sessions', 'users'],
                           'as_of': false})

    filters its first CTE with {{ in_changed_batch() }}, and on an incremental run only the
    entities (e.g. users) that appear in the loads the model has not processed yet are
    recomputed: their rows are deleted and inserted again in one transaction; every other
    row stays. Whole-history statistics (percentiles, regressions, streaks) stay exact
    because each touched entity is recomputed from its complete history in the facts.

    What "not processed yet" means: intermediate.batch_watermarks keeps, per model and
    stream, the newest load (ledger loaded_at) published before the model's last successful
    build started (written by a post-hook in the model's own transaction). The batch is
    every load of a declared stream newer than that minus var('lookback_days') and published
    before this build started (batch_ceiling); a file published mid-build waits for the
    next run, and the lookback re-reads late files as the facts do.

    The touched keys of a stream are the key values of the batch's raw rows and, for streams
    whose records are versioned (sessions, attempts, users), of every earlier version of
    those records: a session re-delivered under another user recomputes both users. The
    earlier versions are found through the raw tables' record-key indexes (loaders/schema.py;
    `= any(array(...))` lets each raw table use its index instead of a full hash join).
    KPI events keep their first delivered version, so only the batch's own rows count.

    The whole model is recomputed (rows replaced) on a first build, a --full-refresh, when
    the model has no watermark yet, and, for models declared 'as_of': true, when the as_of
    date differs from the one of the last build (their figures are relative to it).
-#}

{% macro batch_watermarks_relation() -%}
    {{- generate_schema_name('intermediate') | trim }}.batch_watermarks
{%- endmacro %}

{#- on-run-start: the watermark table exists before any model reads it. -#}
{% macro ensure_batch_watermarks() %}
    create schema if not exists {{ generate_schema_name('intermediate') | trim }};
    create table if not exists {{ batch_watermarks_relation() }} (
        model text not null,
        stream text not null,
        loaded_through timestamptz,
        as_of date not null,
        built_at timestamptz not null default now(),
        primary key (model, stream)
    );
    comment on table {{ batch_watermarks_relation() }} is
        'Per entity-incremental model and raw stream: the newest load the model had seen at '
        'its last successful build, and the as_of date of that build (macros/incremental/changed_keys.sql).';
    create table if not exists {{ touched_keys_relation() }} (
        invocation_id text not null,
        part_md5 text not null,
        key_values text[],
        created_at timestamptz not null default now()
    );
    create index if not exists batch_touched_keys_part
        on {{ touched_keys_relation() }} (invocation_id, part_md5);
    comment on table {{ touched_keys_relation() }} is
        'Per dbt invocation: the keys each touched-keys query found, so the models that share '
        'a query run it once per build (macros/incremental/changed_keys.sql). Rows of a build '
        'are deleted when it ends; rows of a crashed build after a day.';
    delete from {{ touched_keys_relation() }} where created_at < now() - interval '1 day';
{% endmacro %}

{% macro touched_keys_relation() -%}
    {{- generate_schema_name('intermediate') | trim }}.batch_touched_keys
{%- endmacro %}

{#- This dbt invocation's answers to the touched-keys questions, kept in memory: a model
    asks them while its SQL is compiled and again in its strategy, several times each, and
    every answer is fixed for the invocation (the batch is bounded by batch_ceiling, and a
    model's watermark moves only in its own post-hook, after the last question). Lives in
    the `graph` dict, the one object dbt shares between every node of an invocation. -#}
{% macro invocation_memo() -%}
    {#- per invocation_id: a process that invokes dbt twice on one manifest starts afresh -#}
    {{- return(graph.setdefault('training_warehouse_invocation_memo', {}).setdefault(invocation_id, {})) -}}
{%- endmacro %}

{#- on-run-end: this build's cached touched keys are no longer needed. -#}
{% macro clear_touched_keys() %}
    delete from {{ touched_keys_relation() }} where invocation_id = '{{ invocation_id }}';
{% endmacro %}

{% macro changed_by_config() -%}
    {%- set declared = config.get('changed_by') -%}
    {%- if not declared -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'replace_changed' needs config changed_by={'keys': [...], 'streams': [...]} in " ~ this
        ) }}
    {%- endif -%}
    {{- return({
        'keys': declared['keys'],
        'streams': declared['streams'],
        'as_of': declared.get('as_of', false),
    }) -}}
{%- endmacro %}

{#- The record id of a versioned stream (newest version wins), from the source's meta
    (models/staging/_sources.yml, which follows loaders/streams.py): earlier versions of a
    batch record count too. None for first-delivery-wins streams (KPI events). -#}
{% macro versioned_stream_id(stream) -%}
    {%- if not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set node = graph.sources['source.' ~ project_name ~ '.raw.' ~ stream] -%}
    {%- set meta = node.config.meta or node.meta -%}
    {{- return(meta['record_key'] if meta['versioned'] else none) -}}
{%- endmacro %}

{#- The newest load a batch takes: the loads published before this dbt invocation started.
    A fixed bound, so the touched keys the model computes and the keys its strategy deletes
    are the same set even when a file is published mid-build (it waits for the next run). -#}
{% macro batch_ceiling() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}

{#- True when this run recomputes only the touched entities (see the header). -#}
{% macro is_changed_batch() -%}
    {#- unit tests render models without a relation: always the whole-model path -#}
    {%- if not execute or this is none or not is_incremental() -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set memo = invocation_memo() -%}
    {%- set memo_key = 'is_changed_batch|' ~ this -%}
    {%- if memo_key not in memo -%}
        {%- set declared = changed_by_config() -%}
        {%- set found = run_query(
            "select count(*) from " ~ batch_watermarks_relation()
            ~ " where model = '" ~ this ~ "'"
            ~ (" and as_of = " ~ as_of_date() if declared['as_of'] else "")
        ) -%}
        {%- do memo.update({memo_key: found.columns[0].values()[0] > 0}) -%}
    {%- endif -%}
    {{- return(memo[memo_key]) -}}
{%- endmacro %}

{#- The ids of the loads of `stream` this model has not processed (inlined as constants, so
    PostgreSQL skips the tables of older big files through their check constraints). -#}
{% macro changed_batch_loads(stream) -%}
    {%- set found = run_query(loads_after_watermark_query(
        stream,
        "select mark.loaded_through from " ~ batch_watermarks_relation() ~ " as mark"
        ~ " where mark.model = '" ~ this ~ "' and mark.stream = '" ~ stream ~ "'",
        source('raw', 'load_ledger'),
        ceiling=batch_ceiling(),
    ) ~ " order by ledger.load_id") -%}
    {{- return(found.columns[0].values() | list) -}}
{%- endmacro %}

{#- select <keys> of every entity the unprocessed loads touched (may repeat keys). -#}
{% macro changed_keys_sql() -%}
    {%- set declared = changed_by_config() -%}
    {%- set keys = declared['keys'] | join(', ') -%}
    {%- set parts = changed_keys_parts() -%}
    {%- if parts -%}
        {{- parts | join('\n        union\n        ') -}}
    {%- else -%}
        {#- nothing new: an empty key set of the right column types -#}
        select {{ keys }} from {{ source('raw', declared['streams'][0]) }} where false
    {%- endif -%}
{%- endmacro %}

{#- One query per declared stream with unprocessed loads: select <keys> of the entities
    those loads touched. -#}
{% macro changed_keys_parts() -%}
    {%- set declared = changed_by_config() -%}
    {%- set keys = declared['keys'] | join(', ') -%}
    {%- set parts = [] -%}
    {%- for stream in declared['streams'] -%}
        {%- set ids = changed_batch_loads(stream) -%}
        {%- if ids -%}
            {%- set relation = source('raw', stream) -%}
            {%- set in_batch = '_load_id in (' ~ (ids | join(', ')) ~ ')' -%}
            {%- set record_id = versioned_stream_id(stream) -%}
            {%- if record_id -%}
                {%- do parts.append(
                    'select ' ~ keys ~ ' from ' ~ relation ~ ' where ' ~ record_id
                    ~ ' = any(array(select ' ~ record_id ~ ' from ' ~ relation ~ ' where ' ~ in_batch ~ '))'
                ) -%}
            {%- else -%}
                {%- do parts.append('select ' ~ keys ~ ' from ' ~ relation ~ ' where ' ~ in_batch) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(parts) -}}
{%- endmacro %}

{#- The distinct touched keys (an agate table, one column per key, and is_marker: one
    row with null keys marks the set as computed). Each part's result is kept in
    batch_touched_keys for this invocation, keyed by the md5 of its SQL (which inlines its
    load ids), so the models sharing a part (16 user models read the same session loads)
    run its query once; a model's keys are the union of its parts' stored keys, read once
    and remembered for the rest of the invocation (invocation_memo: its SQL and its
    strategy ask several times). A part found by two threads at once is stored twice: the
    read is distinct. Keys travel as text: they are inlined as quoted constants. -#}
{% macro changed_keys_found() -%}
    {%- set memo = invocation_memo() -%}
    {%- set memo_key = 'changed_keys_found|' ~ this -%}
    {%- if memo_key in memo -%}
        {{- return(memo[memo_key]) -}}
    {%- endif -%}
    {%- set keys = changed_by_config()['keys'] -%}
    {%- set cache = touched_keys_relation() -%}
    {%- set this_run = "invocation_id = '" ~ invocation_id ~ "'" -%}
    {%- set hashes = [] -%}
    {%- for part in changed_keys_parts() -%}
        {%- set part_md5 = local_md5((keys | join(',')) ~ '|' ~ part) -%}
        {%- do hashes.append("'" ~ part_md5 ~ "'") -%}
        {#- skipped when a committed model of this invocation stored the part already;
            a part another thread stored but has not committed yet is not visible here
            and is stored again (the read is distinct) -#}
        {%- do run_query(
            "insert into " ~ cache ~ " (invocation_id, part_md5, key_values)"
            ~ " select '" ~ invocation_id ~ "', '" ~ part_md5 ~ "', found.key_values from ("
            ~ " select distinct array[" ~ (keys | join('::text, ')) ~ "::text] as key_values"
            ~ " from (" ~ part ~ ") as part"
            ~ " union all select null::text[]) as found"
            ~ " where not exists (select from " ~ cache ~ " as done where done." ~ this_run
            ~ " and done.part_md5 = '" ~ part_md5 ~ "' and done.key_values is null)"
        ) -%}
    {%- endfor -%}
    {%- set columns = [] -%}
    {%- set markers = [] -%}
    {%- for key in keys -%}
        {%- do columns.append('key_values[' ~ loop.index ~ '] as ' ~ key) -%}
        {%- do markers.append('null::text') -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select distinct " ~ (columns | join(', ')) ~ ", false as is_marker from " ~ cache
        ~ " where " ~ this_run ~ " and key_values is not null and part_md5 in ("
        ~ ((hashes or ["''"]) | join(', ')) ~ ")"
        ~ " union all select " ~ (markers | join(', ')) ~ ", true"
    ) -%}
    {%- do memo.update({memo_key: found}) -%}
    {{- return(found) -}}
{%- endmacro %}

{#- Filter for the model's first CTE: its rows for the touched entities only on an entity
    batch, every row otherwise. `alias` qualifies the key columns. -#}
{% macro in_changed_batch(alias=none) -%}
    {%- if is_changed_batch() -%}
        {{- changed_batch_predicate(alias) -}}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Filter for a staging model of a versioned stream (sessions, attempts, users) read for
    the touched entities: its record key limited to the records any version of which
    belongs to a touched entity (`<key> = any(array(...))`, through the raw record-key
    index). It pushes into the staging DISTINCT ON, so only those records' versions are
    ranked; a record that moved between entities is found from either. `true` when the
    whole model is recomputed, and when the touched entities hold more than a fifth
    (var changed_records_max_share) of the stream's rows (a load touching most users):
    ranking everything in one pass is then cheaper than that many index probes. Combine it
    with in_changed_batch() on the winners. `alias` qualifies the key column. -#}
{% macro in_changed_batch_records(stream, alias=none) -%}
    {%- if not is_changed_batch() -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set key = versioned_stream_id(stream) -%}
    {%- set touched_versions -%}
        select versions.{{ key }} from {{ source('raw', stream) }} as versions
        where {{ changed_batch_predicate('versions') }}
    {%- endset -%}
    {%- set sizes = run_query(
        "select (select count(*) from (" ~ touched_versions ~ ") as touched)"
        ~ " > " ~ var('changed_records_max_share', 0.2) ~ " * (select coalesce(sum(ledger.rows_loaded), 0) from " ~ source('raw', 'load_ledger')
        ~ " as ledger where ledger.stream = '" ~ stream ~ "')"
    ) -%}
    {%- if sizes.rows[0][0] -%}
        {{- return('true') -}}
    {%- endif -%}
    {{ alias ~ '.' if alias else '' }}{{ key }} = any(array(
            {{ touched_versions }}
        ))
{%- endmacro %}

{#- The touched keys as constant lists, one per key column (`org_id in ('...', ...) and
    user_id in (...)`): constants push down through views and GROUP BY and PostgreSQL
    hashes long IN lists, where a semi-join on a subquery would aggregate everything first.
    Per column, so the set is the product of the touched values (an org with a touched
    user matching another touched user's id): a few entities more, never fewer, and the
    strategy deletes with this same predicate, so exactly the recomputed entities are
    replaced. Very large batches keep the subquery form. -#}
{% macro changed_batch_predicate(alias=none) -%}
    {%- set memo = invocation_memo() -%}
    {%- set memo_key = 'changed_batch_predicate|' ~ this ~ '|' ~ alias -%}
    {%- if memo_key not in memo -%}
        {%- do memo.update({memo_key: render_changed_batch_predicate(alias)}) -%}
    {%- endif -%}
    {{- memo[memo_key] -}}
{%- endmacro %}

{% macro render_changed_batch_predicate(alias=none) -%}
    {%- set declared = changed_by_config() -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    {%- set keys = declared['keys'] -%}
    {%- set found = changed_keys_found() -%}
    {#- one row is the marker that the keys were computed (null keys, is_marker true) -#}
    {%- set touched = (found.rows | length) - (found.columns[keys | length].values() | select | list | length) -%}
    {%- if touched == 0 -%}
        false
    {%- elif touched > var('changed_keys_inline_limit', 20000) -%}
        ({% for key in keys %}{{ prefix }}{{ key }}{{ ', ' if not loop.last }}{% endfor %}) in (
        {{ changed_keys_sql() }}
    )
    {%- else -%}
        {%- set conditions = [] -%}
        {%- for key in keys -%}
            {%- set values = found.columns[loop.index0].values() | reject('none') | map('string') | unique | list -%}
            {%- if values -%}
                {%- set quoted = [] -%}
                {%- for value in values | sort -%}
                    {%- do quoted.append("'" ~ value.replace("'", "''") ~ "'") -%}
                {%- endfor -%}
                {%- do conditions.append(prefix ~ key ~ ' in (' ~ (quoted | join(', ')) ~ ')') -%}
            {%- else -%}
                {%- do conditions.append('false') -%}
            {%- endif -%}
        {%- endfor -%}
        {{- conditions | join('\n        and ') -}}
    {%- endif -%}
{%- endmacro %}

{#- post-hook: what this build has seen, in the model's transaction (a failed build keeps
    the old watermark, so its batch is read again next time). -#}
{% macro record_batch_watermark() -%}
    {%- if config.get('incremental_strategy') != 'replace_changed' -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set declared = changed_by_config() -%}
    delete from {{ batch_watermarks_relation() }} where model = '{{ this }}';
    insert into {{ batch_watermarks_relation() }} (model, stream, loaded_through, as_of)
    select
        '{{ this }}',
        declared.stream,
        (
            select max(ledger.loaded_at) from {{ source('raw', 'load_ledger') }} as ledger
            where ledger.stream = declared.stream and ledger.loaded_at <= {{ batch_ceiling() }}
        ),
        {{ as_of_date() }}
    from (values {% for stream in declared['streams'] %}('{{ stream }}'){{ ', ' if not loop.last }}{% endfor %}) as declared (stream)
{%- endmacro %}

{#-
    Strategy: delete the touched entities' rows (all rows when the whole model is
    recomputed) and insert the model's result, in one transaction. Plain delete and insert:
    Citus-safe, no MERGE.
-#}
{% macro get_incremental_replace_changed_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source_relation = arg_dict["temp_relation"] -%}
    {%- set columns = arg_dict["dest_columns"] | map(attribute="quoted") | join(", ") -%}
    {%- if is_changed_batch() %}
    delete from {{ target }}
    where {{ changed_batch_predicate() }};
    {%- else %}
    delete from {{ target }};
    {%- endif %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source_relation }};
{% endmacro %}
