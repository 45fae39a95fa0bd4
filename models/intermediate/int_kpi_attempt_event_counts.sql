{{ config(materialized='table') }}
-- KPI events counted per org, attempt and event type (every event of fact_kpi_events,
-- whether or not its attempt is known), with the open questions among question_asked
-- events (event_value kind = 'open'). The per-attempt and weekly KPI marts read this.
select
    org_id,
    attempt_id,
    event_type,
    count(*) as events,
    count(*) filter (where event_value ->> 'kind' = 'open') as open_questions
from {{ ref('fact_kpi_events') }}
group by org_id, attempt_id, event_type
