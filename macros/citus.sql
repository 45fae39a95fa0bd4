{#-
    Citus scale-out (docs/scaling.md). Whether the warehouse is distributed is a property
    of the database, decided once by `warehouse db distribute`: the citus extension is
    installed and the marker table ops.citus_distribution exists (one row per table the
    warehouse distributes, written when the table is distributed). No variable, so a cron
    `warehouse run` and a `--full-refresh` build the same warehouse as the first build.

    Which tables are Citus tables, and how, is each model's config
    `meta: {distribution: org_id}` (a fact: hash-distributed by org_id, its primary key
    widened to (org_id, key), since Citus requires unique keys to hold the distribution
    column) or `meta: {distribution: reference}` (a small dimension: a copy on every node,
    joined locally by every shard). Every other table stays an ordinary table on the
    coordinator.
-#}

{#- The marker: ops.citus_distribution (created by `warehouse db distribute`). -#}
{% macro citus_marker() -%}
    {{- generate_schema_name('ops') | trim -}}.citus_distribution
{%- endmacro %}

{#- True when this database is a distributed warehouse. One catalogue query. -#}
{% macro warehouse_distributed() -%}
    {%- if not execute -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set found = run_query(
        "select exists (select from pg_extension where extname = 'citus')"
        ~ " and to_regclass('" ~ citus_marker() ~ "') is not null"
    ) -%}
    {{- return(found.columns[0].values()[0]) -}}
{%- endmacro %}

{#- The current model's distribution (meta.distribution): 'org_id', 'reference' or none. -#}
{% macro citus_distribution() -%}
    {%- set meta = config.get('meta') or {} -%}
    {{- return(meta.get('distribution')) -}}
{%- endmacro %}

{#- A primary key's columns: on a distributed warehouse, a hash-distributed table's key
    starts with its distribution column. -#}
{% macro citus_key_columns(columns) -%}
    {%- set column = citus_distribution() -%}
    {%- if column and column != 'reference' and column not in columns and warehouse_distributed() -%}
        {{- return([column] + columns) -}}
    {%- endif -%}
    {{- return(columns) -}}
{%- endmacro %}

{#- Pre-hook of every mart (dbt_project.yml). Citus refuses, in a transaction that has run
    a multi-shard query over several connections (a parallel query), to distribute a table,
    to write a reference table or to add a foreign key to one. Such a transaction is put in
    sequential mode (one connection per node) before its first statement: a reference
    table's build (it may read the facts first, as dim_time does), and a fact's first
    build (it is distributed in its post-hook). A fact's incremental build stays parallel. -#}
{% macro citus_pre_hook() -%}
    {%- set distribution = citus_distribution() -%}
    {%- if distribution and (distribution == 'reference' or not is_incremental()) and warehouse_distributed() -%}
    select set_config('citus.multi_shard_modify_mode', 'sequential', true)
    {%- endif -%}
{%- endmacro %}

{#- The statement that puts the rest of a transaction in sequential mode (run-end hooks). -#}
{% macro citus_sequential() -%}
    {%- if warehouse_distributed() -%}
    select set_config('citus.multi_shard_modify_mode', 'sequential', true);
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of the models with meta.distribution: distribute the table just created on a
    distributed warehouse (a no-op when it is a Citus table already, and on a single-node
    warehouse). The rows the coordinator kept on disk are truncated
    (truncate_local_data_after_distributing_table), and a fact keeps an index on its
    single-node key (lookups by key alone stay index probes on every shard). -#}
{% macro citus_distribute() -%}
    {%- set distribution = citus_distribution() -%}
    {%- if distribution and warehouse_distributed() -%}
    {{ citus_distribute_sql(this, distribution, config.get('meta', {}).get('key_index')) }}
    {%- endif -%}
{%- endmacro %}

{% macro citus_distribute_sql(relation, distribution, key_index=none) -%}
    do $citus$
    begin
        perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
        if exists (select from pg_dist_partition where logicalrelid = '{{ relation }}'::regclass) then
            return;
        end if;
        -- Citus refuses to distribute a table whose policies hold subqueries (the
        -- single-node form of the organisation roles' policy): ops.apply_access() declares
        -- it again in the Citus form
        drop policy if exists bi_org_rows on {{ relation }};
        {%- if distribution == 'reference' %}
        perform create_reference_table('{{ relation }}');
        {%- else %}
        {%- if key_index %}
        create index if not exists {{ relation.identifier }}_{{ key_index | join('_') }}_idx
            on {{ relation }} ({{ key_index | join(', ') }});
        {%- endif %}
        perform create_distributed_table('{{ relation }}', '{{ distribution }}');
        {%- endif %}
        perform truncate_local_data_after_distributing_table('{{ relation }}');
        insert into {{ citus_marker() }} (relation, distribution)
        values ('{{ relation.schema }}.{{ relation.identifier }}', '{{ distribution }}')
        on conflict (relation) do update set distribution = excluded.distribution, distributed_at = now();
    end
    $citus$
{%- endmacro %}

{#- `warehouse db distribute` (dbt run-operation citus_distribute_warehouse): make an
    existing warehouse distributed. Each table with meta.distribution that exists becomes a
    Citus table (its rows move to the shards); a fact's primary key is widened to
    (org_id, key) first and the foreign keys on it are dropped (the next build's run-end
    declares them again, matching the new keys). Tables not built yet are distributed by
    their first build. -#}
{% macro citus_distribute_warehouse() %}
    {%- set has_citus = run_query(
        "select exists (select from pg_extension where extname = 'citus')"
    ).columns[0].values()[0] -%}
    {%- if not has_citus -%}
        {{ exceptions.raise_compiler_error(
            "warehouse db distribute: the database has no citus extension (create extension citus, and register the workers, first)"
        ) }}
    {%- endif -%}
    {%- do run_query(
        "create schema if not exists " ~ generate_schema_name('ops') | trim ~ ";"
        ~ " create table if not exists " ~ citus_marker() ~ " ("
        ~ " relation text primary key, distribution text not null,"
        ~ " distributed_at timestamptz not null default now());"
        ~ " comment on table " ~ citus_marker() ~ " is 'This warehouse is distributed with Citus (warehouse db distribute): one row per table made a Citus table (distribution column, or reference).'"
    ) -%}
    {%- set statements = [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and (node.config.meta or {}).get('distribution') -%}
        {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- set distribution = node.config.meta.distribution -%}
        {%- set exists = run_query("select to_regclass('" ~ relation ~ "') is not null").columns[0].values()[0] -%}
        {%- if exists -%}
            {#- before distributing: the foreign keys from and to the table go (distributing
                refuses them; the next build's run-end declares them again, matching the new
                keys), and a hash-distributed table's primary key is widened to start with
                its distribution column -#}
            {%- set prepare -%}
                do $prepare$
                declare
                    found record;
                    key_columns text;
                begin
                    if exists (select from pg_dist_partition where logicalrelid = '{{ relation }}'::regclass) then
                        return;
                    end if;
                    for found in
                        select conrelid::regclass as owner, conname from pg_constraint
                        where contype = 'f' and (conrelid = '{{ relation }}'::regclass or confrelid = '{{ relation }}'::regclass)
                    loop
                        execute format('alter table %s drop constraint %I', found.owner, found.conname);
                    end loop;
                    {%- if distribution != 'reference' %}
                    select string_agg(quote_ident(attname), ', ' order by position)
                    into key_columns
                    from (
                        select attribute.attname, key_column.position
                        from pg_constraint as pk
                        cross join unnest(pk.conkey) with ordinality as key_column (attnum, position)
                        inner join pg_attribute as attribute
                            on attribute.attrelid = pk.conrelid and attribute.attnum = key_column.attnum
                        where pk.conrelid = '{{ relation }}'::regclass and pk.contype = 'p'
                    ) as pk_columns;
                    if key_columns is not null and key_columns !~ '(^|, ){{ distribution }}(,|$)' then
                        execute format(
                            'alter table {{ relation }} drop constraint %I',
                            (select conname from pg_constraint where conrelid = '{{ relation }}'::regclass and contype = 'p')
                        );
                        execute 'alter table {{ relation }} add primary key ({{ distribution }}, ' || key_columns || ')';
                        {%- if node.config.meta.key_index %}
                        create index if not exists {{ relation.identifier }}_{{ node.config.meta.key_index | join('_') }}_idx
                            on {{ relation }} ({{ node.config.meta.key_index | join(', ') }});
                        {%- endif %}
                    end if;
                    {%- endif %}
                end
                $prepare$
            {%- endset -%}
            {%- do statements.append(prepare) -%}
            {%- do statements.append(citus_distribute_sql(relation, distribution)) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- row-level security: the BI role table on every node, the policies in the Citus form -#}
    {%- if run_query(
        "select to_regclass('" ~ state_schema() ~ ".bi_roles') is not null"
        ~ " and to_regprocedure('" ~ state_schema() ~ ".apply_access()') is not null"
    ).columns[0].values()[0] -%}
        {%- do statements.append(citus_reference_bi_roles()) -%}
        {%- do statements.append("select " ~ state_schema() ~ ".apply_access()") -%}
    {%- endif -%}
    {%- for statement in statements -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {{ log("distributed: " ~ (statements | length) ~ " statements", info=true) }}
{% endmacro %}
