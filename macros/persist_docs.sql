{#- persist_docs for PostgreSQL: one statement per relation, writing a comment only when it
    differs from the stored one.

    dbt re-applies every table and column comment on every build, with two catalog queries
    (the relation's columns) and two statements per relation. COMMENT takes a SHARE UPDATE
    EXCLUSIVE lock, the lock autovacuum holds while it vacuums or analyzes a big table
    after a load, so each unchanged comment could wait (up to deadlock_timeout, 1 s) for
    autovacuum to be cancelled. Here one DO block compares each comment with the catalog
    and comments only what changed, skipping documented columns the relation lacks: an
    incremental build with unchanged docs costs one round trip per relation and takes no
    such lock. Overrides dbt's default__persist_docs (dispatch looks in the project first). -#}

{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- set name = relation.include(database=false) -%}
    {%- set relation_type = 'materialized view' if relation.type == 'materialized_view' else relation.type -%}
    {%- set comment_relation = for_relation and config.persist_relation_docs() and model.description -%}
    {%- set comment_columns = for_columns and config.persist_column_docs() and model.columns -%}
    {%- if comment_relation or comment_columns -%}
        {%- call statement('persist_docs') -%}
    do $persist_docs$
    declare
        target regclass := '{{ name }}'::regclass;
        position smallint;
    begin
        {%- if comment_relation %}
        {%- set escaped_comment = postgres_escape_comment(model.description) %}
        if obj_description(target, 'pg_class') is distinct from nullif({{ escaped_comment }}, '') then
            comment on {{ relation_type }} {{ name }} is {{ escaped_comment }};
        end if;
        {%- endif %}
        {%- if comment_columns %}
        {%- for column_name, column in model.columns.items() %}
        {%- set escaped_comment = postgres_escape_comment(column['description']) %}
        {%- set quoted = adapter.quote(column_name) if column['quote'] else column_name %}
        select attnum into position from pg_attribute
        where attrelid = target and attname = '{{ column_name }}' and not attisdropped;
        if position is not null and col_description(target, position) is distinct from nullif({{ escaped_comment }}, '') then
            comment on column {{ name }}.{{ quoted }} is {{ escaped_comment }};
        end if;
        {%- endfor %}
        {%- endif %}
    end
    $persist_docs$
        {%- endcall -%}
    {%- endif -%}
{%- endmacro %}
