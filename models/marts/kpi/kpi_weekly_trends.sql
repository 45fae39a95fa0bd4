{{ config(
    indexes=[{'columns': ['org_id', 'week']}],
) }}
-- Per org, ISO week of the attempt's start (UTC) and event type: the events of that type
-- and the attempts with at least one. Events count through their attempt (matched on
-- org_id and attempt_id, any status); events whose attempt is unknown have no week and are
-- left out. category comes from the seed event_types ('unknown' for new types).
with attempts as (
    select
        org_id,
        attempt_id,
        week_start
    from {{ ref('int_star_attempts') }}
    where
        {{ in_batch('orgs') }}
        and {{ in_batch_records('attempts', 'orgs') }}
),

event_counts as (
    select
        org_id,
        attempt_id,
        event_type,
        events
    from {{ ref('int_kpi_attempt_event_counts') }}
    where {{ in_batch('orgs') }}
),

event_types as (
    select
        event_type,
        category
    from {{ ref('event_types') }}
),

weekly as (
    select
        attempts.org_id,
        attempts.week_start as week,
        event_counts.event_type,
        sum(event_counts.events)::bigint as event_count,
        count(*) as attempts_with_event
    from event_counts
    inner join attempts
        on
            event_counts.org_id = attempts.org_id
            and event_counts.attempt_id = attempts.attempt_id
    group by attempts.org_id, attempts.week_start, event_counts.event_type
)

select
    weekly.org_id,
    weekly.week,
    weekly.event_type,
    {{ event_category('event_types.category') }} as category,
    weekly.event_count,
    weekly.attempts_with_event
from weekly
left join event_types on weekly.event_type = event_types.event_type
