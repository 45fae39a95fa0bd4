-- The marts hold exactly the expected records of every stream (data_completeness):
-- completeness_pct is 100. Fewer means records were lost on the way, more means records
-- the marts should no longer hold (e.g. an attempt that stopped being completed).
select
    stream,
    rows_expected,
    rows_in_marts,
    completeness_pct
from {{ ref('data_completeness') }}
where rows_in_marts <> rows_expected
