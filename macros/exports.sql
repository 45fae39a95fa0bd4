{#- The version of the export views' contract (column names and types): project var
    `export_version`, default '1.0.0'. Bump the major version when a column is renamed,
    dropped or changes type; the minor version when columns are added. -#}
{% macro export_version() -%}
    '{{ var("export_version", "1.0.0") }}'::text
{%- endmacro %}

{#- When the dbt invocation that builds the export views started, and its id (literals). -#}
{% macro export_built_at() -%}
    {%- if run_started_at is defined -%}
        '{{ run_started_at.isoformat() }}'::timestamptz
    {%- else -%}
        null::timestamptz
    {%- endif -%}
{%- endmacro %}

{% macro export_invocation_id() -%}
    {%- if invocation_id is defined -%}
        '{{ invocation_id }}'::text
    {%- else -%}
        null::text
    {%- endif -%}
{%- endmacro %}

{#- A JSON array of strings as one text, elements joined with '; ' in list order; null
    when the list is missing, not an array, or empty. -#}
{% macro export_join_list(json_list) -%}
    (
        select string_agg(list_item.item, '; ' order by list_item.position)
        from jsonb_array_elements_text(
            case when jsonb_typeof({{ json_list }}) = 'array' then {{ json_list }} else '[]'::jsonb end
        ) with ordinality as list_item (item, position)
    )
{%- endmacro %}

{#- The columns of exports.user_summary (one row per user, int_export_user_summary), also
    the `summary` object of exports.user_profile_json. -#}
{% macro export_user_summary_columns() -%}
    {{- return([
        'user_id', 'org_id', 'user_name', 'role', 'team', 'timezone',
        'total_attempts', 'avg_attempt_score',
    ] + user_practice_habits_columns()[1:] + ['overall_consistency_score'] + [
        'pace_mean', 'pace_p50', 'pace_slope_per_week', 'pace_trend_direction',
        'pitch_mean', 'pitch_p50', 'pitch_slope_per_week', 'pitch_trend_direction',
        'volume_mean', 'volume_p50', 'volume_slope_per_week', 'volume_trend_direction',
        'pauses_mean', 'pauses_p50', 'pauses_slope_per_week', 'pauses_trend_direction',
        'clarity_mean', 'clarity_p50', 'clarity_slope_per_week', 'clarity_trend_direction',
        'confidence_mean', 'confidence_p50', 'confidence_slope_per_week', 'confidence_trend_direction',
        'first_data_date', 'last_data_date', 'data_points', 'completeness_pct',
    ]) -}}
{%- endmacro %}

{#- The columns of user_practice_habits the exports publish (user_id first): the habits in
    exports.user_summary and the `habits` object of exports.user_profile_json. -#}
{% macro user_practice_habits_columns() -%}
    {{- return([
        'user_id', 'total_sessions', 'total_practice_minutes', 'first_session_at',
        'last_session_at', 'active_days', 'sessions_per_week', 'avg_days_between_sessions',
        'longest_streak_days', 'current_streak_days', 'preferred_day_of_week',
        'preferred_hour_of_day',
    ]) -}}
{%- endmacro %}

{#- exports.user_profile_json: the columns of the document's user (dim_users), of one
    session (a row of exports.sessions, shared through int_export_sessions) and of one
    coaching event (a feedback_given or recommendation_made row of exports.kpi_events). -#}
{% macro user_profile_user_columns() -%}
    {{- return([
        'user_id', 'org_id', 'name', 'email', 'role', 'team', 'manager_id', 'timezone',
        'created_at',
    ]) -}}
{%- endmacro %}

{% macro user_profile_session_columns() -%}
    {{- return([
        'session_id', 'user_id', 'attempt_id', 'session_type', 'started_at', 'date_key',
        'duration_ms', 'words_spoken', 'score', 'pronunciation_score', 'fluency_score',
        'grammar_score', 'pace_wpm', 'pitch_hz', 'volume_db', 'pauses_per_min', 'clarity',
        'confidence', 'topics', 'vocabulary_learned', 'areas_to_improve',
    ]) -}}
{%- endmacro %}

{% macro user_profile_coaching_event_columns() -%}
    {{- return([
        'event_id', 'user_id', 'attempt_id', 'session_id', 'event_type', 'event_value',
        'timestamp_ms', 'occurred_at',
    ]) -}}
{%- endmacro %}

{#- A user's sessions as one JSON array (null when none), in start order. -#}
{% macro user_profile_sessions_document(sessions) -%}
    jsonb_agg(
        to_jsonb({{ sessions }}) - 'user_id' order by {{ sessions }}.started_at, {{ sessions }}.session_id
    )
{%- endmacro %}

{#- A user's coaching events of one type as one JSON array ('[]' when none), in time order. -#}
{% macro user_profile_coaching_history(events, event_type) -%}
    coalesce(
        jsonb_agg(
            to_jsonb({{ events }}) - 'user_id' - 'event_type'
            order by {{ events }}.occurred_at, {{ events }}.event_id
        ) filter (where {{ events }}.event_type = '{{ event_type }}'),
        '[]'::jsonb
    )
{%- endmacro %}

{#- Pre-hook of exports.user_profile_json on a distributed (Citus) warehouse: the functions
    through which the view reads its Citus tables. Why: Citus plans every subquery on a
    Citus table of a query that also reads coordinator tables (the analytics marts) as an
    intermediate result, computed before the first row even under dbt's contract check
    (`where false`); set-based, every user's sessions and coaching events went that way,
    beyond Citus's 1 GB limit at 10 M events. Behind plpgsql functions (never inlined) the
    view is a plain PostgreSQL query on the coordinator: the people are read once, with the
    organisations each user has sessions and events in (one distinct pass per fact, pushed
    down to the shards); each user's sessions and coaching history are read only for the
    rows read, from the shards of those organisations alone (custom plans, so Citus prunes
    by the values). Security invoker like the views: the reader's row-level security holds. -#}
{% macro user_profile_per_user_functions(users_relation, user_summary_view, sessions_view, kpi_events_view, sessions_fact, kpi_events_fact) -%}
    {%- if warehouse_distributed() -%}
    create or replace function {{ this.schema }}.user_profile_people()
    returns table (
        user_id text, org_id uuid, user_document jsonb, summary_document jsonb,
        session_orgs uuid[], event_orgs uuid[]
    )
    language plpgsql stable
    as $fn$
    #variable_conflict use_column
    begin
        return query
        select
            users.user_id,
            users.org_id,
            to_jsonb(users),
            to_jsonb(summary),
            session_orgs.orgs,
            event_orgs.orgs
        from (
            select {{ user_profile_user_columns() | join(', ') }}
            from {{ users_relation }}
        ) as users
        left join {{ user_summary_view }} as summary on users.user_id = summary.user_id
        left join (
            select pairs.user_id, array_agg(pairs.org_id) as orgs
            from (select distinct org_id, user_id from {{ sessions_fact }}) as pairs
            group by pairs.user_id
        ) as session_orgs on users.user_id = session_orgs.user_id
        left join (
            select pairs.user_id, array_agg(pairs.org_id) as orgs
            from (select distinct org_id, user_id from {{ kpi_events_fact }}) as pairs
            group by pairs.user_id
        ) as event_orgs on users.user_id = event_orgs.user_id;
    end
    $fn$;
    comment on function {{ this.schema }}.user_profile_people() is
        'exports.user_profile_json on a distributed warehouse: every user (dim_users) with the document''s user object and summary (the user''s exports.user_summary row), and the organisations holding the user''s sessions and KPI events.';
    create or replace function {{ this.schema }}.user_profile_sessions(profile_user_id text, profile_orgs uuid[])
    returns jsonb
    language plpgsql stable
    set plan_cache_mode = force_custom_plan
    as $fn$
    begin
        return (
            select {{ user_profile_sessions_document('sessions') }}
            from (
                select {{ user_profile_session_columns() | join(', ') }}
                from {{ sessions_view }}
                where org_id = any(profile_orgs) and user_id = profile_user_id
            ) as sessions
        );
    end
    $fn$;
    comment on function {{ this.schema }}.user_profile_sessions(text, uuid[]) is
        'exports.user_profile_json on a distributed warehouse: one user''s sessions (rows of exports.sessions, in the given organisations) as its document''s sessions array; null when none.';
    create or replace function {{ this.schema }}.user_profile_coaching_history(profile_user_id text, profile_orgs uuid[])
    returns table (feedback jsonb, recommendations jsonb)
    language plpgsql stable
    set plan_cache_mode = force_custom_plan
    as $fn$
    begin
        return query
        select
            {{ user_profile_coaching_history('coaching_events', 'feedback_given') }},
            {{ user_profile_coaching_history('coaching_events', 'recommendation_made') }}
        from (
            select {{ user_profile_coaching_event_columns() | join(', ') }}
            from {{ kpi_events_view }}
            where
                org_id = any(profile_orgs)
                and user_id = profile_user_id
                and event_type in ('feedback_given', 'recommendation_made')
        ) as coaching_events;
    end
    $fn$;
    comment on function {{ this.schema }}.user_profile_coaching_history(text, uuid[]) is
        'exports.user_profile_json on a distributed warehouse: one user''s feedback_given and recommendation_made events (rows of exports.kpi_events, in the given organisations) as its document''s two history arrays; [] when none.';
    {%- endif -%}
{%- endmacro %}
