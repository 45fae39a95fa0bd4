-- Top performers this week: the 10 best-ranked users of each org in the ISO week that
-- contains as_of (--vars '{as_of: ...}'), with their rank change since last week.
select
    boards.org_id,
    orgs.name as org_name,
    boards.rank,
    boards.user_id,
    users.name as user_name,
    boards.team,
    boards.attempts,
    round(boards.avg_score::numeric, 1) as avg_score,
    boards.previous_rank,
    boards.rank_change
from {{ ref('leaderboards') }} as boards
left join {{ ref('dim_users') }} as users on boards.user_id = users.user_id
left join {{ ref('dim_orgs') }} as orgs on boards.org_id = orgs.org_id
where
    boards.period_type = 'week'
    and boards.is_current_period
    and boards.rank <= 10
order by boards.org_id, boards.rank, boards.user_id
