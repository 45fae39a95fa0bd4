{#-
    Incremental strategy `replace_batch`, the one strategy of every mart: delete the rows
    the model recomputed, insert its result, in one transaction.
    - A batch build (is_batch_build) recomputed the batch's entities: their rows are deleted
      with the same filter the model applied (in_batch on the entity of the batch model it
      depends on), so an entity whose rows should vanish (a user moved to another org) loses
      them too, where dbt's delete+insert would only replace keys present in the result.
    - Otherwise the model recomputed everything: every row is replaced.
    The table itself stays (unlike dbt's table materialization, which swaps in a new table
    and drops the old one in cascade): export views, grants and comments survive, and
    readers see the old rows until the new ones commit. Plain delete and insert: Citus-safe.
-#}
{% macro get_incremental_replace_batch_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set columns = arg_dict["dest_columns"] | map(attribute="quoted") | join(", ") -%}
    {%- set entity = batch_entity() -%}
    delete from {{ target }}
    {%- if entity and is_batch_build() %}
    where {{ in_batch(entity) }}
    {%- endif %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict["temp_relation"] }};
{% endmacro %}

{#- The entity of the batch model the current model reads (users, orgs or attempts), none
    for a model that reads no batch model (it is recomputed whole on every build): from
    dbt's own lineage (model.depends_on), so it cannot disagree with the model's SQL. -#}
{% macro batch_entity() -%}
    {%- set prefix = 'model.' ~ project_name ~ '.int_batch_' -%}
    {%- set entities = [] -%}
    {%- for node in model.depends_on.nodes
        if node.startswith(prefix) and node[prefix | length:] in ('users', 'orgs', 'attempts') -%}
        {%- do entities.append(node[prefix | length:]) -%}
    {%- endfor -%}
    {%- if entities | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "replace_batch: " ~ this ~ " must filter on exactly one batch model (in_batch), found " ~ entities
        ) }}
    {%- endif -%}
    {{- return(entities[0] if entities else none) -}}
{%- endmacro %}
