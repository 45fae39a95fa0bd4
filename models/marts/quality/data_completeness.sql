-- One row per raw stream: what the loader read, loaded and quarantined (raw.load_ledger via
-- stg_load_ledger), how many records the marts hold, and completeness_pct = 100 ×
-- rows_in_marts / rows_expected. "Expected" is the distinct current records the marts
-- should hold, i.e. the staging model's rows (one winning version per key):
-- orgs → dim_orgs, users → dim_users, scenarios → dim_scenarios, attempts whose current
-- status is 'completed' → fact_scenario_attempts, sessions → fact_sessions,
-- kpi_events → fact_kpi_events. 100 when nothing is expected.
with streams as (
    select stream_list.stream
    from (
        values ('orgs'), ('users'), ('scenarios'), ('attempts'), ('sessions'), ('kpi_events')
    ) as stream_list (stream)
),

ledger as (
    select
        stream,
        count(*) as files_loaded,
        sum(rows_read) as rows_read,
        sum(rows_loaded) as rows_loaded,
        sum(rows_quarantined) as rows_quarantined,
        max(loaded_at) as last_loaded_at
    from {{ ref('stg_load_ledger') }}
    group by stream
),

expected as (
    select
        stream,
        sum(records_expected) as rows_expected
    from {{ ref('int_quality_expected_records') }}
    group by stream
    union all
    select
        'orgs' as stream,
        count(*) as rows_expected
    from {{ ref('stg_orgs') }}
    union all
    select
        'scenarios' as stream,
        count(*) as rows_expected
    from {{ ref('stg_scenarios') }}
),

in_marts as (
    select
        'orgs' as stream,
        count(*) as rows_in_marts
    from {{ ref('dim_orgs') }}
    union all
    select
        'users' as stream,
        count(*) as rows_in_marts
    from {{ ref('dim_users') }}
    union all
    select
        'scenarios' as stream,
        count(*) as rows_in_marts
    from {{ ref('dim_scenarios') }}
    union all
    select
        'attempts' as stream,
        count(*) as rows_in_marts
    from {{ ref('fact_scenario_attempts') }}
    union all
    select
        'sessions' as stream,
        count(*) as rows_in_marts
    from {{ ref('fact_sessions') }}
    union all
    select
        'kpi_events' as stream,
        count(*) as rows_in_marts
    from {{ ref('fact_kpi_events') }}
)

select
    streams.stream,
    coalesce(ledger.files_loaded, 0)::bigint as files_loaded,
    coalesce(ledger.rows_read, 0)::bigint as rows_read,
    coalesce(ledger.rows_loaded, 0)::bigint as rows_loaded,
    coalesce(ledger.rows_quarantined, 0)::bigint as rows_quarantined,
    coalesce(expected.rows_expected, 0)::bigint as rows_expected,
    coalesce(in_marts.rows_in_marts, 0)::bigint as rows_in_marts,
    case
        when coalesce(expected.rows_expected, 0) = 0 then 100.0::double precision
        else (100.0 * coalesce(in_marts.rows_in_marts, 0) / expected.rows_expected)::double precision
    end as completeness_pct,
    ledger.last_loaded_at
from streams
left join ledger on streams.stream = ledger.stream
left join expected on streams.stream = expected.stream
left join in_marts on streams.stream = in_marts.stream
