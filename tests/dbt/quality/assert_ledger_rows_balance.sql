-- Every ledger file balances: rows read = rows loaded + rows quarantined, the raw table of
-- its stream holds exactly rows_loaded rows stamped with its load_id, and the quarantine
-- holds exactly rows_quarantined rows of it. Returns the files that do not.
with ledger as (
    select
        load_id,
        stream,
        file_name,
        rows_read,
        rows_loaded,
        rows_quarantined
    from {{ ref('stg_load_ledger') }}
),

raw_rows as (
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'orgs') }}
    group by _load_id
    union all
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'users') }}
    group by _load_id
    union all
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'scenarios') }}
    group by _load_id
    union all
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'attempts') }}
    group by _load_id
    union all
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'sessions') }}
    group by _load_id
    union all
    select
        _load_id as load_id,
        count(*) as rows_in_raw
    from {{ source('raw', 'kpi_events') }}
    group by _load_id
),

quarantined as (
    select
        load_id,
        count(*) as rows_in_quarantine
    from {{ source('raw', 'quarantine') }}
    group by load_id
)

select
    ledger.load_id,
    ledger.stream,
    ledger.file_name,
    ledger.rows_read,
    ledger.rows_loaded,
    ledger.rows_quarantined,
    coalesce(raw_rows.rows_in_raw, 0) as rows_in_raw,
    coalesce(quarantined.rows_in_quarantine, 0) as rows_in_quarantine
from ledger
left join raw_rows on ledger.load_id = raw_rows.load_id
left join quarantined on ledger.load_id = quarantined.load_id
where
    ledger.rows_read <> ledger.rows_loaded + ledger.rows_quarantined
    or coalesce(raw_rows.rows_in_raw, 0) <> ledger.rows_loaded
    or coalesce(quarantined.rows_in_quarantine, 0) <> ledger.rows_quarantined
