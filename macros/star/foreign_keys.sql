{#- on-run-end: the relationships the YAML declares (each `relationships` test between two
    models) as foreign keys in the catalogue, so BI tools (Metabase, Superset) offer the
    joins. PostgreSQL 18's NOT ENFORCED keys are catalogue entries only: unknown or late
    references (a user not in the users file yet) never fail a build; the warn-level
    relationships tests report them. Added once per pair of tables that both exist and
    lack it (a --full-refresh of either table drops it with the old table; the next
    run-end adds it again). On servers older than 18 (no NOT ENFORCED keys) each
    relationship is written into the referencing column's comment instead ("References
    marts.dim_users (user_id)."), besides the dbt docs and tests. -#}
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
    {#- Citus (a distributed warehouse): a key between two tables distributed by the same
        column names that column on both sides (their primary keys hold it); a key to a
        reference table stays as declared; a key between an ordinary coordinator table
        and a Citus table is left out (Citus refuses it). -#}
    {%- set citus = {} -%}
    {%- if keys and warehouse_distributed() -%}
        {%- set found = run_query(
            "select logicalrelid::regclass::text, case when partmethod = 'n' then 'reference'"
            ~ " else column_to_column_name(logicalrelid, partkey) end from pg_dist_partition"
        ) -%}
        {%- for row in found.rows -%}
            {%- do citus.update({row[0]: row[1]}) -%}
        {%- endfor -%}
        {%- set declared = [] -%}
        {%- for key in keys -%}
            {%- set from_kind = citus.get(key.from) -%}
            {%- set to_kind = citus.get(key.to) -%}
            {%- if from_kind and to_kind and to_kind == 'reference' -%}
                {%- do declared.append(key) -%}
            {%- elif from_kind and to_kind and from_kind == to_kind -%}
                {%- do declared.append({
                    'from': key.from, 'to': key.to, 'name': key.name,
                    'column': from_kind ~ ', ' ~ key.column,
                    'to_column': to_kind ~ ', ' ~ key.to_column,
                }) -%}
            {%- elif not from_kind and not to_kind -%}
                {%- do declared.append(key) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set keys = declared -%}
    {%- endif -%}
    {#- NOT ENFORCED keys exist from PostgreSQL 18; before it the statement is not even
        parsed (PL/pgSQL checks every statement's syntax), so the choice is made here -#}
    {%- set enforced_keys_exist = keys and run_query(
        "select current_setting('server_version_num')::int >= 180000"
    ).columns[0].values()[0] -%}
    {%- if keys and not enforced_keys_exist %}
    do $foreign_keys$
    declare
        described text;
    begin
        {%- for key in keys | unique(attribute='name') %}
        {%- set column = key.column.split(', ') | last %}
        if to_regclass('{{ key.from }}') is not null then
            described := col_description(
                to_regclass('{{ key.from }}'),
                (select attnum from pg_attribute
                    where attrelid = to_regclass('{{ key.from }}') and attname = '{{ column }}')
            );
            if coalesce(described, '') not like '%References {{ key.to }} ({{ key.to_column }}).%' then
                execute format(
                    'comment on column %s.%I is %L', '{{ key.from }}', '{{ column }}',
                    concat_ws(' ', described, 'References {{ key.to }} ({{ key.to_column }}).')
                );
            end if;
        end if;
        {%- endfor %}
    end
    $foreign_keys$
    {%- elif keys %}
    do $foreign_keys$
    begin
        {%- if citus %}
        -- Citus: no foreign key to a reference table after a parallel query
        perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
        {%- endif %}
        {%- for key in keys | unique(attribute='name') %}
        {%- set to_columns = key.to_column.split(', ') %}
        if to_regclass('{{ key.from }}') is not null and to_regclass('{{ key.to }}') is not null
            -- a foreign key needs a primary or unique key on exactly the referenced columns
            and exists (
                select from pg_constraint
                where
                    conrelid = to_regclass('{{ key.to }}') and contype in ('p', 'u')
                    and cardinality(conkey) = {{ to_columns | length }}
                    and conkey <@ array(
                        select attnum from pg_attribute
                        where attrelid = to_regclass('{{ key.to }}')
                            and attname in ('{{ to_columns | join("', '") }}')
                    )
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
