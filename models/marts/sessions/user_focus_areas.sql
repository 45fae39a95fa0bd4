{{ config(
    as_of_relative=true,
) }}
-- The areas to improve each user's sessions named, relative to as_of.
with areas as (
    select
        org_id,
        user_id,
        started_at,
        item as area
    from {{ ref('int_session_list_items') }}
    where
        {{ in_batch('users') }}
        and list_name = 'areas_to_improve'
        and started_at < {{ as_of_end() }}
)

select
    user_id::text as user_id,
    area::text as area,
    count(*) filter (
        where started_at >= (({{ as_of_date() }} - 6)::timestamp at time zone 'UTC')
    )::bigint as occurrences_last_7_days,
    max(started_at)::timestamptz as last_seen_at,
    org_id::uuid as org_id
from areas
group by org_id, user_id, area
