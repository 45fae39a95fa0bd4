{{ config(materialized='table') }}
-- The loads of this build's batch: every load published inside int_batch_window.
select
    ledger.load_id,
    ledger.stream,
    ledger.loaded_at
from {{ ref('stg_load_ledger') }} as ledger
inner join {{ ref('int_batch_window') }} as batch_window
    on
        ledger.loaded_at > batch_window.loaded_after
        and ledger.loaded_at <= batch_window.loaded_through
