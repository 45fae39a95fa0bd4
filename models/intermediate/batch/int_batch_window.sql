{{ config(materialized='table') }}
-- The window of loads this build's batch covers: published after the oldest watermark of
-- the entity-incremental models (minus var lookback_days, which re-reads late files) and
-- before this build started (its row in ops.build_runs). No watermark yet: an empty window
-- (every model then recomputes whole). loaded_share: the window's share of every row ever
-- loaded; above var batch_max_share (0.2) the marts recompute whole instead (a backfill or
-- a first load of most data touches most entities, and one pass over everything is then
-- cheaper than probing each entity).
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
),

batch_bounds as (
    select
        this_build.invocation_id,
        marks.oldest_loaded_through - interval '{{ var("lookback_days") | int }} days' as loaded_after,
        this_build.started_at as loaded_through
    from this_build
    cross join marks
),

loaded_rows as (
    select
        sum(
            case
                when
                    ledger.loaded_at > batch_bounds.loaded_after
                    and ledger.loaded_at <= batch_bounds.loaded_through
                    then ledger.rows_loaded
            end
        ) as batch_rows,
        sum(ledger.rows_loaded) as all_rows
    from {{ ref('stg_load_ledger') }} as ledger
    cross join batch_bounds
)

select
    batch_bounds.invocation_id,
    batch_bounds.loaded_after,
    batch_bounds.loaded_through,
    coalesce(loaded_rows.batch_rows::double precision / nullif(loaded_rows.all_rows, 0), 0) as loaded_share
from batch_bounds
cross join loaded_rows
