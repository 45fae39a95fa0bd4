{#-
    The voice metrics are declared once, in seed metric_definitions. The marts' `metric`
    columns are of the PostgreSQL domain <seed schema>.voice_metric (text), whose check
    constraint lists the seed's metrics, so the database refuses any other value on every
    write. dbt renders Jinja in a YAML constraint expression at parse time, with vars only
    (no macros, no database), so the list cannot be read from the seed there; this post-hook
    of the seed writes it instead, every time the seed is loaded.
    The domain's comment records the list; the constraint is replaced only when the seed's
    list changed. When rows already in the marts hold a metric the seed no longer lists,
    the new constraint is added NOT VALID (new writes are checked, old rows are not) with a
    warning: run a --full-refresh after editing the seed, as for every seed; the next load
    of the seed validates the constraint once no such row is left.
-#}
{% macro sync_voice_metric_domain() %}
    {%- set domain = this.schema ~ '.voice_metric' -%}
    do $voice_metric$
    declare
        names text;
        wanted_comment text;
        stale boolean := false;
        unchanged boolean;
        usage record;
    begin
        select
            string_agg(quote_literal(metric), ', ' order by metric),
            'A voice metric of seed metric_definitions: ' || string_agg(metric, ', ' order by metric)
            || '. Written by macro sync_voice_metric_domain when the seed is loaded.'
        into names, wanted_comment
        from {{ this }};
        if names is null then
            raise exception 'seed metric_definitions is empty: no voice metric to allow';
        end if;
        if to_regtype('{{ domain }}') is null then
            create domain {{ domain }} as text;
        end if;
        unchanged := obj_description(to_regtype('{{ domain }}'), 'pg_type') is not distinct from wanted_comment
            and exists (
                select from pg_constraint
                where contypid = to_regtype('{{ domain }}') and conname = 'voice_metric_check'
            );
        if unchanged and not exists (
            select from pg_constraint
            where contypid = to_regtype('{{ domain }}') and conname = 'voice_metric_check'
                and not convalidated
        ) then
            return;
        end if;
        -- do rows already written hold a metric the seed does not list (any more)?
        for usage in
            select attribute.attrelid::regclass as relation, attribute.attname as column_name
            from pg_attribute as attribute
            join pg_class as class on class.oid = attribute.attrelid
            where attribute.atttypid = to_regtype('{{ domain }}') and class.relkind in ('r', 'p')
                and not attribute.attisdropped
        loop
            execute format(
                'select exists (select from %s where %I::text not in (%s))',
                usage.relation, usage.column_name, names
            ) into stale;
            exit when stale;
        end loop;
        if unchanged then
            -- a constraint added NOT VALID after an edit of the seed: valid again once the
            -- rebuild (--full-refresh) removed the metrics the seed no longer lists
            if not stale then
                alter domain {{ domain }} validate constraint voice_metric_check;
            end if;
            return;
        end if;
        alter domain {{ domain }} drop constraint if exists voice_metric_check;
        execute format(
            'alter domain {{ domain }} add constraint voice_metric_check check (value in (%s))%s',
            names, case when stale then ' not valid' end
        );
        if stale then
            raise warning 'marts hold voice metrics that seed metric_definitions no longer lists: run a --full-refresh';
        end if;
        execute format('comment on domain {{ domain }} is %L', wanted_comment);
    end
    $voice_metric$
{% endmacro %}
