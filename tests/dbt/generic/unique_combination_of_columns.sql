{#- No two rows share the same combination of the given columns (a composite key).
    Usage: data_tests: - unique_combination_of_columns: {arguments: {columns: [a, b]}} -#}
{% test unique_combination_of_columns(model, columns) %}
    select
        {{ columns | join(', ') }},
        count(*) as duplicate_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
