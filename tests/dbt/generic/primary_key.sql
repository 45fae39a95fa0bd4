{#- The columns are the table's primary key: never null and unique together.
    When PostgreSQL already enforces it (a primary key constraint on exactly these columns,
    as the star schema's tables declare), the guarantee is the database's and the test only
    checks that the constraint exists, without scanning the table (a 10-million-row fact
    would otherwise be grouped on every build). On a distributed warehouse, a table
    hash-distributed by a column outside the key declares (distribution column, key), as
    Citus requires, and that constraint counts. Otherwise (views, or a table that lost its
    constraint) it checks the rows: one failing row per null or duplicated key.
    Usage: data_tests: - primary_key: {arguments: {columns: [a, b]}} -#}
{% test primary_key(model, columns) %}
    {%- set key = columns | join(', ') -%}
    with enforced as (
        select true as is_enforced
        from pg_catalog.pg_constraint as con
        where
            con.contype = 'p'
            and con.conrelid = to_regclass('{{ model }}')
            and (
                select array_agg(att.attname::text order by att.attname)
                from pg_catalog.pg_attribute as att
                where att.attrelid = con.conrelid and att.attnum = any(con.conkey)
            ) = (
                select array_agg(wanted order by wanted)
                from (
                    select unnest(array[{% for column in columns %}'{{ column }}'{{ ", " if not loop.last }}{% endfor %}]::text[]) as wanted
                    {%- if warehouse_distributed() %}
                    -- a table hash-distributed by a column not in the key: its key is
                    -- (distribution column, key) (docs/scaling.md)
                    union
                    select column_to_column_name(dist.logicalrelid, dist.partkey) as wanted
                    from pg_dist_partition as dist
                    where dist.logicalrelid = to_regclass('{{ model }}') and dist.partmethod = 'h'
                    {%- endif %}
                ) as wanted_columns
            )
    ),

    key_problems as (
        select
            {{ key }},
            count(*) as rows_with_key
        from {{ model }}
        where not exists (select from enforced)
        group by {{ key }}
        having
            count(*) > 1
            {%- for column in columns %}
            or bool_or({{ column }} is null)
            {%- endfor %}
    )

    select
        {{ key }},
        rows_with_key
    from key_problems
{% endtest %}
