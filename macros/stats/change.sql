{#- Percent change of a difference relative to a reference: 100 × difference / |reference|,
    null when the reference is 0 or null. Used by trends (change_pct) and comparisons. -#}
{% macro pct_change(difference, reference) -%}
    (100.0 * ({{ difference }}) / nullif(abs({{ reference }}), 0))
{%- endmacro %}

{#- A percentage 0–100 of a count over a total, unrounded; null when the total is 0. -#}
{% macro pct_of(part, total) -%}
    (100.0 * ({{ part }}) / nullif({{ total }}, 0))
{%- endmacro %}

{#- Fractional days from one instant to another: epoch seconds / 86400. -#}
{% macro fractional_days(from_ts, to_ts) -%}
    ((extract(epoch from {{ to_ts }}) - extract(epoch from {{ from_ts }}))::double precision / 86400.0)
{%- endmacro %}
