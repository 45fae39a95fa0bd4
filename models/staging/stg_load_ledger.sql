-- One row per loaded file (the load ledger), typed and renamed for the marts.
select
    load_id,
    stream,
    file_name,
    file_path,
    file_format,
    file_bytes,
    content_sha256,
    rows_read,
    rows_loaded,
    rows_quarantined,
    loaded_at
from {{ source('raw', 'load_ledger') }}
