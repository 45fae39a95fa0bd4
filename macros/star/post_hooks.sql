{#- Post-hooks shared by the star schema's tables. -#}

{#- Add a primary key after the table is filled (a sorted index build is far faster than
    maintaining the index row by row during a 10-million-row insert). Runs only when the
    table has no primary key yet, i.e. after a first build or a --full-refresh. -#}
{% macro star_primary_key(columns) -%}
    {%- set columns = citus_key_columns(columns) -%}
    do $$
    begin
        if not exists (
            select from pg_constraint
            where conrelid = '{{ this }}'::regclass and contype = 'p'
        ) then
            -- unnamed: during a --full-refresh the replaced table (dropped after the
            -- commit) still holds the name <table>_pkey
            alter table {{ this }} add primary key ({{ columns | join(', ') }});
        end if;
    end
    $$
{%- endmacro %}

{#- Planner statistics for a table built from scratch (first build, --full-refresh: it
    has none yet), so the models and tests that read it next in the same build plan with
    real row counts. An incremental build changes a few percent of the rows: it leaves the
    statistics to autovacuum (which analyzes once a table changed by 10%) instead of
    sampling millions of rows again, and taking the lock autovacuum holds. -#}
{% macro star_analyze() -%}
    {#- On a distributed warehouse the coordinator holds no statistics of a Citus table
        (they live on the shards, kept by the workers' autovacuum): the pg_stats test
        below would analyze it on every build, so only a table built from scratch is. -#}
    {%- if is_incremental() and not flags.FULL_REFRESH and citus_distribution() and warehouse_distributed() -%}
        {{- return('') -}}
    {%- endif -%}
    do $analyze$
    begin
        if not exists (
            select from pg_stats
            where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
        ) then
            analyze {{ this.include(database=false) }};
        end if;
    end
    $analyze$
{%- endmacro %}

{#- A model's hooks sent as one statement (one round trip and one set of log events
    instead of one per hook): the non-empty parts, joined by ';'. -#}
{% macro star_statements(parts) -%}
    {%- set kept = [] -%}
    {%- for part in parts if part | trim -%}
        {%- do kept.append(part | trim) -%}
    {%- endfor -%}
    {{- kept | join(';\n') -}}
{%- endmacro %}

{#- Readable names for the indexes of the model's `indexes` config: dbt names them by an md5
    hash; BI tools and `\d` show `<table>_<columns>_idx` instead (PostgreSQL's own
    convention). Renames only indexes whose name is such a hash; one catalog query when
    there is nothing to rename. -#}
{% macro star_readable_index_names() -%}
    {%- if config.get('indexes') and config.get('materialized') in ('table', 'incremental') -%}
    do $index_names$
    declare
        found record;
        wanted text;
    begin
        for found in
            select
                index_class.relname as index_name,
                (select string_agg(attribute.attname, '_' order by key_column.position)
                 from unnest(present.indkey::int2[]) with ordinality as key_column (attnum, position)
                 inner join pg_attribute as attribute
                     on attribute.attrelid = present.indrelid and attribute.attnum = key_column.attnum
                ) as columns
            from pg_index as present
            inner join pg_class as index_class on index_class.oid = present.indexrelid
            where present.indrelid = '{{ this }}'::regclass and index_class.relname ~ '^[0-9a-f]{32}$'
        loop
            wanted := left('{{ this.identifier }}_' || found.columns, 59) || '_idx';
            if to_regclass(quote_ident('{{ this.schema }}') || '.' || quote_ident(wanted)) is null then
                execute format('alter index %I.%I rename to %I', '{{ this.schema }}', found.index_name, wanted);
            end if;
        end loop;
    end
    $index_names$
    {%- endif -%}
{%- endmacro %}
