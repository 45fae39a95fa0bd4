{{ config(
    meta={'distribution': 'reference'},
    post_hook=["{{ star_statements([
        citus_distribute(),
    ]) }}"],
) }}
-- The calendar: one row per date from the first date of any fact (attempts, sessions, KPI
-- events) through the end of the year after as_of (or after the last fact date, if later).
-- Dates are UTC; week is the ISO week and day_of_week the ISO weekday (1 = Monday).
with fact_dates as (
    select
        min(date_key) as first_date,
        max(date_key) as last_date
    from {{ ref('fact_scenario_attempts') }}

    union all

    select
        min(date_key) as first_date,
        max(date_key) as last_date
    from {{ ref('fact_sessions') }}

    union all

    select
        min(date_key) as first_date,
        max(date_key) as last_date
    from {{ ref('fact_kpi_events') }}
),

bounds as (
    select
        coalesce(min(first_date), {{ as_of_date() }}) as first_date,
        (
            date_trunc('year', greatest(max(last_date), {{ as_of_date() }}))
            + interval '2 years' - interval '1 day'
        )::date as last_date
    from fact_dates
),

calendar as (
    select calendar_day.day::date as date_key
    from bounds
    cross join
        lateral generate_series(bounds.first_date, bounds.last_date, interval '1 day')
            as calendar_day (day)
)

select
    date_key,
    extract(year from date_key)::integer as year,
    extract(quarter from date_key)::integer as quarter,
    extract(month from date_key)::integer as month,
    extract(week from date_key)::integer as week,
    extract(isoyear from date_key)::integer as iso_year,
    extract(isodow from date_key)::integer as day_of_week,
    extract(day from date_key)::integer as day_of_month,
    extract(doy from date_key)::integer as day_of_year,
    extract(isodow from date_key) in (6, 7) as is_weekend,
    date_trunc('week', date_key::timestamp)::date as week_start,
    date_trunc('month', date_key::timestamp)::date as month_start,
    to_char(date_key, 'FMDay') as day_name,
    to_char(date_key, 'FMMonth') as month_name
from calendar
