{#-
    Who reads the warehouse (docs/connecting.md):
    - `reporting` (var reporting_role): every row of every mart and export view;
    - organisation roles (`warehouse access org ORG_ID --role NAME`), members of the group
      `warehouse_org_readers`: the same relations, only their organisation's rows, by
      row-level security on `org_id` (tables) and security-invoker views (exports), and the
      shared relations whose rows belong to no organisation (`shared_relations()`); every
      other relation without `org_id` is not granted to them.
    The BI roles are listed in `ops.bi_roles` with their guard rails (statement, lock and
    idle-in-transaction timeouts). `ops.apply_access()` puts all of it in place and runs at
    the end of every build (on-run-end) and after each `warehouse access` command, so the
    policies survive full refreshes and new tables; it only alters what is missing, so a
    steady build takes no strong lock.
-#}

{% macro org_readers_role() -%}
    warehouse_org_readers
{%- endmacro %}

{#- relations without org_id that organisation roles may read: calendars and definitions -#}
{% macro shared_relations() -%}
    {{- return(['dim_time', 'metric_definitions', 'event_types', 'milestone_definitions',
                'export_metadata']) -}}
{%- endmacro %}

{#- on-run-start: the reporting role, the BI role table, and the functions that apply access. -#}
{% macro ensure_reporting_role() %}
    {%- set role = var('reporting_role') -%}
    {%- set ops = state_schema() -%}
    {%- set marts = generate_schema_name('marts') | trim -%}
    {%- set exports = generate_schema_name('exports') | trim -%}
    do $$
    begin
        if not exists (select from pg_roles where rolname = '{{ role }}') then
            create role {{ role }} login;
        end if;
        if not exists (select from pg_roles where rolname = '{{ org_readers_role() }}') then
            create role {{ org_readers_role() }} nologin;
        end if;
    exception when duplicate_object or unique_violation then
        null;
    end
    $$;
    create schema if not exists {{ marts }};
    create schema if not exists {{ exports }};
    create schema if not exists {{ ops }};
    create table if not exists {{ ops }}.bi_roles (
        role_name text primary key,
        org_id uuid,
        statement_timeout text not null default '5min',
        lock_timeout text not null default '10s',
        idle_in_transaction_session_timeout text not null default '2min',
        granted_at timestamptz not null default now()
    );
    comment on table {{ ops }}.bi_roles is
        'The BI login roles (reporting and the organisation roles of `warehouse access org`): the organisation whose rows each reads (null: every organisation) and its default timeouts (macros/access.sql).';
    {{ citus_reference_bi_roles() }}
    insert into {{ ops }}.bi_roles (role_name, org_id) values ('{{ role }}', null)
    on conflict (role_name) do nothing;

    -- a command on every worker of a distributed warehouse, raising when a worker fails
    -- (run_command_on_workers reports a failure per node instead of raising it)
    create or replace function {{ ops }}.run_on_workers(command text, purpose text) returns void
    language plpgsql set search_path = pg_catalog
    as $fn$
    declare
        failed text;
    begin
        select string_agg(format('%s:%s %s', w.nodename, w.nodeport, w.result), '; ')
        into failed
        from run_command_on_workers(command) as w where not w.success;
        if failed is not null then
            raise exception '%: %', purpose, failed;
        end if;
    end
    $fn$;

    -- each organisation role's organisation, copied from ops.bi_roles by apply_access(): a
    -- plain table on every node, because the policies of Citus tables call ops.role_org on
    -- the workers, where Citus refuses to read one of its own tables (even a reference
    -- table) from a query on a shard
    create table if not exists {{ ops }}.bi_role_orgs (role_name text not null, org_id uuid not null);
    comment on table {{ ops }}.bi_role_orgs is
        'Each organisation role and its organisation: a copy of ops.bi_roles written by ops.apply_access(), on every node of a distributed warehouse (macros/access.sql).';
    {{ bi_role_orgs_on_workers() }}

    -- the organisation of a BI role (null for reporting, or for a role this database does
    -- not know: such a role sees no row)
    create or replace function {{ ops }}.role_org(role_name text) returns uuid
    language sql stable security definer set search_path = pg_catalog
    as $fn$ select org_id from {{ ops }}.bi_role_orgs where bi_role_orgs.role_name = $1 $fn$;

    create or replace function {{ ops }}.apply_access() returns void
    language plpgsql set search_path = pg_catalog
    as $fn$
    declare
        bi record;
        rel record;
        citus_table boolean;
        org_rows text;
        readers constant text := '{{ org_readers_role() }}';
        shared constant text[] := array['{{ shared_relations() | join("', '") }}'];
    begin
        if exists (select from pg_extension where extname = 'citus') then
            -- Citus: DDL on distributed and reference tables in one transaction
            perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
        end if;
        -- the organisation roles' organisations, where the policies read them: here, and
        -- on every worker of a distributed warehouse (ops.citus_distribution exists)
        delete from {{ ops }}.bi_role_orgs;
        insert into {{ ops }}.bi_role_orgs (role_name, org_id)
        select b.role_name, b.org_id from {{ ops }}.bi_roles as b where b.org_id is not null;
        if to_regclass('pg_catalog.pg_dist_node') is not null and to_regclass('{{ citus_marker() }}') is not null then
            select string_agg(format('(%L, %L::uuid)', o.role_name, o.org_id), ', ')
            into org_rows from {{ ops }}.bi_role_orgs as o;
            perform {{ ops }}.run_on_workers(format(
                'create table if not exists %1$I.bi_role_orgs (role_name text not null, org_id uuid not null);'
                ' delete from %1$I.bi_role_orgs', '{{ ops }}'
            ), 'organisation roles not copied to the workers');
            if org_rows is not null then
                perform {{ ops }}.run_on_workers(
                    format('insert into %I.bi_role_orgs (role_name, org_id) values %s', '{{ ops }}', org_rows),
                    'organisation roles not copied to the workers'
                );
            end if;
        end if;
        execute format('grant usage on schema %I, %I to %I', '{{ marts }}', '{{ exports }}', readers);
        -- each BI role's settings in this database (ops.bi_roles is this database's), whatever
        -- the role set for itself since: its own defaults are reset
        for bi in
            select b.* from {{ ops }}.bi_roles as b
            where exists (select from pg_roles where rolname = b.role_name)
        loop
            execute format('alter role %I reset all', bi.role_name);
            execute format('alter role %I in database %I reset all', bi.role_name, current_database());
            execute format('alter role %I in database %I set search_path = %I, %I',
                bi.role_name, current_database(), '{{ marts }}', '{{ exports }}');
            execute format('alter role %I in database %I set timezone = %L',
                bi.role_name, current_database(), 'UTC');
            execute format('alter role %I in database %I set statement_timeout = %L',
                bi.role_name, current_database(), bi.statement_timeout);
            execute format('alter role %I in database %I set lock_timeout = %L',
                bi.role_name, current_database(), bi.lock_timeout);
            execute format('alter role %I in database %I set idle_in_transaction_session_timeout = %L',
                bi.role_name, current_database(), bi.idle_in_transaction_session_timeout);
        end loop;
        for rel in
            select
                c.oid, n.nspname, c.relname, c.relkind, c.relrowsecurity,
                coalesce('security_invoker=true' = any(c.reloptions), false) as invoker,
                (
                    select format_type(a.atttypid, a.atttypmod) from pg_attribute as a
                    where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
                ) as org_type,
                has_table_privilege(readers, c.oid, 'select') as granted
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname in ('{{ marts }}', '{{ exports }}') and c.relkind in ('r', 'p', 'v')
        loop
            if rel.org_type is not null and rel.relkind in ('r', 'p') then
                if not rel.relrowsecurity then
                    execute format('alter table %I.%I enable row level security', rel.nspname, rel.relname);
                end if;
                if not exists (select from pg_policy where polrelid = rel.oid and polname = 'bi_org_rows') then
                    -- organisation roles see their organisation's rows; other readers every
                    -- row. The scalar subqueries make each test an init plan (once per
                    -- query); Citus refuses subqueries in a Citus table's policies, whose
                    -- shards test it row by row on the workers (ops.bi_roles is a reference
                    -- table there, so ops.role_org answers on every node)
                    if to_regclass('pg_catalog.pg_dist_partition') is not null then
                        execute 'select exists (select from pg_catalog.pg_dist_partition where logicalrelid = $1)'
                            into citus_table using rel.oid;
                    else
                        citus_table := false;
                    end if;
                    -- on a Citus table the organisation lookup sits behind a CASE, so
                    -- the workers never run it for readers of every organisation
                    -- (Citus refuses its query there); elsewhere a plain OR
                    execute format(
                        case when citus_table
                            then 'create policy bi_org_rows on %I.%I for select to public using ('
                                'case when %s then true else %s = %s%s end)'
                            else 'create policy bi_org_rows on %I.%I for select to public using ('
                                'not %s or %s = %s%s)'
                        end,
                        rel.nspname, rel.relname,
                        format(case when citus_table then 'not pg_has_role(current_user, %L, %L)'
                            else '(select pg_has_role(current_user, %L, %L))' end, readers, 'member'),
                        case when rel.org_type = 'uuid' then 'org_id' else 'org_id::text' end,
                        format(case when citus_table then '%s.role_org(current_user)'
                            else '(select %s.role_org(current_user))' end, '{{ ops }}'),
                        case when rel.org_type = 'uuid' then '' else '::text' end
                    );
                end if;
            elsif rel.relkind = 'v' and not rel.invoker then
                -- a view reads its tables as whoever queries it, so their policies apply
                execute format('alter view %I.%I set (security_invoker = true)', rel.nspname, rel.relname);
            end if;
            -- export views read the marts as the querying role (security_invoker), through
            -- their policies: organisation roles get them all
            if rel.org_type is not null or rel.relname = any(shared) or rel.relkind = 'v' then
                if not rel.granted then
                    execute format('grant select on %I.%I to %I', rel.nspname, rel.relname, readers);
                end if;
            elsif rel.granted then
                execute format('revoke select on %I.%I from %I', rel.nspname, rel.relname, readers);
            end if;
        end loop;
    end
    $fn$;
    revoke all on function {{ ops }}.apply_access() from public;

    {{ ensure_access_triggers() }}
{% endmacro %}

{#- On a distributed warehouse (macros/citus.sql), ops.bi_roles becomes a reference table:
    the row-level security policies of the Citus tables run on the workers, where
    ops.role_org reads it. Nothing on a single-node warehouse. -#}
{% macro citus_reference_bi_roles() -%}
    {%- if warehouse_distributed() %}
    do $citus$
    begin
        perform set_config('citus.multi_shard_modify_mode', 'sequential', true);
        if not exists (select from pg_dist_partition where logicalrelid = '{{ state_schema() }}.bi_roles'::regclass) then
            perform create_reference_table('{{ state_schema() }}.bi_roles');
            perform truncate_local_data_after_distributing_table('{{ state_schema() }}.bi_roles');
        end if;
    end
    $citus$;
    {%- endif %}
{%- endmacro %}

{#- On a database with the citus extension: ops.bi_role_orgs on every worker too (a plain
    table there, which apply_access() fills), before ops.role_org, which reads it, is
    created and propagated to them. Nothing on a single-node warehouse. -#}
{% macro bi_role_orgs_on_workers() -%}
    do $workers$
    begin
        -- a distributed warehouse only (schema ops is on the workers once it is: Citus's
        -- own propagation brings it; a worker refuses to create it itself)
        if to_regclass('pg_catalog.pg_dist_node') is null or to_regclass('{{ citus_marker() }}') is null then
            return;
        end if;
        perform {{ state_schema() }}.run_on_workers(format(
            'create table if not exists %I.bi_role_orgs (role_name text not null, org_id uuid not null)',
            '{{ state_schema() }}'
        ), 'ops.bi_role_orgs not created on the workers');
    end
    $workers$;
{%- endmacro %}

{#- Event triggers (superuser only; skipped otherwise):
    - a view created in marts or exports becomes security_invoker in the statement that
      creates it, so an organisation role never reads a view through its owner's rights,
      whatever way a build replaces it; organisation roles then get new export views by
      default privileges (they read the marts through their policies);
    - on PostgreSQL 17+, at login a BI role gets its settings from ops.bi_roles, so a role
      that altered its own defaults (`alter role reporting set ...`, which PostgreSQL allows
      any role for itself) changes nobody's session. -#}
{% macro ensure_access_triggers() %}
    {%- set ops = state_schema() -%}
    {%- set marts = generate_schema_name('marts') | trim -%}
    {%- set exports = generate_schema_name('exports') | trim -%}
    do $$
    begin
        if not (select rolsuper from pg_roles where rolname = current_user) then
            return;
        end if;
        create or replace function {{ ops }}.secure_new_views() returns event_trigger
        language plpgsql set search_path = pg_catalog
        as $fn$
        declare
            created record;
        begin
            for created in
                select object_identity from pg_event_trigger_ddl_commands()
                where command_tag = 'CREATE VIEW' and schema_name in ('{{ marts }}', '{{ exports }}')
            loop
                execute format('alter view %s set (security_invoker = true)', created.object_identity);
            end loop;
        end
        $fn$;
        if not exists (select from pg_event_trigger where evtname = 'warehouse_secure_new_views') then
            create event trigger warehouse_secure_new_views on ddl_command_end
                when tag in ('CREATE VIEW') execute function {{ ops }}.secure_new_views();
        end if;
        -- so a view a build swaps in is readable by organisation roles from its creation
        alter default privileges in schema {{ exports }} grant select on tables to {{ org_readers_role() }};
        if current_setting('server_version_num')::int < 170000 then
            return;
        end if;
        create or replace function {{ ops }}.bi_login() returns event_trigger
        language plpgsql security definer
        as $fn$
        declare
            bi record;
        begin
            -- Citus's own connections (between nodes, and from the coordinator to itself)
            -- are never a BI login and cannot read ops.bi_roles, a reference table, there:
            -- every one of them warned. A session posing as one cannot query Citus tables.
            if pg_catalog.current_setting('application_name') like 'citus\_internal%' then
                return;
            end if;
            select * into bi from {{ ops }}.bi_roles as b
            where b.role_name operator(pg_catalog.=) pg_catalog.session_user()::text;
            if found then
                perform pg_catalog.set_config('search_path', '{{ marts }}, {{ exports }}', false);
                perform pg_catalog.set_config('timezone', 'UTC', false);
                perform pg_catalog.set_config('statement_timeout', bi.statement_timeout, false);
                perform pg_catalog.set_config('lock_timeout', bi.lock_timeout, false);
                perform pg_catalog.set_config('idle_in_transaction_session_timeout',
                    bi.idle_in_transaction_session_timeout, false);
            end if;
        exception when others then
            -- never refuse a login for this
            raise warning 'warehouse login settings not applied: %', sqlerrm;
        end
        $fn$;
        if not exists (select from pg_event_trigger where evtname = 'warehouse_bi_login') then
            create event trigger warehouse_bi_login on login execute function {{ ops }}.bi_login();
        end if;
    end
    $$;
{% endmacro %}

{#- on-run-end: reporting reads marts and exports (nothing else); then ops.apply_access(). -#}
{% macro grant_reporting_access() %}
    {%- set role = var('reporting_role') -%}
    {#- Citus: grants touching distributed and reference tables in one transaction -#}
    {{ citus_sequential() }}
    grant usage on schema marts, exports to {{ role }};
    grant select on all tables in schema marts to {{ role }};
    grant select on all tables in schema exports to {{ role }};
    alter default privileges in schema marts grant select on tables to {{ role }};
    alter default privileges in schema exports grant select on tables to {{ role }};
    revoke all on schema raw from {{ role }};
    do $$
    declare
        other text;
    begin
        foreach other in array array['staging', 'intermediate', 'snapshots', '{{ state_schema() }}'] loop
            if exists (select from pg_namespace where nspname = other) then
                execute format('revoke all on schema %I from {{ role }}', other);
            end if;
        end loop;
    end
    $$;
{% endmacro %}

{% macro apply_access() %}
    select {{ state_schema() }}.apply_access();
{% endmacro %}
