{{ config(materialized='table') }}
-- This build's snapshot of the load ledger: every load published before the build started
-- (its row in ops.build_runs), as seen when the build began. Every incremental model picks
-- the loads it reads from here and records them as taken (ops.model_loads) from here, so
-- what it records was visible before it read: a load published mid-build is never recorded
-- unread. It waits for the next build.
select
    this_build.invocation_id,
    ledger.load_id,
    ledger.stream,
    ledger.loaded_at,
    ledger.rows_loaded
from {{ ref('stg_load_ledger') }} as ledger
inner join {{ source('ops', 'build_runs') }} as this_build
    on
        this_build.invocation_id = '{{ invocation_id }}'
        and ledger.loaded_at <= this_build.started_at
