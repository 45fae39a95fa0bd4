{#- The "now" of every relative figure: var as_of (a date), default today in UTC. -#}
{% macro as_of_date() -%}
    {%- if var('as_of') -%}
        date '{{ var("as_of") }}'
    {%- else -%}
        (now() at time zone 'UTC')::date
    {%- endif -%}
{%- endmacro %}

{#- End of the as_of day (exclusive), as a UTC instant. -#}
{% macro as_of_end() -%}
    (({{ as_of_date() }} + 1)::timestamp at time zone 'UTC')
{%- endmacro %}
