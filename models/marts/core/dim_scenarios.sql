{{ config(
    meta={'distribution': 'reference'},
    post_hook=["{{ star_statements([
        citus_distribute(),
    ]) }}"],
) }}
-- Scenarios: the current version of each scenario (the open row of the SCD2 snapshot
-- snap_scenarios).
select
    scenario_id,
    org_id,
    title,
    difficulty,
    category,
    created_at,
    updated_at,
    dbt_valid_from as valid_from
from {{ ref('snap_scenarios') }}
where dbt_valid_to is null
