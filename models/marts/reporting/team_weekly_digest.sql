{{ config(
    as_of_relative=true,
    indexes=[{'columns': ['org_id', 'week_start']}],
) }}
-- What managers get by email: per org, team and ISO week (UTC, by the attempt's started_at)
-- the team's attempts of every status, how many were completed, the completion rate
-- (completed / all attempts), the average score of completed attempts, and the top 5 and
-- bottom 5 performers by their average score that week. Team is the user's current team;
-- users without a team (or not in the users file) are grouped under '(no team)'.
with users as (
    select
        user_id,
        name,
        team
    from {{ ref('dim_users') }}
),

attempts as (
    select
        attempts.org_id,
        coalesce(users.team, '(no team)') as team,
        attempts.week_start,
        attempts.user_id,
        users.name as user_name,
        attempts.is_completed,
        case when attempts.is_completed then attempts.score end as completed_score
    from {{ ref('int_star_attempts') }} as attempts
    left join users on attempts.user_id = users.user_id
    where
        {{ in_batch('orgs', 'attempts') }}
        and {{ in_batch_records('attempts', 'orgs', 'attempts') }}
),

team_weeks as (
    select
        org_id,
        team,
        week_start,
        count(distinct user_id) as active_users,
        count(*) as attempts,
        count(*) filter (where is_completed) as completed_attempts,
        count(*) filter (where is_completed)::double precision / count(*) as completion_rate,
        {{ exact_avg('completed_score') }} as avg_score
    from attempts
    group by org_id, team, week_start
),

performers as (
    select
        org_id,
        team,
        week_start,
        user_id,
        min(user_name) as user_name,
        count(completed_score) as scored_attempts,
        {{ exact_avg('completed_score') }} as avg_score
    from attempts
    where completed_score is not null
    group by org_id, team, week_start, user_id
),

ranked_performers as (
    select
        org_id,
        team,
        week_start,
        user_id,
        user_name,
        scored_attempts,
        avg_score,
        row_number() over (
            partition by org_id, team, week_start order by avg_score desc, user_id asc
        ) as top_position,
        row_number() over (
            partition by org_id, team, week_start order by avg_score asc, user_id asc
        ) as bottom_position
    from performers
),

performer_lists as (
    select
        org_id,
        team,
        week_start,
        jsonb_agg(
            jsonb_build_object(
                'position', top_position, 'user_id', user_id, 'name', user_name,
                'avg_score', avg_score, 'attempts', scored_attempts
            ) order by top_position
        ) filter (where top_position <= 5) as top_performers,
        jsonb_agg(
            jsonb_build_object(
                'position', bottom_position, 'user_id', user_id, 'name', user_name,
                'avg_score', avg_score, 'attempts', scored_attempts
            ) order by bottom_position
        ) filter (where bottom_position <= 5) as bottom_performers
    from ranked_performers
    group by org_id, team, week_start
)

select
    team_weeks.org_id,
    team_weeks.team,
    team_weeks.week_start,
    extract(isoyear from team_weeks.week_start)::integer as iso_year,
    extract(week from team_weeks.week_start)::integer as iso_week,
    team_weeks.active_users,
    team_weeks.attempts,
    team_weeks.completed_attempts,
    team_weeks.completion_rate,
    team_weeks.avg_score,
    coalesce(performer_lists.top_performers, '[]'::jsonb) as top_performers,
    coalesce(performer_lists.bottom_performers, '[]'::jsonb) as bottom_performers,
    team_weeks.week_start = date_trunc('week', {{ as_of_date() }}::timestamp)::date as is_current_week
from team_weeks
left join performer_lists
    on
        team_weeks.org_id = performer_lists.org_id
        and team_weeks.team = performer_lists.team
        and team_weeks.week_start = performer_lists.week_start
