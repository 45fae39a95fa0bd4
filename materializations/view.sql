{#-
    Views rebuilt only when their definition changed.

    dbt replaces every view on every run (create a new view, swap names, drop the old one),
    a dozen catalog round trips per view for nothing when neither the SQL nor the docs
    changed. Here a view whose fingerprint (md5 of its compiled SQL, description, column
    docs and grants) matches the one recorded when it was last built, and which still
    exists, is left as it is; otherwise dbt's own view materialization runs and the new
    fingerprint is recorded. A view dropped with what it reads (a --full-refresh of a table
    drops its views in cascade) no longer exists and is rebuilt; --full-refresh rebuilds
    every view. Fingerprints live in intermediate.view_fingerprints (ensure_view_fingerprints,
    on-run-start).
-#}
{% materialization view, adapter='postgres' %}
    {%- set registry = view_fingerprints_relation() -%}
    {%- set name = this.include(database=false) -%}
    {%- set fingerprint = local_md5(
        sql ~ '|' ~ tojson(model.description) ~ '|' ~ tojson(model.columns)
        ~ '|' ~ tojson(config.get('grants')) ~ '|' ~ tojson(config.get('persist_docs'))
    ) -%}
    {%- if not should_full_refresh() -%}
        {%- set recorded = run_query(
            "select fingerprint from " ~ registry ~ " where relation = '" ~ name ~ "'"
            ~ " and to_regclass('" ~ name ~ "') is not null"
        ) -%}
        {%- if recorded.rows | length == 1 and recorded.rows[0][0] == fingerprint -%}
            {#- dbt requires every materialization to run a 'main' statement -#}
            {%- call statement('main') -%}
                select 'view unchanged: left as it is' as status
            {%- endcall -%}
            {{- return({'relations': [this.incorporate(type='view')]}) -}}
        {%- endif -%}
    {%- endif -%}

    {%- set result = dbt.materialization_view_default() -%}

    {%- call statement('record_view_fingerprint') -%}
        delete from {{ registry }} where relation = '{{ name }}';
        insert into {{ registry }} (relation, fingerprint) values ('{{ name }}', '{{ fingerprint }}');
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {{- return(result) -}}
{% endmaterialization %}

{% macro view_fingerprints_relation() -%}
    {{- generate_schema_name('intermediate') | trim }}.view_fingerprints
{%- endmacro %}

{#- on-run-start: the fingerprint registry exists before any view reads it. -#}
{% macro ensure_view_fingerprints() %}
    create schema if not exists {{ generate_schema_name('intermediate') | trim }};
    create table if not exists {{ view_fingerprints_relation() }} (
        relation text primary key,
        fingerprint text not null,
        built_at timestamptz not null default now()
    );
    comment on table {{ view_fingerprints_relation() }} is
        'Per view: the fingerprint of the definition it was last built from; an unchanged view '
        'is not rebuilt (materializations/view.sql).';
{% endmacro %}
