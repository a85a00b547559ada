"""Who may read what (P1 Art. 3, 13, 14): database roles and their grants, the one logged path
to personal data, and the access log. The roles, the audit schema, the logged read functions and
the published views are created by warehouse migration ``0004_audit_and_access``;
:func:`apply` grants the rights below and creates nothing.

Roles (cluster-wide, NOLOGIN: people and services log in as themselves and are granted one):

============  =====================================================================================
loader        writes ``raw`` and the restricted ``pii`` schema (the ingest DAG)
transformer   reads ``raw``; builds ``analytics`` (seeds), ``staging``, ``intermediate`` and
              ``marts`` (dbt runs as this role and owns what it builds); may write ``published``
              and append to ``history``; never ``pii``
bi_reader     reads ``published`` only: audited tier lists, no personal data, no raw data
auditor       reads ``history`` and ``audit`` (grading history, access log); no personal data
steward       the only role that reads personal data, and only through ``pii.read_customer`` /
              ``pii.customer_names``, which refuse unless ``audit.log_personal_data_read`` logged
              the read (login, role, reason code) in another, committed transaction; values come
              back encrypted and are decrypted by the application
============  =====================================================================================

Views in ``published`` run with ``security_invoker``: a view cannot lend its owner's rights to
a reader, so a view over ``pii`` or ``marts`` shows bi_reader nothing.
"""

from __future__ import annotations

from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated

ROLES = ("loader", "transformer", "bi_reader", "auditor", "steward")
PIPELINE_SCHEMAS = ("raw", "pii", "analytics", "staging", "intermediate", "marts", "published", "history", "audit")
#: The role dbt runs as (dbt_project/profiles.yml and the Cosmos profile)
DBT_ROLE = "transformer"


def _grants() -> str:
    schemas = ", ".join(PIPELINE_SCHEMAS)
    return f"""
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
-- a correction's value waiting to be carried out is personal data, even encrypted
revoke select on audit.dsr_request_values from auditor;

-- every load drops the rows of erased people (tierhouse.ingest.loaders), so it reads the ledger
grant usage on schema audit to loader;
grant select on audit.erasure_ledger to loader;

grant usage on schema pii, audit to steward;
grant execute on function audit.log_personal_data_read(text, text, text, uuid), pii.read_customer(uuid),
    pii.customer_names(uuid) to steward;
"""


def apply(url: WarehouseUrl) -> None:
    """Grant each role its rights on every schema, table and function of the pipeline, dbt's
    relations included (revoking whatever else they held); idempotent. It creates nothing: the
    roles, schemas, the audit tables, the logged read path and the BI views are migrations."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        # two runs granting on the same objects at once fail on the same catalog rows
        cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.privacy.access'))")
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
    granted its roles their rights (``apply``, which the DAGs run before loading); a database
    without the grants — a unit test's, or one being set up — keeps the login's rights. Returns
    whether the role is now in force."""
    cur.execute(
        "select case when exists (select 1 from pg_roles where rolname = %s)"
        " then has_schema_privilege(%s, 'raw', 'USAGE') else false end",
        (role, role),
    )
    if cur.fetchone()[0]:
        cur.execute(f"set local role {role}")
        return True
    return False
