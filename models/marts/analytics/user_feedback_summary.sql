-- The coaching feedback each user received per metric, from feedback_given KPI events.
with feedback as (
    select
        org_id,
        user_id,
        coalesce(nullif(event_value ->> 'metric', ''), 'unknown') as metric,
        event_value ->> 'message' as message,
        event_value ->> 'severity' as severity,
        occurred_at
    from {{ ref('fact_kpi_events') }}
    where
        {{ in_batch('users') }}
        and event_type = 'feedback_given'
)

select
    user_id::text as user_id,
    metric::text as metric,
    count(*)::bigint as feedback_count,
    count(*) filter (where severity = 'warning')::bigint as warning_count,
    -- most frequent message; ties: the first in code-point order
    (mode() within group (order by message collate "C"))::text as most_common_message,
    min(occurred_at)::timestamptz as first_at,
    max(occurred_at)::timestamptz as last_at,
    org_id::uuid as org_id
from feedback
group by org_id, user_id, metric
