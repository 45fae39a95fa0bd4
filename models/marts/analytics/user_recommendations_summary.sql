-- The recommendations each user received per priority and how many they implemented, from
-- recommendation_made KPI events.
with recommendations as (
    select
        org_id,
        user_id,
        coalesce(nullif(event_value ->> 'priority', ''), 'unknown') as priority,
        coalesce(event_value ->> 'implemented' = 'true', false) as implemented
    from {{ ref('fact_kpi_events') }}
    where
        {{ in_batch('users') }}
        and event_type = 'recommendation_made'
)

select
    user_id::text as user_id,
    priority::text as priority,
    count(*)::bigint as total,
    count(*) filter (where implemented)::bigint as implemented,
    {{ pct_of('count(*) filter (where implemented)', 'count(*)') }}::double precision as implementation_rate,
    org_id::uuid as org_id
from recommendations
group by org_id, user_id, priority
