-- Least privilege (issue 13A): every migrated object is owned by tierhouse_owner, a NOLOGIN role
-- that is not a superuser; one group role per job (the loader, transformer, bi_reader, auditor
-- and steward of 0004, plus publisher, gate and reviewer); code (functions, procedures,
-- triggers, rules, event triggers) is created by migrations only.
--
-- The login roles (th_ingest, th_dbt, ...) are not created here: their passwords come from the
-- credential store, so `tierhouse warehouse migrate` creates them after the migrations
-- (tierhouse.warehouse.migrate.ensure_logins). The grants on each schema and relation are set by
-- tierhouse.privacy.access.apply, which also covers what dbt builds; docs/PRIVACY.md has the matrix.

-- Roles are shared by every database of the server: another database's migration may create
-- one between the check and the create, which is no error.
do $$
declare role_name text;
begin
    foreach role_name in array array['tierhouse_owner', 'publisher', 'gate', 'reviewer'] loop
        if not exists (select 1 from pg_roles where rolname = role_name) then
            begin
                execute format('create role %I nologin', role_name);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end $$;

-- The owner may use what it owns and nothing more: no superuser, no role or database creation.
alter role tierhouse_owner nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls;

-- No login may create objects in public, nor use it as a place for look-alike functions.
revoke create on schema public from public;

-- Hands every migrated schema and every object in it to tierhouse_owner. dbt's relations stay
-- the transformer's (it rebuilds them); anything else (created by the migration login) moves.
-- The migration runner calls it after applying migrations, so later files need not repeat it.
create or replace function tierhouse_meta.hand_to_owner() returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    item record;
    migrated text[] := array['raw', 'pii', 'shop', 'history', 'audit', 'published',
                             'analytics', 'staging', 'intermediate', 'marts', 'tierhouse_meta'];
begin
    for item in
        select n.nspname from pg_namespace as n
        where n.nspname = any(migrated) and pg_get_userbyid(n.nspowner) <> 'tierhouse_owner'
    loop
        execute format('alter schema %I owner to tierhouse_owner', item.nspname);
    end loop;
    -- tables, views, materialised views, sequences not owned by a column (identity sequences
    -- follow their table), foreign tables
    for item in
        select n.nspname, c.relname, c.relkind from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(migrated)
          and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and pg_get_userbyid(c.relowner) not in ('tierhouse_owner', 'transformer')
          and not exists (select 1 from pg_depend as d
                          where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i'))
    loop
        execute format('alter %s %I.%I owner to tierhouse_owner',
                       case item.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                         when 'S' then 'sequence' when 'f' then 'foreign table' else 'table' end,
                       item.nspname, item.relname);
    end loop;
    for item in
        select p.oid::regprocedure as signature, p.prokind from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = any(migrated) and pg_get_userbyid(p.proowner) <> 'tierhouse_owner'
    loop
        execute format('alter %s %s owner to tierhouse_owner',
                       case item.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end,
                       item.signature);
    end loop;
end
$$;
revoke all on function tierhouse_meta.hand_to_owner() from public;

-- Code runs with the rights of whoever calls it (or, for security definer, of its owner): a
-- function, trigger or rule made by a role that runs data code would run as the publisher, the
-- gate or the migration login the next time they touch the object. Only the migration login (a
-- superuser) and tierhouse_owner create code; every other role is refused, whatever schema it
-- may create tables in.
create or replace function tierhouse_meta.refuse_code_from_job_roles() returns event_trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if current_user <> 'tierhouse_owner'
       and not (select r.rolsuper from pg_roles as r where r.rolname = current_user) then
        raise exception '% refused: only warehouse migrations create functions, triggers and rules (role %)',
            tg_tag, current_user
            using errcode = 'insufficient_privilege';
    end if;
end
$$;

drop event trigger if exists tierhouse_refuse_code_from_job_roles;
create event trigger tierhouse_refuse_code_from_job_roles on ddl_command_start
    when tag in ('CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE', 'CREATE OPERATOR',
                 'CREATE TRIGGER', 'CREATE RULE', 'CREATE CAST', 'CREATE CONVERSION',
                 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER TRIGGER', 'ALTER RULE')
    execute function tierhouse_meta.refuse_code_from_job_roles();

-- A relation the owner creates later is readable by nobody until access.apply grants it, and
-- a function it creates is executable by nobody but those it is granted to.
alter default privileges for role tierhouse_owner revoke all on tables from public;
alter default privileges for role tierhouse_owner revoke all on sequences from public;
alter default privileges for role tierhouse_owner revoke execute on functions from public;

select tierhouse_meta.hand_to_owner();
