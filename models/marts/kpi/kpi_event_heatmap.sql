-- Per org, event type and minute into the attempt (minute_offset = floor(timestamp_ms /
-- 60000)): how many KPI events happened then, over every event of fact_kpi_events (summed
-- from the per-load counts). category comes from the seed event_types ('unknown' for new
-- types).
with minute_counts as (
    select
        org_id,
        event_type,
        minute_offset,
        sum(events)::bigint as events
    from {{ ref('int_kpi_minute_counts_by_load') }}
    where {{ in_batch('orgs') }}
    group by org_id, event_type, minute_offset
),

event_types as (
    select
        event_type,
        category
    from {{ ref('event_types') }}
)

select
    minute_counts.org_id,
    minute_counts.event_type,
    {{ event_category('event_types.category') }} as category,
    minute_counts.minute_offset,
    minute_counts.events
from minute_counts
left join event_types on minute_counts.event_type = event_types.event_type
