-- Each user's five best and five worst sessions by session score.
with scored_sessions as (
    select
        org_id,
        user_id,
        session_id,
        started_at,
        score
    from {{ ref('fact_sessions') }}
    where
        {{ in_batch('users') }}
        and score is not null
),

ranked as (
    select
        org_id,
        user_id,
        session_id,
        started_at,
        score,
        row_number() over (
            partition by org_id, user_id order by score desc, started_at asc, session_id asc
        ) as best_rank,
        row_number() over (
            partition by org_id, user_id order by score asc, started_at asc, session_id asc
        ) as worst_rank
    from scored_sessions
),

picked as (
    select
        org_id,
        user_id,
        'best' as kind,
        best_rank as rank,
        session_id,
        started_at,
        score
    from ranked
    where best_rank <= 5
    union all
    select
        org_id,
        user_id,
        'worst' as kind,
        worst_rank as rank,
        session_id,
        started_at,
        score
    from ranked
    where worst_rank <= 5
)

select
    user_id::text as user_id,
    kind::text as kind,
    rank::integer as rank,
    session_id::uuid as session_id,
    started_at::timestamptz as started_at,
    score::double precision as score,
    org_id::uuid as org_id
from picked
