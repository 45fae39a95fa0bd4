{#- The version of the export views' contract (column names and types): project var
    `export_version`, default '1.0.0'. Bump the major version when a column is renamed,
    dropped or changes type; the minor version when columns are added. -#}
{% macro export_version() -%}
    '{{ var("export_version", "1.0.0") }}'::text
{%- endmacro %}

{#- The six voice metrics of the contract, in the order the export columns list them. The
    flat export views need them as fixed column names (enforced contracts). -#}
{% macro export_metrics() -%}
    {{ return(['pace', 'pitch', 'volume', 'pauses', 'clarity', 'confidence']) }}
{%- endmacro %}

{#- A JSON array of strings as one text, elements joined with '; ' in list order; null
    when the list is missing, not an array, or empty. -#}
{% macro export_join_list(json_list) -%}
    (
        select string_agg(list_item.item, '; ' order by list_item.position)
        from jsonb_array_elements_text(
            case when jsonb_typeof({{ json_list }}) = 'array' then {{ json_list }} else '[]'::jsonb end
        ) with ordinality as list_item (item, position)
    )
{%- endmacro %}
