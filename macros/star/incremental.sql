{#- The loads an incremental fact (re)reads: every load of the stream whose loaded_at is at
    or after the newest loaded_at already in the fact, minus var('lookback_days') days.
    load_ids are drawn when a load starts but loads commit in their own order, so a file
    whose load started earlier can become visible later than a newer one; the lookback
    re-reads such late files. On a first build or --full-refresh the caller reads everything.
    Returns a subquery of load_ids, for `_load_id in (...)`. -#}
{% macro star_recent_loads(stream, watermark_relation=none) -%}
    {%- set watermark_relation = watermark_relation or this -%}
    select ledger.load_id
    from {{ ref('stg_load_ledger') }} as ledger
    where
        ledger.stream = '{{ stream }}'
        and ledger.loaded_at >= (
            select coalesce(max(watermark.loaded_at), '-infinity'::timestamptz)
            from {{ watermark_relation }} as watermark
        ) - interval '{{ var("lookback_days") | int }} days'
{%- endmacro %}
