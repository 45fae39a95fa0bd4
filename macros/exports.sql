{#- The version of the export views' contract (column names and types): project var
    `export_version`, default '1.0.0'. Bump the major version when a column is renamed,
    dropped or changes type; the minor version when columns are added. -#}
{% macro export_version() -%}
    '{{ var("export_version", "1.0.0") }}'::text
{%- endmacro %}

{#- When the dbt invocation that builds the export views started, and its id (literals). -#}
{% macro export_built_at() -%}
    {%- if run_started_at is defined -%}
        '{{ run_started_at.isoformat() }}'::timestamptz
    {%- else -%}
        null::timestamptz
    {%- endif -%}
{%- endmacro %}

{% macro export_invocation_id() -%}
    {%- if invocation_id is defined -%}
        '{{ invocation_id }}'::text
    {%- else -%}
        null::text
    {%- endif -%}
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
