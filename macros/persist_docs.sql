{#- persist_docs for PostgreSQL, writing a comment only when it differs from the stored one.

    dbt re-applies every table and column comment on every build. COMMENT takes a
    SHARE UPDATE EXCLUSIVE lock, the lock autovacuum holds while it vacuums or analyzes a
    big table after a load, so each unchanged comment could wait (up to deadlock_timeout,
    1 s) for autovacuum to be cancelled. Comparing first reads the catalog only: an
    incremental build with unchanged docs takes no such lock and leaves autovacuum alone.
    Overrides dbt-postgres's macros of the same names (dispatch looks in the project first). -#}

{% macro postgres__alter_relation_comment(relation, comment) %}
    {%- set escaped_comment = postgres_escape_comment(comment) -%}
    {%- set relation_type = 'materialized view' if relation.type == 'materialized_view' else relation.type -%}
    {%- set name = relation.include(database=false) -%}
    do $persist_docs$
    begin
        if obj_description('{{ name }}'::regclass, 'pg_class') is distinct from {{ escaped_comment }} then
            comment on {{ relation_type }} {{ name }} is {{ escaped_comment }};
        end if;
    end
    $persist_docs$;
{% endmacro %}

{% macro postgres__alter_column_comment(relation, column_dict) %}
    {%- set existing_columns = adapter.get_columns_in_relation(relation) | map(attribute="name") | list -%}
    {%- set name = relation.include(database=false) -%}
    do $persist_docs$
    begin
    {%- for column_name in column_dict if (column_name in existing_columns) %}
        {%- set escaped_comment = postgres_escape_comment(column_dict[column_name]['description']) %}
        {%- set quoted = adapter.quote(column_name) if column_dict[column_name]['quote'] else column_name %}
        if col_description('{{ name }}'::regclass, (
            select attnum from pg_attribute
            where attrelid = '{{ name }}'::regclass and attname = '{{ column_name }}'
        )) is distinct from {{ escaped_comment }} then
            comment on column {{ name }}.{{ quoted }} is {{ escaped_comment }};
        end if;
    {%- endfor %}
        null;
    end
    $persist_docs$;
{% endmacro %}
