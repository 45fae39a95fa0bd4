{#- The read-only role analysts and Metabase use: marts and exports, nothing else. -#}
{% macro ensure_reporting_role() %}
    {%- set role = var('reporting_role') -%}
    do $$
    begin
        if not exists (select from pg_roles where rolname = '{{ role }}') then
            create role {{ role }} login;
        end if;
    exception when duplicate_object or unique_violation then
        null;
    end
    $$;
    alter role {{ role }} set search_path = marts, exports;
    -- figures and exports are in UTC whatever the client's zone
    alter role {{ role }} set timezone = 'UTC';
    create schema if not exists marts;
    create schema if not exists exports;
{% endmacro %}

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
    begin
        if exists (select from pg_namespace where nspname = 'staging') then
            execute 'revoke all on schema staging from {{ role }}';
        end if;
        if exists (select from pg_namespace where nspname = 'intermediate') then
            execute 'revoke all on schema intermediate from {{ role }}';
        end if;
    end
    $$;
{% endmacro %}
