{#- Post-hooks shared by the star schema's tables. -#}

{#- Add a primary key after the table is filled (a sorted index build is far faster than
    maintaining the index row by row during a 10-million-row insert). Runs only when the
    table has no primary key yet, i.e. after a first build or a --full-refresh. -#}
{% macro star_primary_key(columns) -%}
    do $$
    begin
        if not exists (
            select from pg_constraint
            where conrelid = '{{ this }}'::regclass and contype = 'p'
        ) then
            -- unnamed: during a --full-refresh the replaced table (dropped after the
            -- commit) still holds the name <table>_pkey
            alter table {{ this }} add primary key ({{ columns | join(', ') }});
        end if;
    end
    $$
{%- endmacro %}

{#- Planner statistics for a table built from scratch (first build, --full-refresh: it
    has none yet), so the models and tests that read it next in the same build plan with
    real row counts. An incremental build changes a few percent of the rows: it leaves the
    statistics to autovacuum (which analyzes once a table changed by 10%) instead of
    sampling millions of rows again, and taking the lock autovacuum holds. -#}
{% macro star_analyze() -%}
    do $analyze$
    begin
        if not exists (
            select from pg_stats
            where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
        ) then
            analyze {{ this.include(database=false) }};
        end if;
    end
    $analyze$
{%- endmacro %}

{#- Citus scale-out (var `distribute`, off by default): when the database has the citus
    extension, distribute a fact by org_id (its primary key becomes (org_id, key), since
    Citus requires unique keys to include the distribution column) or make a small table a
    reference table (a copy on every node). Renders nothing when the var is off; a no-op on
    plain PostgreSQL and on tables that are already distributed (incremental runs). -#}
{% macro citus_distribute(kind='distributed', key=none, column='org_id') -%}
    {%- if var('distribute', false) -%}
    do $$
    declare
        already bigint;
        pkey text;
    begin
        if not exists (select from pg_extension where extname = 'citus') then
            return;
        end if;
        execute 'select count(*) from pg_dist_partition where logicalrelid = $1::regclass'
            into already using '{{ this }}';
        if already > 0 then
            return;
        end if;
        {%- if kind == 'reference' %}
        perform create_reference_table('{{ this }}');
        {%- else %}
        select conname into pkey from pg_constraint
        where conrelid = '{{ this }}'::regclass and contype = 'p';
        if pkey is not null then
            execute format('alter table {{ this }} drop constraint %I', pkey);
        end if;
        {%- if key %}
        execute 'alter table {{ this }} add primary key ({{ column }}, {{ key }})';
        {%- endif %}
        perform create_distributed_table('{{ this }}', '{{ column }}');
        {%- endif %}
    end
    $$
    {%- endif -%}
{%- endmacro %}

{#- Declare a relationship for BI tools (Metabase reads foreign keys to offer joins) without
    enforcing it: PostgreSQL 18's NOT ENFORCED foreign keys are catalogue entries only, so
    unknown or late references (a user not in the users file yet) never fail a load. The
    relationship is tested by a warn-level dbt relationships test instead. Re-added after
    the referenced table is rebuilt (a rebuild drops it with the old table). Skipped on
    servers older than PostgreSQL 18. -#}
{% macro star_foreign_key(column, to_relation, to_column, from_relation=none) -%}
    {%- set from_relation = from_relation or this -%}
    {%- set constraint_name = (from_relation.identifier ~ '_' ~ column ~ '_fkey')[:63] -%}
    do $$
    begin
        if current_setting('server_version_num')::int >= 180000
            and to_regclass('{{ from_relation }}') is not null
            and to_regclass('{{ to_relation }}') is not null
            and not exists (
                select from pg_constraint
                where conrelid = '{{ from_relation }}'::regclass and conname = '{{ constraint_name }}'
            ) then
            execute 'alter table {{ from_relation }} add constraint {{ constraint_name }} '
                'foreign key ({{ column }}) references {{ to_relation }} ({{ to_column }}) not enforced';
        end if;
    end
    $$
{%- endmacro %}

{#- The `indexes` of the model's config that its table lacks, created on an incremental run
    (dbt creates them only when it builds a table from scratch), so an index added to the
    config reaches an existing warehouse without a --full-refresh. An index counts as
    present when one on the same columns, in the same order, exists. -#}
{% macro star_ensure_indexes() -%}
    {%- set indexes = config.get('indexes') or [] -%}
    {%- if indexes and is_incremental() -%}
    do $indexes$
    begin
        {%- for index in indexes %}
        {%- set columns = index['columns'] if index['columns'] is not string else [index['columns']] %}
        if not exists (
            select from pg_index as present
            where
                present.indrelid = '{{ this }}'::regclass
                and array(
                    select attribute.attname::text
                    from unnest(present.indkey::int2[]) with ordinality as key_column (attnum, position)
                    inner join pg_attribute as attribute
                        on
                            attribute.attrelid = present.indrelid
                            and attribute.attnum = key_column.attnum
                    order by key_column.position
                ) = array['{{ columns | join("', '") }}']::text[]
        ) then
            create {% if index.get('unique') %}unique {% endif %}index on {{ this }}
            {%- if index.get('type') %} using {{ index['type'] }}{% endif %} ({{ columns | join(', ') }});
        end if;
        {%- endfor %}
    end
    $indexes$
    {%- endif -%}
{%- endmacro %}

{#- The not_null constraints of the model's contract that its table lacks, added on an
    incremental run (dbt declares them only when it creates a table), so a constraint added
    to the YAML reaches an existing warehouse without a --full-refresh. The database then
    guards those columns on every write, in place of not_null tests. -#}
{% macro star_ensure_not_null() -%}
    {%- set columns = [] -%}
    {%- if model.config.contract.enforced and is_incremental() -%}
        {%- for column in model.columns.values() -%}
            {%- if column.constraints | selectattr('type', 'equalto', 'not_null') | list -%}
                {%- do columns.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if columns -%}
    do $not_null$
    declare
        missing text;
    begin
        for missing in
            select attribute.attname from pg_attribute as attribute
            where
                attribute.attrelid = '{{ this }}'::regclass
                and attribute.attname in ('{{ columns | join("', '") }}')
                and not attribute.attnotnull
        loop
            execute format('alter table {{ this }} alter column %I set not null', missing);
        end loop;
    end
    $not_null$
    {%- endif -%}
{%- endmacro %}

{#- The check constraints of an enforced contract's columns (the accepted values of a
    mart's category columns: the database refuses any other value on every write, where a
    test would find it after the build), added to a table built before they were declared,
    so they reach an existing warehouse without a --full-refresh. A column counts as checked
    when any check constraint covers it (dbt creates column checks unnamed, so PostgreSQL
    names them after the table it builds). Adding one validates the rows already there: a
    row outside the accepted values fails the build, naming the constraint. -#}
{% macro star_ensure_checks() -%}
    {%- set checks = [] -%}
    {%- if model.config.contract.enforced and is_incremental() -%}
        {%- for column in model.columns.values() -%}
            {%- for constraint in column.constraints if constraint.type == 'check' -%}
                {%- do checks.append({'column': column.name, 'name': constraint.name or (this.identifier ~ '_' ~ column.name ~ '_check'), 'expression': constraint.expression}) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if checks -%}
    do $checks$
    begin
        {%- for check in checks %}
        if not exists (
            select from pg_constraint as present
            inner join pg_attribute as attribute
                on attribute.attrelid = present.conrelid and attribute.attnum = any(present.conkey)
            where
                present.conrelid = '{{ this }}'::regclass
                and present.contype = 'c'
                and attribute.attname = '{{ check.column }}'
        ) then
            alter table {{ this }} add constraint {{ check.name }} check ({{ check.expression }});
        end if;
        {%- endfor %}
    end
    $checks$
    {%- endif -%}
{%- endmacro %}

{#- The primary key the model's YAML declares (a model-level constraint of an enforced
    contract, which dbt creates with a new table), added to a table built before it was
    declared, so it reaches an existing warehouse without a --full-refresh. With the key
    enforced on every write, the model's primary_key test only checks the constraint. -#}
{% macro star_ensure_primary_key() -%}
    {%- set declared = [] -%}
    {%- if model.config.materialized in ('incremental', 'table') -%}
        {%- for constraint in model.constraints or [] -%}
            {%- if constraint.type == 'primary_key' -%}
                {%- do declared.append(constraint.columns) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if declared -%}
        {{- star_primary_key(declared[0]) -}}
    {%- endif -%}
{%- endmacro %}

{#- The project-wide post-hook, sent as one statement (one round trip per model instead of
    five): the batch watermark of an entity-incremental model, then the indexes, not_null
    and check constraints and primary key declared for the model that its table lacks. Renders
    nothing for a model that needs none of them (views). -#}
{% macro star_after_build() -%}
    {{- star_statements([
        record_batch_watermark(),
        star_ensure_indexes(),
        star_ensure_not_null(),
        star_ensure_checks(),
        star_ensure_primary_key(),
    ]) -}}
{%- endmacro %}

{#- A model's hooks sent as one statement (one round trip and one set of log events
    instead of one per hook): the non-empty parts, joined by ';'. -#}
{% macro star_statements(parts) -%}
    {%- set kept = [] -%}
    {%- for part in parts if part | trim -%}
        {%- do kept.append(part | trim) -%}
    {%- endfor -%}
    {{- kept | join(';\n') -}}
{%- endmacro %}
