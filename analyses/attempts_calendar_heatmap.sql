-- A calendar heatmap of completed attempts: one row per org and date of the last 365 days
-- before as_of (days without attempts included, as 0), with the ISO week and weekday for
-- laying the cells out (columns = weeks, rows = day_of_week 1 = Monday).
with days as (
    select
        date_key,
        iso_year,
        week,
        day_of_week,
        is_weekend
    from {{ ref('dim_time') }}
    where date_key > {{ as_of_date() }} - 365 and date_key <= {{ as_of_date() }}
),

orgs as (
    select org_id from {{ ref('dim_orgs') }}
),

daily as (
    select
        org_id,
        date_key,
        count(*) as attempts
    from {{ ref('fact_scenario_attempts') }}
    where date_key > {{ as_of_date() }} - 365 and date_key <= {{ as_of_date() }}
    group by org_id, date_key
)

select
    orgs.org_id,
    days.date_key,
    days.iso_year,
    days.week,
    days.day_of_week,
    days.is_weekend,
    coalesce(daily.attempts, 0) as attempts
from orgs
cross join days
left join daily
    on
        orgs.org_id = daily.org_id
        and days.date_key = daily.date_key
order by orgs.org_id, days.date_key
