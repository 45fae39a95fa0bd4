{{ config(materialized='table') }}
-- The users this build's loads touched (int_batch_loads): the (org_id, user_id) of every
-- version of each user, session and attempt record delivered in those loads (a session
-- re-delivered under another user touches both users), and of the KPI events delivered
-- in them (the first delivered version of an event wins, so only the batch's rows count).
with touched_users as (
    {{ touched_record_versions('users', ['org_id', 'user_id']) }}
),

touched_sessions as (
    {{ touched_record_versions('sessions', ['org_id', 'user_id']) }}
),

touched_attempts as (
    {{ touched_record_versions('attempts', ['org_id', 'user_id']) }}
),

touched_by_events as (
    select
        org_id,
        user_id
    from {{ source('raw', 'kpi_events') }}
    where _load_id in ({{ batch_load_ids('kpi_events') }})
)

select
    org_id,
    user_id
from touched_users
union
select
    org_id,
    user_id
from touched_sessions
union
select
    org_id,
    user_id
from touched_attempts
union
select
    org_id,
    user_id
from touched_by_events
