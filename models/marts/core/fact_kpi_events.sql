{{ config(
    materialized='incremental',
    incremental_strategy='star_upsert',
    unique_key=['org_id', 'id'],
    on_schema_change='fail',
    meta={'distribution': 'org_id', 'key_index': ['id']},
    indexes=[
        {'columns': ['org_id', 'attempt_id']},
        {'columns': ['org_id', 'user_id']},
        {'columns': ['date_key']},
        {'columns': ['_load_id']},
    ],
    pre_hook=[
        "set local work_mem = '{{ var('star_big_work_mem', '1GB') }}'",
        "{{ star_delete_on_full_refresh() }}",
        "{{ star_kpi_events_batch_fact_rows() }}",
    ],
    post_hook=["{{ star_statements([
        star_primary_key(['id']),
        citus_distribute(),
        star_analyze(),
    ]) }}"],
) }}
-- depends_on: {{ ref('stg_load_ledger') }}
-- depends_on: {{ ref('int_batch_published_loads') }}
-- depends_on: {{ ref('stg_kpi_events') }}
-- depends_on: {{ ref('stg_kpi_event_deliveries') }}
-- KPI events (the first loaded row of each event_id), with occurred_at resolved: as
-- delivered, else the attempt's started_at + timestamp_ms (attempt matched on org_id and
-- attempt_id, any status), else null while the attempt is unknown.
-- Incremental (star_upsert on org_id, id): takes the events of the loads since the watermark minus the
-- lookback that the fact does not hold yet (an event it holds from the same or an earlier
-- load is unchanged, so re-reading the lookback window costs one index probe per event),
-- and re-resolves the events already in the fact whose attempt was (re)delivered in the
-- attempt loads of the same window, so a late attempt file fills their occurred_at. Only
-- rows whose occurred_at or occurred_at_source changes are written back.
{#- each list once (a query of the ledger and the watermark per call); read only when
    star_reads_increment() -#}
{%- set kpi_event_loads = star_recent_loads('kpi_events') if star_reads_increment() else 'null' -%}
{%- set attempt_loads = star_recent_loads('attempts') if star_reads_increment() else 'null' %}
with
{% if star_reads_increment() -%}
-- the rows of the loads being re-read, deduplicated among themselves by the staging rule
-- (star_version_rank)
    recent_deliveries as materialized (
        select
            event_id,
            attempt_id,
            session_id,
            org_id,
            user_id,
            scenario_id,
            event_type,
            event_value,
            timestamp_ms,
            occurred_at as delivered_occurred_at,
            _load_id,
            loaded_at,
            {{ star_version_rank('event_id', version_column=none) }} as version_rank
        from {{ ref('stg_kpi_event_deliveries') }}
        where _load_id in ({{ kpi_event_loads }})
    ),

    -- the first load the fact holds each of those events from (fetched from the fact by
    -- the pre-hook star_kpi_events_batch_fact_rows), joined: a correlated `not exists` is
    -- what Citus refuses
    held as (
        select
            held.id,
            held.first_load_id
        from pg_temp.fact_kpi_events_held as held
    ),

{% endif -%}
new_events as (
    {% if star_reads_increment() -%}
        -- dropped when the fact holds the event from the same or an earlier load: what is
        -- left are the winners of stg_kpi_events from these loads that the fact lacks or
        -- holds from a later load (a late file)
        select
            recent_deliveries.event_id,
            recent_deliveries.attempt_id,
            recent_deliveries.session_id,
            recent_deliveries.org_id,
            recent_deliveries.user_id,
            recent_deliveries.scenario_id,
            recent_deliveries.event_type,
            recent_deliveries.event_value,
            recent_deliveries.timestamp_ms,
            recent_deliveries.delivered_occurred_at,
            null::timestamptz as previous_occurred_at,
            null::text as previous_occurred_at_source,
            recent_deliveries._load_id,
            recent_deliveries.loaded_at
        from recent_deliveries
        left join held
            on
                recent_deliveries.event_id = held.id
                and recent_deliveries._load_id >= held.first_load_id
        where recent_deliveries.version_rank = 1 and held.id is null
    {%- else -%}
        select
            event_id,
            attempt_id,
            session_id,
            org_id,
            user_id,
            scenario_id,
            event_type,
            event_value,
            timestamp_ms,
            occurred_at as delivered_occurred_at,
            null::timestamptz as previous_occurred_at,
            null::text as previous_occurred_at_source,
            _load_id,
            loaded_at
        from {{ ref('stg_kpi_events') }}
    {%- endif %}
),

-- events already in the fact whose occurred_at came (or should come) from an attempt that
-- was delivered again or late in the attempt loads being re-read: resolved once more
-- (fetched from the fact by the pre-hook star_kpi_events_batch_fact_rows)
existing_events_of_changed_attempts as (
    {% if star_reads_increment() -%}
        -- every version of those attempts, whatever its org: an attempt re-delivered under
        -- another org leaves the events of its old org without an attempt (unresolved)
        select
            existing.id as event_id,
            existing.attempt_id,
            existing.session_id,
            existing.org_id,
            existing.user_id,
            existing.scenario_id,
            existing.event_type,
            existing.event_value,
            existing.timestamp_ms,
            null::timestamptz as delivered_occurred_at,
            existing.occurred_at as previous_occurred_at,
            existing.occurred_at_source as previous_occurred_at_source,
            existing._load_id,
            existing.loaded_at
        from pg_temp.fact_kpi_events_of_changed_attempts as existing
    {%- else -%}
        -- a first build or a full refresh resolves every event in new_events: none here
        select
            null::uuid as event_id,
            null::uuid as attempt_id,
            null::uuid as session_id,
            null::uuid as org_id,
            null::text as user_id,
            null::uuid as scenario_id,
            null::text as event_type,
            null::jsonb as event_value,
            null::bigint as timestamp_ms,
            null::timestamptz as delivered_occurred_at,
            null::timestamptz as previous_occurred_at,
            null::text as previous_occurred_at_source,
            null::bigint as _load_id,
            null::timestamptz as loaded_at
        where false
    {%- endif %}
),

candidate_events as (
    select
        event_id,
        attempt_id,
        session_id,
        org_id,
        user_id,
        scenario_id,
        event_type,
        event_value,
        timestamp_ms,
        delivered_occurred_at,
        previous_occurred_at,
        previous_occurred_at_source,
        _load_id,
        loaded_at
    from new_events

    union all

    select
        event_id,
        attempt_id,
        session_id,
        org_id,
        user_id,
        scenario_id,
        event_type,
        event_value,
        timestamp_ms,
        delivered_occurred_at,
        previous_occurred_at,
        previous_occurred_at_source,
        _load_id,
        loaded_at
    from existing_events_of_changed_attempts
),

-- one row per event. Incremental: an event both re-delivered by a late file and held from
-- a later load is taken as delivered. (Sorting the batch is cheap; an anti-join against
-- new_events was planned as a nested loop, its row estimate being far too low, and went
-- quadratic when the lookback window re-read events of re-delivered attempts.)
events_to_resolve as (
    select {% if star_reads_increment() %}distinct on (event_id){% endif %}
        event_id,
        attempt_id,
        session_id,
        org_id,
        user_id,
        scenario_id,
        event_type,
        event_value,
        timestamp_ms,
        delivered_occurred_at,
        previous_occurred_at,
        previous_occurred_at_source,
        _load_id,
        loaded_at
    from candidate_events
    {% if star_reads_increment() -%}
        order by event_id, previous_occurred_at_source nulls first
    {%- endif %}
),

-- the attempts that give the events without a delivered occurred_at their time; an
-- incremental build ranks the versions of those attempts only (the filter pushes into
-- stg_attempts' DISTINCT ON), not of every attempt: the attempts of the events delivered
-- without a time in the loads being re-read, and the attempts delivered in the attempt
-- loads being re-read (those of existing_events_of_changed_attempts). The list is read from
-- the raw tables alone, not from events_to_resolve: Citus then plans this CTE whole, as one
-- small intermediate result, where a filter on a distributed result had stg_attempts
-- shipped whole to the coordinator and filtered there.
attempts as materialized (
    select
        attempt_id,
        org_id,
        started_at
    from {{ ref('stg_attempts') }}
    {% if star_reads_increment() -%}
        where attempt_id = any(array(
            select delivered.attempt_id from {{ source('raw', 'kpi_events') }} as delivered
            where
                delivered.occurred_at is null
                and delivered._load_id in ({{ kpi_event_loads }})
            union
            select delivered.attempt_id from {{ source('raw', 'attempts') }} as delivered
            where delivered._load_id in ({{ attempt_loads }})
        ))
    {%- endif %}
),

resolved as (
    select
        events_to_resolve.event_id,
        events_to_resolve.attempt_id,
        events_to_resolve.session_id,
        events_to_resolve.org_id,
        events_to_resolve.user_id,
        events_to_resolve.scenario_id,
        events_to_resolve.event_type,
        events_to_resolve.event_value,
        events_to_resolve.timestamp_ms,
        coalesce(
            events_to_resolve.delivered_occurred_at,
            attempts.started_at + events_to_resolve.timestamp_ms * interval '1 millisecond'
        ) as occurred_at,
        case
            when events_to_resolve.delivered_occurred_at is not null then 'event'
            when attempts.started_at is not null then 'attempt'
            else 'unresolved'
        end as occurred_at_source,
        events_to_resolve.previous_occurred_at,
        events_to_resolve.previous_occurred_at_source,
        events_to_resolve._load_id,
        events_to_resolve.loaded_at
    from events_to_resolve
    left join attempts
        on
            events_to_resolve.org_id = attempts.org_id
            and events_to_resolve.attempt_id = attempts.attempt_id
)

select
    event_id as id,
    attempt_id,
    session_id,
    org_id,
    user_id,
    scenario_id,
    event_type,
    event_value,
    timestamp_ms,
    occurred_at,
    occurred_at_source,
    (occurred_at at time zone 'UTC')::date as date_key,
    loaded_at as created_at,
    _load_id,
    loaded_at
from resolved
{% if star_reads_increment() -%}
    -- an event held already is written back only when its resolution changed
    where
        (occurred_at, occurred_at_source)
        is distinct from (previous_occurred_at, previous_occurred_at_source)
{%- endif %}
