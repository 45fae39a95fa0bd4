{#- Generic test: no two rows share the same combination of the given columns (a composite
    primary key). Usage: tests: - unique_key_columns: {columns: [user_id, metric]} -#}
{% test unique_key_columns(model, columns) %}
    select
        {{ columns | join(', ') }},
        count(*) as duplicate_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
