-- The JSON lists of each session, one row per element: list_name 'topics' or
-- 'areas_to_improve', the element text and its position in the list (1-based). A list that
-- is null or not a JSON array gives no rows.
-- not materialized: both branches read it, and a filter on the view (the touched users of
-- an incremental mart) must reach fact_sessions' (org_id, user_id, started_at) index
-- instead of a full copy of the sessions being spooled first.
with sessions as not materialized (
    select
        session_id,
        org_id,
        user_id,
        started_at,
        case when jsonb_typeof(topics) = 'array' then topics else '[]'::jsonb end as topics,
        case
            when jsonb_typeof(areas_to_improve) = 'array' then areas_to_improve else '[]'::jsonb
        end as areas_to_improve
    from {{ ref('fact_sessions') }}
)

select
    sessions.session_id,
    sessions.org_id,
    sessions.user_id,
    sessions.started_at,
    'topics' as list_name,
    topic.item,
    topic.position
from sessions
cross join
    lateral jsonb_array_elements_text(sessions.topics) with ordinality as topic (item, position)

union all

select
    sessions.session_id,
    sessions.org_id,
    sessions.user_id,
    sessions.started_at,
    'areas_to_improve' as list_name,
    area.item,
    area.position
from sessions
cross join
    lateral jsonb_array_elements_text(sessions.areas_to_improve) with ordinality as area (item, position)
