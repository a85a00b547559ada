"""Who may read what (P1 Art. 3, 13, 14): database roles and their grants, the one logged path
to personal data, and the access log. The roles, the audit schema, the logged read functions and
the published views are created by warehouse migration ``0004_audit_and_access``;
:func:`apply` grants the rights below and creates nothing.

Roles (cluster-wide, NOLOGIN: people and services log in as themselves and are granted one):

============  =====================================================================================
loader        writes ``raw`` and the restricted ``pii`` schema (the ingest DAG)
transformer   reads ``raw``; builds ``analytics`` (seeds), ``staging``, ``intermediate`` and
              ``marts`` (dbt runs as this role and owns what it builds); nothing in ``published``,
              ``history`` or ``pii``
bi_reader     reads ``published`` only: audited tier lists in force (a row-level policy, migration
              ``0500``, hides an initial list under review), no personal data, no raw data
auditor       reads ``history`` and ``audit`` (grading history, access log); no personal data
publisher     the publish tasks: reads ``marts`` and the policy tables, appends to ``history``,
              writes ``published.customer_tiers``; builds nothing
reviewer      the people's review, approval and appeal commands, which publish: the publisher's
              rights, and recording approvals (``history.approvals``) and restatement decisions
steward       the only role that reads personal data, and only through ``pii.read_customer`` /
              ``pii.customer_names``, which refuse unless ``audit.log_personal_data_read`` logged
              the read (login, role, reason code) in another, committed transaction; values come
              back encrypted and are decrypted by the application. It changes personal data only
              through ``pii.add_member_version`` / ``pii.erase_customer``, for a recorded request
              not yet carried out
gate          the de-identification gate (its own login, ``th_gate``): SELECT on the schemas it
              scans (not ``pii``) and nothing else, so a function a scanned view calls cannot
              write, copy to a file or read the server's files
============  =====================================================================================

Views in ``published`` run with ``security_invoker``: a view cannot lend its owner's rights to
a reader, so a view over ``pii`` or ``marts`` shows bi_reader nothing.
"""

from __future__ import annotations

from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url
from tierhouse.warehouse.migrate import require_migrated

ROLES = ("loader", "transformer", "publisher", "reviewer", "gate", "bi_reader", "auditor", "steward")
PIPELINE_SCHEMAS = (
    "raw", "pii", "shop", "analytics", "staging", "intermediate", "marts", "published", "history", "audit", "tierhouse_meta",
)  # fmt: skip
DBT_SCHEMAS = ("analytics", "staging", "intermediate", "marts")
#: The role dbt runs as (dbt_project/profiles.yml and the Cosmos profile): it owns what dbt builds
DBT_ROLE = "transformer"
#: What BI tools read, by name: a relation placed in ``published`` later is not granted by accident
BI_RELATIONS = ("published.customer_tiers", "published.current_customer_tiers", "published.tier_distribution")
POLICY_TABLES = (
    "raw.policy_versions", "raw.policy_tier_conditions", "raw.policy_score_bands", "raw.policy_band_conditions",
    "raw.policy_regrade_conditions", "raw.policy_settings",
)  # fmt: skip


def _grants() -> str:
    schemas = ", ".join(PIPELINE_SCHEMAS)
    roles = ", ".join(ROLES)
    dbt_schemas = ", ".join(DBT_SCHEMAS)
    policy_tables = ", ".join(POLICY_TABLES)
    return f"""
-- start from nothing, so a grant removed here is removed from the database too
revoke all on schema {schemas} from {roles};
revoke all on all tables in schema {schemas} from {roles};
revoke all on all sequences in schema {schemas} from {roles};

-- loader: writes raw; appends to pii, seeing only which file and line a row came from (a file
-- loaded again replaces its rows), never personal data; reads the shop stand-in it extracts
grant usage on schema raw, pii, shop to loader;
grant select, insert, update, delete on all tables in schema raw to loader;
grant usage, select on all sequences in schema raw to loader;
grant insert, delete on all tables in schema pii to loader;
grant select (_source_file, _source_line) on pii.crm_members, pii.service_tickets to loader;
grant select on all tables in schema shop to loader;
-- whether a policy version already graded a period (it may then not change), and nothing else
grant execute on function raw.policy_version_graded(text, integer) to loader;

-- transformer (dbt): reads raw, builds in the dbt schemas; nothing in published, history, pii
grant usage on schema raw to transformer;
grant select on all tables in schema raw to transformer;
grant usage, create on schema {dbt_schemas} to transformer;
-- all (truncate too: dbt reloads seeds with it); the revoke above also strips an owner's own rights
grant all on all tables in schema {dbt_schemas} to transformer;

-- publisher (publish tasks) and reviewer (people's review and appeal commands, which publish
-- confirmed and corrected lists): read the marts and policies, append to history, write the
-- published table; no CREATE anywhere, so no view or trigger of theirs can appear
grant usage on schema raw, marts, history, published to publisher, reviewer;
grant select on {policy_tables} to publisher, reviewer;
grant select on all tables in schema marts to publisher, reviewer;
grant select, insert on all tables in schema history to publisher, reviewer;
grant select, insert, update, delete on published.customer_tiers to publisher, reviewer;
-- accepting or rejecting a restatement is a person's decision (the review login), never a task's
revoke insert on history.restatement_decisions from publisher;
-- approving a list (P2) is an approver's decision, recorded with the review login, never a task's
revoke insert on history.approvals from publisher;

-- gate: reads every schema it scans, writes nothing
grant usage on schema raw, {dbt_schemas}, published, history, audit to gate;
grant select on all tables in schema raw, {dbt_schemas}, published, history, audit to gate;

-- bi_reader: the published relations by name
grant usage on schema published to bi_reader;
grant select on {", ".join(BI_RELATIONS)} to bi_reader;

grant usage on schema history, audit to auditor;
grant select on all tables in schema history, audit to auditor;
-- a correction's value waiting to be carried out is personal data, even encrypted
revoke select on audit.dsr_request_values from auditor;

-- every load drops the rows of erased people (tierhouse.ingest.loaders), so it reads the ledger
grant usage on schema audit to loader;
grant select on audit.erasure_ledger to loader;

-- steward: no privilege on any pii table (not even count(*)); personal data is read through the
-- logged functions and changed through the request-bound ones (migration 0300). A request is
-- recorded and carried out here: a CRM member version, the erasure ledger, the extract's and
-- quarantine's copies of an erased person, the export's grading data.
grant usage on schema raw, pii, intermediate, marts, published, history, audit to steward;
grant execute on function audit.log_personal_data_read(text, text, text, uuid), pii.read_customer(uuid),
    pii.customer_names(uuid), pii.add_member_version(uuid, timestamp, text, text), pii.erase_customer(uuid) to steward;
grant select, insert on audit.dsr_requests, audit.dsr_completions, audit.erasure_ledger to steward;
grant select, insert, delete on audit.dsr_request_values to steward;
grant select, insert on raw.crm_members to steward;
grant select on raw.service_tickets, published.customer_tiers to steward;
grant select, delete on raw.quarantine, raw.shop_orders, raw.shop_order_lines to steward;
grant select on all tables in schema intermediate, marts, history to steward;

-- what dbt builds next is readable by the jobs that read it, and by no one else
alter default privileges for role {DBT_ROLE} in schema {dbt_schemas} revoke all on tables from public;
alter default privileges for role {DBT_ROLE} in schema {dbt_schemas} grant select on tables to gate;
alter default privileges for role {DBT_ROLE} in schema marts grant select on tables to publisher, reviewer;
alter default privileges for role {DBT_ROLE} in schema intermediate, marts grant select on tables to steward;
"""


def apply(url: WarehouseUrl) -> None:
    """Grant each role its rights on every schema, table and function of the pipeline, dbt's
    relations included (revoking whatever else they held); idempotent. It creates nothing: the
    roles, schemas, the audit tables, the logged read path and the BI views are migrations.
    Run by the migrate job's login (it grants on relations other roles own)."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        # two runs granting on the same objects at once fail on the same catalog rows
        cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.privacy.access'))")
        cur.execute(_grants())


#: (job, table, column counted): personal columns for pii, where the steward may see only keys
ROLE_CHECKS = (
    ("bi", "published.current_customer_tiers", "customer_key"),
    ("bi", "marts.fct_customer_tiers", "customer_key"),
    ("bi", "pii.crm_members", "name"),
    ("audit", "history.tier_changes", "customer_key"),
    ("audit", "pii.crm_members", "name"),
    ("steward", "pii.crm_members", "name"),
)


def format_role_check(url: WarehouseUrl) -> str:
    """What a few logins see, each connected with its own password: the grants in force, for the demo."""
    import psycopg2

    lines = ["Access as each login (its own password, no superuser)"]
    for job, table, column in ROLE_CHECKS:
        login = login_url(url, job)
        with connect(login) as conn, conn.cursor() as cur:
            try:
                cur.execute(f"select count({column}) from {table}")
                outcome = f"{cur.fetchone()[0]} rows"
            except psycopg2.errors.InsufficientPrivilege:
                outcome = "permission denied"
                conn.rollback()
        lines.append(f"  {login.user:<10} select from {table:<36} {outcome}")
    return "\n".join(lines)
