{#- dbt's postgres__get_columns_in_relation, read from pg_catalog instead of
    information_schema.columns. dbt asks for a relation's columns two to four times per
    incremental model (schema-change check, the strategy's column list); the
    information_schema view checks privileges on every column of the database and took
    about 5 ms a call, the catalog lookup of one relation a fraction of that. Same rows: the
    expressions of information_schema.columns (PostgreSQL 18), over the same relation
    kinds (tables, partitioned tables, views, foreign tables; not materialized views); a
    relation without schema (dbt's temporary tables) is found through the search path,
    which puts pg_temp first. Overrides the adapter's macro (dispatch looks in the project
    first). -#}

{% macro postgres__get_columns_in_relation(relation) -%}
    {%- set identifier = relation.identifier | replace("'", "''") -%}
    {%- if relation.schema -%}
        {%- set schema = relation.schema | replace("'", "''") -%}
        {%- set name = "format('%I.%I', '" ~ schema ~ "', '" ~ identifier ~ "')" -%}
    {%- else -%}
        {%- set name = "format('%I', '" ~ identifier ~ "')" -%}
    {%- endif -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            a.attname::text as column_name,
            (
                case
                    when described.typelem != 0 and described.typlen = -1 then 'ARRAY'
                    when described.nspname = 'pg_catalog' then format_type(described.type_oid, null)
                    else 'USER-DEFINED'
                end
            )::text as data_type,
            information_schema._pg_char_max_length(described.true_type_id, described.true_typmod)::integer as character_maximum_length,
            information_schema._pg_numeric_precision(described.true_type_id, described.true_typmod)::integer as numeric_precision,
            information_schema._pg_numeric_scale(described.true_type_id, described.true_typmod)::integer as numeric_scale
        from pg_catalog.pg_attribute as a
        inner join pg_catalog.pg_class as c on a.attrelid = c.oid
        inner join pg_catalog.pg_type as t on a.atttypid = t.oid
        inner join pg_catalog.pg_namespace as nt on t.typnamespace = nt.oid
        left join pg_catalog.pg_type as bt on t.typtype = 'd' and t.typbasetype = bt.oid
        left join pg_catalog.pg_namespace as nbt on bt.typnamespace = nbt.oid
        -- a domain is described by its base type
        cross join lateral (
            select
                coalesce(bt.typelem, t.typelem) as typelem,
                coalesce(bt.typlen, t.typlen) as typlen,
                coalesce(nbt.nspname, nt.nspname) as nspname,
                case when t.typtype = 'd' then t.typbasetype else a.atttypid end as type_oid,
                information_schema._pg_truetypid(a.*, t.*) as true_type_id,
                information_schema._pg_truetypmod(a.*, t.*) as true_typmod
        ) as described
        where
            c.oid = to_regclass({{ name }})
            and c.relkind in ('r', 'v', 'f', 'p')
            and a.attnum > 0
            and not a.attisdropped
        order by a.attnum
    {% endcall %}
    {%- set table = load_result('get_columns_in_relation').table -%}
    {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}
