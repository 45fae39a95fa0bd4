{{ config(materialized='table') }}
-- The loads of this build's batch: the loads published inside int_batch_window that some
-- entity-incremental model with a watermark has not taken yet (ops.model_loads, with the
-- publish time it has now). Re-reading through the lookback is then free when nothing is
-- late: a load every mart has taken is not read again, and a late file (published after a
-- build that took later loads) is in the batch, because no mart has taken it. A model without a
-- watermark recomputes whole and is not waited for.
select
    published.load_id,
    published.stream,
    published.loaded_at,
    published.rows_loaded
from {{ ref('int_batch_published_loads') }} as published
inner join {{ ref('int_batch_window') }} as batch_window
    on
        published.loaded_at > batch_window.loaded_after
        and published.loaded_at <= batch_window.loaded_through
where exists (
    select 1 from {{ source('ops', 'model_watermarks') }} as mark
    where
        mark.model = any(array['{{ entity_incremental_models() | join("', '") }}'])
        and not exists (
            select 1 from {{ source('ops', 'model_loads') }} as taken
            where
                taken.model = mark.model
                and taken.load_id = published.load_id
                and taken.loaded_at = published.loaded_at
        )
)
