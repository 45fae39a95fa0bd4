{#-
    Incremental strategy `replace_all`: the model's full result replaces the table's rows
    in one transaction (delete, then insert), keeping the same table.

    Why: dbt's table materialization swaps in a new table and drops the old one with
    CASCADE, which also drops every view on it (the export views) until they are rebuilt
    later in the run, so readers see "relation does not exist". Replacing rows in place
    keeps dependent views, grants and comments, and readers see the old rows until the
    new ones commit (MVCC). Citus-safe: plain delete and insert, no MERGE.
-#}
{% macro get_incremental_replace_all_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = arg_dict["dest_columns"] | map(attribute="quoted") | join(", ") -%}
    delete from {{ target }};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
{% endmacro %}
