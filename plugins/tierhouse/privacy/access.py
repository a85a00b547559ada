"""Who may read what (P1 Art. 3, 13, 14): database roles, the one logged path to personal data,
and the access log.

Roles (cluster-wide, NOLOGIN: people and services log in as themselves and are granted one):

============  =====================================================================================
loader        writes ``raw`` and the restricted ``pii`` schema (the ingest DAG)
transformer   reads ``raw``; builds ``analytics`` (seeds), ``staging``, ``intermediate`` and
              ``marts`` (dbt runs as this role and owns what it builds); may write ``published``
              and append to ``history``; never ``pii``
bi_reader     reads ``published`` only: audited tier lists, no personal data, no raw data
auditor       reads ``history`` and ``audit`` (grading history, access log); no personal data
steward       the only role that reads personal data, and only through ``pii.read_customer``,
              which writes who, what, when and why to ``audit.access_log`` before returning
              anything; values come back encrypted and are decrypted by the application
============  =====================================================================================

Views in ``published`` run with ``security_invoker``: a view cannot lend its owner's rights to
a reader, so a view over ``pii`` or ``marts`` shows bi_reader nothing.
"""

from __future__ import annotations

from tierhouse.warehouse.connection import WarehouseUrl, connect

ROLES = ("loader", "transformer", "bi_reader", "auditor", "steward")
PIPELINE_SCHEMAS = ("raw", "pii", "analytics", "staging", "intermediate", "marts", "published", "history", "audit")
#: The role dbt runs as (dbt_project/profiles.yml and the Cosmos profile)
DBT_ROLE = "transformer"

AUDIT_DDL = """
create schema if not exists audit;
create schema if not exists pii;
revoke all on schema pii from public;
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
"""


def _grants() -> str:
    schemas = ", ".join(PIPELINE_SCHEMAS)
    return f"""
do $$
declare role_name text;
begin
    foreach role_name in array array{list(ROLES)!r} loop
        if not exists (select 1 from pg_roles where rolname = role_name) then
            execute format('create role %I nologin', role_name);
        end if;
    end loop;
end $$;

-- start from nothing, so a grant removed here is removed from the database too
revoke all on schema {schemas} from {", ".join(ROLES)};
revoke all on all tables in schema {schemas} from {", ".join(ROLES)};

grant usage, create on schema raw, pii to loader;
grant select, insert, update, delete on all tables in schema raw, pii to loader;
grant usage, select on all sequences in schema raw, pii to loader;
alter default privileges in schema raw, pii grant select, insert, update, delete on tables to loader;

grant usage on schema raw to transformer;
grant select on all tables in schema raw to transformer;
alter default privileges in schema raw grant select on tables to transformer;
grant usage, create on schema analytics, staging, intermediate, marts, published, history to transformer;
-- all (truncate too: dbt reloads seeds with it); the revoke above also strips an owner's own rights
grant all on all tables in schema analytics, staging, intermediate, marts, published to transformer;
alter default privileges in schema analytics, staging, intermediate, marts, published grant all on tables to transformer;
grant select, insert on all tables in schema history to transformer;
alter default privileges in schema history grant select, insert on tables to transformer;

grant usage on schema published to bi_reader;
grant select on all tables in schema published to bi_reader;
alter default privileges in schema published grant select on tables to bi_reader;

grant usage on schema history, audit to auditor;
grant select on all tables in schema history, audit to auditor;
alter default privileges in schema history, audit grant select on tables to auditor;

grant usage on schema pii to steward;
grant execute on function pii.read_customer(text, text, text), pii.customer_names(text, text) to steward;
"""


BI_VIEWS_DDL = """
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
"""


def apply(url: WarehouseUrl) -> None:
    """Create the roles, the audit schema, the logged read path and the grants; idempotent."""
    from tierhouse.ingest import raw_schema
    from tierhouse.lifecycle import history
    from tierhouse.lifecycle.publish import PUBLISHED_DDL

    with connect(url) as conn:
        raw_schema.apply(conn, raw_schema.all_ddl())
        with conn.cursor() as cur:
            # roles are shared by every database of the server: one definer at a time
            cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.privacy.access'))")
            history.ensure_schema(cur)
            cur.execute(PUBLISHED_DDL)
            for schema in PIPELINE_SCHEMAS:
                cur.execute(f"create schema if not exists {schema}")
            cur.execute(AUDIT_DDL)
            history.make_append_only(cur, "audit", ("access_log", "dsr_requests"), "audit.refuse_change")
            cur.execute(BI_VIEWS_DDL)
            cur.execute(_grants())
            # the pipeline's own login acts through these roles (SET ROLE), so it must hold them
            cur.execute("select rolsuper from pg_roles where rolname = current_user")
            if not cur.fetchone()[0]:
                cur.execute(f"grant {', '.join(ROLES)} to current_user")


ROLE_CHECKS = (
    ("bi_reader", "published.current_customer_tiers"),
    ("bi_reader", "marts.fct_customer_tiers"),
    ("bi_reader", "pii.crm_members"),
    ("auditor", "history.tier_changes"),
    ("auditor", "pii.crm_members"),
    ("steward", "pii.crm_members"),
)


def format_role_check(url: WarehouseUrl) -> str:
    """What a few roles see, read as those roles: the grants in force, for the demo."""
    import psycopg2

    lines = ["Access as each role (SET ROLE)"]
    for role, table in ROLE_CHECKS:
        with connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"set local role {role}")
            try:
                cur.execute(f"select count(*) from {table}")
                outcome = f"{cur.fetchone()[0]} rows"
            except psycopg2.errors.InsufficientPrivilege:
                outcome = "permission denied"
                conn.rollback()
        lines.append(f"  {role:<10} select from {table:<36} {outcome}")
    return "\n".join(lines)


def act_as(cur, role: str) -> bool:
    """For the rest of the transaction, act as ``role`` (SET LOCAL ROLE) once this warehouse has
    its roles (``apply``, which the DAGs run first); a bare database — a unit test's, or one
    being set up — keeps the login's rights. Returns whether the role is now in force."""
    cur.execute(
        "select case when exists (select 1 from pg_roles where rolname = %s)"
        " then has_schema_privilege(%s, 'raw', 'USAGE') else false end",
        (role, role),
    )
    if cur.fetchone()[0]:
        cur.execute(f"set local role {role}")
        return True
    return False
