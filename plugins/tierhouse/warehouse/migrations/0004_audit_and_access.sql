-- Who may read what (tierhouse.privacy.access): the group roles, every schema of the pipeline,
-- the audit schema (access log, data-subject requests, both append-only), the one logged path to
-- personal data (pii.read_customer, pii.customer_names) and the views BI tools read.
--
-- The grants are not here: they also cover the relations dbt creates at run time, so
-- tierhouse.privacy.access.apply sets them (the DAGs run it before every dbt build); it creates
-- nothing.
--
-- Written with "if not exists" / "or replace" throughout so that it also adopts a warehouse the
-- code before migrations created (it changes nothing there).

-- Roles are shared by every database of the server: another database's migration may create
-- one between the check and the create, which is no error.
do $$
declare role_name text;
begin
    foreach role_name in array array['loader', 'transformer', 'bi_reader', 'auditor', 'steward'] loop
        if not exists (select 1 from pg_roles where rolname = role_name) then
            begin
                execute format('create role %I nologin', role_name);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end $$;

-- The schemas dbt builds in (analytics for seeds, staging, intermediate, marts): dbt runs as
-- the transformer role, which may create relations in them but no schema.
create schema if not exists analytics;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;

create schema if not exists audit;
revoke all on schema audit from public;

create table if not exists audit.access_log (
    access_id     bigint generated always as identity primary key,
    accessed_at   timestamptz not null default now(),
    database_user text        not null default session_user,
    -- the role the session acts as (SET ROLE); current_user would name the function's owner
    database_role text        not null default current_setting('role'),
    requested_by  text        not null check (length(trim(requested_by)) > 0),
    customer_key  text        not null,
    what          text        not null,
    reason        text        not null check (length(trim(reason)) > 0)
);

create table if not exists audit.dsr_requests (
    request_id    uuid        primary key,
    kind          text        not null check (kind in ('access', 'correction', 'erasure', 'consent_withdrawal')),
    customer_key  text        not null,
    requested_by  text        not null,
    reason        text        not null check (length(trim(reason)) > 0),
    details       jsonb       not null,
    created_at    timestamptz not null default now()
);

create or replace function audit.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'the audit log is append-only: % on %.% refused', tg_op, tg_table_schema, tg_table_name;
end
$$;

-- Every read of personal data goes through here first: no read without who and why.
create or replace function audit.log_personal_data_read(p_requested_by text, p_customer_key text, p_what text, p_reason text)
returns void language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if coalesce(trim(p_reason), '') = '' or coalesce(trim(p_requested_by), '') = '' then
        raise exception 'reading personal data needs who asks and why';
    end if;
    insert into audit.access_log (requested_by, customer_key, what, reason)
    values (p_requested_by, p_customer_key, p_what, p_reason);
end
$$;
revoke all on function audit.log_personal_data_read(text, text, text, text) from public;

-- The one way to personal data: the read is logged first, in the caller's transaction.
create or replace function pii.read_customer(p_member_id text, p_requested_by text, p_reason text)
returns table (source text, row_key text, field text, ciphertext text)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform audit.log_personal_data_read(
        p_requested_by, p_member_id, 'pii.crm_members(name, phone, address), pii.service_tickets(note)', p_reason
    );
    return query
        select 'crm_members'::text, m.member_id || '@' || m.updated_at::text, f.field, f.value
        from pii.crm_members as m
        cross join lateral (values ('name', m.name), ('phone', m.phone), ('address', m.address)) as f (field, value)
        where m.member_id = p_member_id
        union all
        select 'service_tickets'::text, t.ticket_id, 'note'::text, t.note
        from pii.service_tickets as t
        where t.ticket_id in (select r.ticket_id from raw.service_tickets as r where r.member_id = p_member_id);
end
$$;
revoke all on function pii.read_customer(text, text, text) from public;

-- Every customer's name, for the de-identification gate to look for; one logged read.
create or replace function pii.customer_names(p_requested_by text, p_reason text)
returns table (ciphertext text)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform audit.log_personal_data_read(p_requested_by, '*', 'pii.crm_members(name) of every customer', p_reason);
    return query select distinct m.name from pii.crm_members as m where m.name is not null;
end
$$;
revoke all on function pii.customer_names(text, text) from public;

-- append-only: no update, delete or truncate of the log
create or replace trigger access_log_append_only before update or delete on audit.access_log
    for each row execute function audit.refuse_change();
create or replace trigger access_log_no_truncate before truncate on audit.access_log
    for each statement execute function audit.refuse_change();
create or replace trigger dsr_requests_append_only before update or delete on audit.dsr_requests
    for each row execute function audit.refuse_change();
create or replace trigger dsr_requests_no_truncate before truncate on audit.dsr_requests
    for each statement execute function audit.refuse_change();

create or replace view published.current_customer_tiers with (security_invoker = true) as
select policy, policy_version, period_month, list_kind, customer_key, tier, tier_label, tier_rank,
       consumption_attribute, demand_feature, cooperation_feature, published_at
from published.customer_tiers;
comment on view published.current_customer_tiers is
    'The list in force per policy, period and customer (initial, confirmed, quarterly or appeal); pseudonymous keys only.';

create or replace view published.tier_distribution with (security_invoker = true) as
select policy, period_month, list_kind, tier, tier_label, tier_rank, count(*) as customers
from published.customer_tiers
group by policy, period_month, list_kind, tier, tier_label, tier_rank;
comment on view published.tier_distribution is 'Customers per tier, for dashboards.';
