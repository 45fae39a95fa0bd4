{{ config(
    materialized='incremental',
    incremental_strategy='replace_batch',
    on_schema_change='fail',
    indexes=[{'columns': ['org_id', 'user_id']}],
    post_hook=["{{ star_primary_key(['stream', 'org_id', 'user_id']) }}"],
) }}
{%- set batch_filter = in_batch('users') -%}
-- The records the marts should hold per user-level stream, org and user: data_completeness
-- sums it per stream and user_data_metadata per user. Users, completed attempts and
-- sessions are the current versions in staging (one per key); KPI events are the sum of
-- int_quality_expected_events_by_load, which counts each load once, so no build
-- re-deduplicates the whole event history. Entity-incremental (replace_changed): a build
-- recounts the users its new loads touched, ranking only the versions of their sessions
-- and attempts (any version of a record delivered under a touched user brings the record
-- in, so a record that moved to another user is recounted for both). Orgs and scenarios
-- have no user: data_completeness counts them itself.
with current_users as (
    select
        org_id,
        user_id
    from {{ ref('stg_users') }}
    where {{ batch_filter }}
),

current_sessions as (
    select
        org_id,
        user_id
    from {{ ref('stg_sessions') }}
    where
        {{ batch_filter }}
        and {{ in_batch_records('sessions', 'users') }}
),

completed_attempts as (
    select
        org_id,
        user_id
    from {{ ref('stg_attempts') }}
    where
        status = 'completed'
        and {{ batch_filter }}
        and {{ in_batch_records('attempts', 'users') }}
),

expected_events as (
    select
        org_id,
        user_id,
        records_expected
    from {{ ref('int_quality_expected_events_by_load') }}
    where {{ batch_filter }}
)

select
    'users' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from current_users
group by org_id, user_id
union all
select
    'attempts' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from completed_attempts
group by org_id, user_id
union all
select
    'sessions' as stream,
    org_id,
    user_id,
    count(*) as records_expected
from current_sessions
group by org_id, user_id
union all
select
    'kpi_events' as stream,
    org_id,
    user_id,
    sum(records_expected) as records_expected
from expected_events
group by org_id, user_id
