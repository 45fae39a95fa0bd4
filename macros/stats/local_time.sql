{#- A user's IANA time zone, UTC when empty or unknown (null). -#}
{% macro user_time_zone(timezone) -%}
    coalesce(nullif(trim({{ timezone }}), ''), 'UTC')
{%- endmacro %}

{#- The wall-clock time (timestamp without time zone) of an instant in a user's zone. -#}
{% macro local_timestamp(instant, timezone) -%}
    ({{ instant }} at time zone {{ user_time_zone(timezone) }})
{%- endmacro %}
