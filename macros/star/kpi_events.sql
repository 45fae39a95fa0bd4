{#- Pre-hook of fact_kpi_events on an incremental build that reads the recent loads: the
    fact's own rows the batch needs, fetched once into two temporary tables (dropped at the
    model's commit) that the model's query then reads:
    - pg_temp.fact_kpi_events_held: for each event delivered in the event loads being
      re-read, the first load the fact holds it from (a probe of the key index per id);
    - pg_temp.fact_kpi_events_of_changed_attempts: the events the fact holds, not timed by
      their own delivery, of the attempts delivered in the attempt loads being re-read (in
      any org the attempt had), to be resolved again.
    Why not CTEs of the model: dbt runs an enforced contract's query twice (its column check,
    then the build), and on Citus every read of a distributed table in it is executed both
    times, even under the check's `where false` (2.5 s each at 10 M events). With these two
    reads done here, the model's query reads only coordinator tables. -#}
{% macro star_kpi_events_batch_fact_rows() -%}
    {%- if star_reads_increment() -%}
    {%- set kpi_event_loads = star_recent_loads('kpi_events') -%}
    {%- set attempt_loads = star_recent_loads('attempts') -%}
    create temporary table fact_kpi_events_held on commit drop as
    select
        held.id,
        min(held._load_id) as first_load_id
    from {{ this }} as held
    where
        held.id = any(array(
            select delivered.event_id from {{ source('raw', 'kpi_events') }} as delivered
            where delivered._load_id in ({{ kpi_event_loads }})
        ))
    group by held.id;

    create temporary table fact_kpi_events_of_changed_attempts on commit drop as
    select
        existing.id,
        existing.attempt_id,
        existing.session_id,
        existing.org_id,
        existing.user_id,
        existing.scenario_id,
        existing.event_type,
        existing.event_value,
        existing.timestamp_ms,
        existing.occurred_at,
        existing.occurred_at_source,
        existing._load_id,
        existing.loaded_at
    from {{ this }} as existing
    where
        existing.occurred_at_source != 'event'
        and existing.attempt_id = any(array(
            select delivered.attempt_id from {{ source('raw', 'attempts') }} as delivered
            where delivered._load_id in ({{ attempt_loads }})
        ))
        and existing.org_id = any(array(
            select versions.org_id from {{ source('raw', 'attempts') }} as versions
            where versions.attempt_id = any(array(
                select delivered.attempt_id from {{ source('raw', 'attempts') }} as delivered
                where delivered._load_id in ({{ attempt_loads }})
            ))
        ));

    analyze fact_kpi_events_held;
    analyze fact_kpi_events_of_changed_attempts
    {%- endif -%}
{%- endmacro %}
