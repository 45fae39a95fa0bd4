-- The JSON lists of each session, one row per element: list_name 'topics' or
-- 'areas_to_improve', the element text and its position in the list (1-based).
with sessions as (
    select
        session_id,
        org_id,
        user_id,
        started_at,
        topics,
        areas_to_improve
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
cross join lateral jsonb_array_elements_text(
    case when jsonb_typeof(sessions.topics) = 'array' then sessions.topics else '[]'::jsonb end
) with ordinality as topic (item, position)

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
cross join lateral jsonb_array_elements_text(
    case when jsonb_typeof(sessions.areas_to_improve) = 'array' then sessions.areas_to_improve else '[]'::jsonb end
) with ordinality as area (item, position)
