-- Rows the loader quarantined, with their file, position, raw text and reason.
select
    load_id,
    stream,
    file_name,
    row_number,
    location,
    raw_row,
    reason,
    quarantined_at
from {{ source('raw', 'quarantine') }}
