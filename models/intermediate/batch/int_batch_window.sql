{{ config(materialized='table') }}
-- The window of loads this build's batch covers: published after the oldest watermark of
-- the entity-incremental models (minus var lookback_days, which re-reads late files) and
-- before this build started (its row in ops.build_runs). No watermark yet: an empty window
-- (every model then recomputes whole).
with marks as (
    select min(loaded_through) as oldest_loaded_through
    from {{ source('ops', 'model_watermarks') }}
    where model = any(array['{{ entity_incremental_models() | join("', '") }}'])
),

this_build as (
    select
        invocation_id,
        started_at
    from {{ source('ops', 'build_runs') }}
    where invocation_id = '{{ invocation_id }}'
)

select
    this_build.invocation_id,
    marks.oldest_loaded_through - interval '{{ var("lookback_days") | int }} days' as loaded_after,
    this_build.started_at as loaded_through
from this_build
cross join marks
