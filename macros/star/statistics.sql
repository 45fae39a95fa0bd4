{#- The statistics of the star schema and its reporting marts, each defined once. -#}

{#- Talk percentage of an attempt: talk / (talk + listen) × 100; null when both are 0 (or
    either is unknown), so averages skip such attempts. -#}
{% macro talk_percentage(talk_ms, listen_ms) -%}
    (100.0 * {{ talk_ms }}::double precision / nullif({{ talk_ms }} + {{ listen_ms }}, 0))
{%- endmacro %}

{#- Calendar periods of an instant, in UTC: ISO week start (Monday) and month start, as dates. -#}
{% macro utc_week_start(instant) -%}
    date_trunc('week', {{ instant }} at time zone 'UTC')::date
{%- endmacro %}

{% macro utc_month_start(instant) -%}
    date_trunc('month', {{ instant }} at time zone 'UTC')::date
{%- endmacro %}

{% macro utc_date(instant) -%}
    ({{ instant }} at time zone 'UTC')::date
{%- endmacro %}

{#- "In the N-day window before as_of's end": [as_of + 1 day - N days, as_of + 1 day). -#}
{% macro in_window_before_as_of(instant, days) -%}
    (
        {{ instant }} >= (({{ as_of_date() }} + 1 - {{ days }})::timestamp at time zone 'UTC')
        and {{ instant }} < {{ as_of_end() }}
    )
{%- endmacro %}

{#- A KPI event type's category from the seed event_types; unknown types are 'unknown'. -#}
{% macro event_category(category_column) -%}
    coalesce({{ category_column }}, 'unknown')
{%- endmacro %}

{#- Order-independent mean / sample standard deviation: computed in numeric, so the same
    rows give the same bits whatever order a (parallel) plan adds them in, and a rebuild
    reproduces the mart exactly; returned as double precision. (A double's numeric value
    keeps 15 significant digits.) -#}
{% macro exact_avg(expression) -%}
    avg(({{ expression }})::numeric)::double precision
{%- endmacro %}

{% macro exact_stddev_samp(expression) -%}
    stddev_samp(({{ expression }})::numeric)::double precision
{%- endmacro %}
