-- Each user's language-practice activity per ISO week and per calendar month (UTC).
-- Averages are summed exactly (numeric), so they do not depend on the order rows are read:
-- an incremental build and a full refresh agree to the last bit.
with sessions as (
    select
        org_id,
        user_id,
        session_type,
        started_at at time zone 'UTC' as started_at_utc,
        duration_ms,
        words_spoken,
        score,
        pronunciation_score,
        fluency_score,
        grammar_score
    from {{ ref('fact_sessions') }}
    where {{ in_batch('users') }}
),

periods as (
    select period
    from (values ('week'), ('month')) as period_list (period)
),

bucketed as (
    select
        sessions.org_id,
        sessions.user_id,
        periods.period,
        date_trunc(periods.period, sessions.started_at_utc)::date as period_start,
        sessions.session_type,
        sessions.duration_ms,
        sessions.words_spoken,
        sessions.score,
        sessions.pronunciation_score,
        sessions.fluency_score,
        sessions.grammar_score
    from sessions
    cross join periods
)

select
    user_id::text as user_id,
    period::text as period,
    period_start::date as period_start,
    count(*)::bigint as sessions,
    (sum(duration_ms) / 60000.0)::double precision as total_minutes,
    sum(words_spoken)::bigint as words_spoken,
    {{ exact_avg('score') }} as avg_score,
    {{ exact_avg('pronunciation_score') }} as avg_pronunciation,
    {{ exact_avg('fluency_score') }} as avg_fluency,
    {{ exact_avg('grammar_score') }} as avg_grammar,
    count(*) filter (where session_type = 'conversation')::bigint as conversation_sessions,
    count(*) filter (where session_type = 'pronunciation')::bigint as pronunciation_sessions,
    count(*) filter (where session_type = 'roleplay')::bigint as roleplay_sessions,
    org_id::uuid as org_id
from bucketed
group by org_id, user_id, period, period_start
