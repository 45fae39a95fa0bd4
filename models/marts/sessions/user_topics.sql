-- The topics each user has practised: in how many sessions, and when last.
with topics as (
    select
        org_id,
        user_id,
        session_id,
        started_at,
        item as topic
    from {{ ref('int_session_list_items') }}
    where
        {{ in_batch('users') }}
        and list_name = 'topics'
)

select
    user_id::text as user_id,
    topic::text as topic,
    count(distinct session_id)::bigint as sessions,
    max(started_at)::timestamptz as last_seen_at,
    org_id::uuid as org_id
from topics
group by org_id, user_id, topic
