{#- Which delivered row of a record wins (the one rule for every stream; see docs/star.md):
    the newest version_column (updated_at) wins; on a tie, or for streams without a version
    column (kpi_events), the earliest loaded row wins (lowest _load_id, then _row_number). -#}

{#- The winning row first: the ORDER BY that follows the record's key, e.g.
    `select distinct on (key) ... order by key, {{ star_version_order() }}`. -#}
{% macro star_version_order(version_column='updated_at') -%}
    {% if version_column %}{{ version_column }} desc nulls last, {% endif %}_load_id, _row_number
{%- endmacro %}

{#- The same rule as a window function: 1 marks the winning row of each key. -#}
{% macro star_version_rank(key, version_column='updated_at') -%}
    row_number() over (partition by {{ key }} order by {{ star_version_order(version_column) }})
{%- endmacro %}
