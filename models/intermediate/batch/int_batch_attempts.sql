{{ config(materialized='table') }}
-- The attempts this build's loads touched (int_batch_loads): every version of each attempt
-- record delivered in those loads (an attempt re-delivered under another org touches both
-- (org_id, attempt_id) pairs), and the attempts of the KPI events delivered in them.
with touched_attempts as (
    {{ touched_record_versions('attempts', ['org_id', 'attempt_id']) }}
),

touched_by_events as (
    select
        org_id,
        attempt_id
    from {{ source('raw', 'kpi_events') }}
    where _load_id in ({{ batch_load_ids('kpi_events') }})
)

select
    org_id,
    attempt_id
from touched_attempts
union
select
    org_id,
    attempt_id
from touched_by_events
