{#- on-run-end: the relationships the YAML declares (each `relationships` test between two
    models) as foreign keys in the catalogue, so BI tools (Metabase, Superset) offer the
    joins. PostgreSQL 18's NOT ENFORCED keys are catalogue entries only: unknown or late
    references (a user not in the users file yet) never fail a build; the warn-level
    relationships tests report them. Added once per pair of tables that both exist and
    lack it (a --full-refresh of either table drops it with the old table; the next
    run-end adds it again). On servers older than 18 the relationships stay declared in
    the dbt docs and the tests only. -#}
{% macro declare_foreign_keys() %}
    {%- set keys = [] -%}
    {%- if execute -%}
        {%- for test in graph.nodes.values()
            if test.resource_type == 'test' and test.test_metadata
            and test.test_metadata.name == 'relationships' and test.attached_node -%}
            {%- set from_node = graph.nodes[test.attached_node] -%}
            {%- set to_ids = test.depends_on.nodes | reject('equalto', test.attached_node) | list -%}
            {%- if from_node.resource_type == 'model' and to_ids | length == 1 and to_ids[0] in graph.nodes -%}
                {%- set to_node = graph.nodes[to_ids[0]] -%}
                {%- do keys.append({
                    'from': from_node.schema ~ '.' ~ from_node.alias,
                    'column': test.test_metadata.kwargs.column_name,
                    'to': to_node.schema ~ '.' ~ to_node.alias,
                    'to_column': test.test_metadata.kwargs.field,
                    'name': (from_node.alias ~ '_' ~ test.test_metadata.kwargs.column_name ~ '_fkey')[:63],
                }) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if keys %}
    do $foreign_keys$
    begin
        if current_setting('server_version_num')::int < 180000 then
            return;
        end if;
        {%- for key in keys | unique(attribute='name') %}
        if to_regclass('{{ key.from }}') is not null and to_regclass('{{ key.to }}') is not null
            -- a foreign key needs a primary or unique key on the referenced column
            and exists (
                select from pg_constraint
                where
                    conrelid = to_regclass('{{ key.to }}') and contype in ('p', 'u')
                    and conkey = array[(
                        select attnum from pg_attribute
                        where attrelid = to_regclass('{{ key.to }}') and attname = '{{ key.to_column }}'
                    )]
            )
            and not exists (
                select from pg_constraint
                where conrelid = to_regclass('{{ key.from }}') and conname = '{{ key.name }}'
            ) then
            alter table {{ key.from }} add constraint {{ key.name }}
                foreign key ({{ key.column }}) references {{ key.to }} ({{ key.to_column }}) not enforced;
        end if;
        {%- endfor %}
    end
    $foreign_keys$
    {%- endif %}
{% endmacro %}
