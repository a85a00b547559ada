"""Recording and publishing lists: the grading history auditors rely on, append-only and reproducible.

Every list that is published (the month-end initial list today; confirmed, quarterly and
appeal lists build on the same tables) is recorded as a run with its policy version, the
Airflow run, the code version, a fingerprint of the exact inputs and a hash of the exact
result, and one snapshot row per customer. Nothing here is ever updated or deleted: triggers
refuse it. A list already published for a period is never replaced: different results for it
(late data) are recorded as a restatement candidate for a person to decide on. The tables and
their triggers are warehouse migration ``0003_history_and_published``.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.gates import CheckpointOutcome
from tierhouse.grading.policy import Policy, discover
from tierhouse.privacy.deidentification import GateLogins
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import to_json

SNAPSHOT_COLUMNS = (
    "customer_key", "tier", "tier_rank", "decided_by", "composite_score",
    "consumption_attribute", "demand_feature", "cooperation_feature",
)  # fmt: skip


#: How a list records a grade staff decided, in ``decided_by``: the reason code and the prefix of
#: the text (who and why) that history keeps for auditors. ``published.customer_tiers``, which
#: BI reads, gets the code instead of the text: staff free text never reaches BI. Grades the
#: rules decided (dbt's "top: all conditions met", the quarterly "art9 <rule>: a -> b") hold no
#: free text and are published as they are. decided_by is in the snapshot, so the history keeps
#: the text and every snapshot hash stays what it was.
STAFF_DECISIONS = {"art8_review": "review by ", "art9_appeal": "appeal answered by "}


def staff_decision(code: str, who: str, why: str) -> str:
    """decided_by for a grade staff set, as history records it: ``review by Li Wei: <reason>``."""
    return f"{STAFF_DECISIONS[code]}{who}: {why}"


def _canonical(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def digest(rows: list[tuple]) -> str:
    """SHA-256 over rows in a canonical text form: equal data, equal hash, on any machine."""
    sha = hashlib.sha256()
    for row in rows:
        sha.update(("\t".join(_canonical(v) for v in row) + "\n").encode())
    return sha.hexdigest()


def code_version() -> str:
    """The git commit of the running code, or what the deployment says it is."""
    import os

    if os.environ.get("TIERHOUSE_CODE_VERSION"):
        return os.environ["TIERHOUSE_CODE_VERSION"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class PublishError(TierhouseError, RuntimeError):
    """The candidate list cannot be published: dbt built no rows for it, or mixed policy versions."""


@dataclass(frozen=True)
class PublishOutcome:
    run_id: str
    status: str  # published | unchanged | restatement_candidate
    rows: int
    snapshot_hash: str


def publish_initial_list(url: WarehouseUrl, policy: str, period_month: date, airflow_run_id: str | None = None) -> PublishOutcome:
    """Record the period's initial list and publish it, in one transaction — once.

    Rerunning a period with the same inputs changes nothing; different results for a period
    already published become a restatement candidate and the published list stays as it was.
    """
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"publish:{policy}:{period_month}",))
        cur.execute(
            f"select policy_version, {', '.join(SNAPSHOT_COLUMNS)}, dbt_invocation_id from marts.fct_customer_tiers"
            " where policy = %s and period_month = %s order by customer_key",
            (policy, period_month),
        )
        rows = cur.fetchall()
        candidate = [row[:-1] for row in rows]
        dbt_invocation_id = rows[0][-1] if rows else None
        if not candidate:
            raise PublishError(f"nothing to publish for {policy} {period_month:%Y-%m}: marts.fct_customer_tiers has no rows")
        versions = {row[0] for row in candidate}
        if len(versions) != 1:
            raise PublishError(f"{policy} {period_month:%Y-%m} mixes policy versions {sorted(versions)}")
        (version,) = versions
        snapshot = [row[1:] for row in candidate]
        snapshot_hash = digest(snapshot)
        cur.execute("select sha256 from raw.policy_versions where policy = %s and version = %s", (policy, version))
        policy_sha = cur.fetchone()[0]
        cur.execute(
            "select * from marts.fct_customer_features where policy = %s and period_month = %s order by customer_period_id",
            (policy, period_month),
        )
        input_fingerprint = digest([(policy_sha,), *cur.fetchall()])

        cur.execute(
            "select run_id, snapshot_hash from history.grading_runs"
            " where policy = %s and policy_version = %s and period_month = %s and list_kind = 'initial'",
            (policy, version, period_month),
        )
        existing = cur.fetchone()
        if existing and existing[1] == snapshot_hash:
            return PublishOutcome(str(existing[0]), "unchanged", len(snapshot), snapshot_hash)
        if existing:
            record_restatement(cur, str(existing[0]), input_fingerprint, snapshot_hash, snapshot, airflow_run_id)
            return PublishOutcome(str(existing[0]), "restatement_candidate", len(snapshot), snapshot_hash)

        run_id, _ = record_run(
            cur, policy, version, period_month, "initial", airflow_run_id, policy_sha, input_fingerprint, snapshot,
            dbt_invocation_id,
        )  # fmt: skip
        publish_run(cur, run_id)
        return PublishOutcome(run_id, "published", len(snapshot), snapshot_hash)


def record_restatement(
    cur, published_run_id: str, input_fingerprint: str, snapshot_hash: str, snapshot: list[tuple], airflow_run_id: str | None
) -> str:
    """Different results for a list already recorded: kept whole for a person to decide on
    (:mod:`tierhouse.lifecycle.restatements`), never applied by itself. The same results again
    are the candidate already recorded (decided or not): reruns do not pile up candidates."""
    from psycopg2.extras import execute_values

    cur.execute(
        "select c.candidate_id from history.restatement_candidates as c"
        " where c.published_run_id = %s and c.snapshot_hash = %s"
        " and exists (select 1 from history.restatement_snapshots as s where s.candidate_id = c.candidate_id)",
        (published_run_id, snapshot_hash),
    )
    found = cur.fetchone()
    if found:
        return str(found[0])
    cur.execute("select customer_key, tier from history.tier_snapshots where run_id = %s", (published_run_id,))
    published = dict(cur.fetchall())
    changed = sum(1 for row in snapshot if published.get(row[0]) != row[1]) + len(set(published) - {r[0] for r in snapshot})
    candidate_id = str(uuid.uuid4())
    cur.execute(
        "insert into history.restatement_candidates (candidate_id, published_run_id, input_fingerprint, snapshot_hash,"
        " changed_customers, airflow_run_id) values (%s, %s, %s, %s, %s, %s)",
        (candidate_id, published_run_id, input_fingerprint, snapshot_hash, changed, airflow_run_id),
    )
    execute_values(
        cur,
        f"insert into history.restatement_snapshots (candidate_id, {', '.join(SNAPSHOT_COLUMNS)}) values %s",
        [(candidate_id, *row) for row in snapshot],
        page_size=5000,
    )
    return candidate_id


def record_run(
    cur,
    policy: str,
    version: int,
    period_month: date,
    list_kind: str,
    airflow_run_id: str | None,
    policy_sha: str,
    input_fingerprint: str,
    snapshot: list[tuple],
    dbt_invocation_id: str | None = None,
) -> tuple[str, str]:
    """Record one list (the dbt invocation that built its inputs, when dbt built them)."""
    run_id, snapshot_hash = str(uuid.uuid4()), digest(snapshot)
    cur.execute(
        "insert into history.grading_runs (run_id, policy, policy_version, period_month, list_kind, airflow_run_id,"
        " dbt_invocation_id, code_version, policy_sha256, input_fingerprint, snapshot_hash, row_count)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, policy, version, period_month, list_kind, airflow_run_id, dbt_invocation_id, code_version(), policy_sha,
         input_fingerprint, snapshot_hash, len(snapshot)),
    )  # fmt: skip
    cur.executemany(
        f"insert into history.tier_snapshots (run_id, {', '.join(SNAPSHOT_COLUMNS)})"
        f" values (%s, {', '.join(['%s'] * len(SNAPSHOT_COLUMNS))})",
        [(run_id, *row) for row in snapshot],
    )
    return run_id, snapshot_hash


def require_deidentified(logins: GateLogins, before: str) -> CheckpointOutcome:
    """P1 Art. 13 before every publish path, not only grading's: the de-identification gate, run
    as its own SELECT-only login (customer names read as the steward, logged), raises
    QualityGateFailed on a leak."""
    from tierhouse.privacy import deidentification, dsr

    names = dsr.customer_names(logins.steward, "deidentification_gate")
    return deidentification.gate(logins.gate, names)


def initial_list_awaits_staff(graded_policy: Policy) -> bool:
    """Whether the policy's initial list must first be reviewed (P1 Art. 8) or approved (P2) before
    it is in force; a policy with neither (P3) acts on its initial list."""
    calendar = graded_policy.calendar
    return "review_working_days" in calendar or bool(calendar.get("approval_required"))


def list_in_force(policy: str, version: int, list_kind: str) -> bool:
    """Whether a list of this kind is in force, what BI may read (``published.customer_tiers.in_force``)."""
    if list_kind != "initial":
        return True
    files = [p for p in discover() if p.name == policy and p.version == version]
    if not files:
        raise PublishError(f"no policy file for {policy} v{version}: cannot tell whether its initial list is in force")
    return not initial_list_awaits_staff(files[0])


def publish_run(cur, run_id: str) -> None:
    """Make a recorded run the published list of its policy and period (inside the caller's
    transaction); BI reads it only if it is in force (migration 0500's row-level policy)."""
    cur.execute("select policy, policy_version, period_month, list_kind from history.grading_runs where run_id = %s", (run_id,))
    policy, version, period_month, list_kind = cur.fetchone()
    cur.execute("delete from published.customer_tiers where policy = %s and period_month = %s", (policy, period_month))
    cur.execute(
        f"""
        insert into published.customer_tiers
            (policy, policy_version, period_month, list_kind, in_force, tier_label, {", ".join(SNAPSHOT_COLUMNS)},
             airflow_run_id)
        select r.policy, r.policy_version, r.period_month, r.list_kind, %(in_force)s, t.tier_label,
               {", ".join(_published_decided_by() if c == "decided_by" else "s." + c for c in SNAPSHOT_COLUMNS)},
               r.airflow_run_id
        from history.tier_snapshots as s
        join history.grading_runs as r using (run_id)
        left join marts.dim_policy_tiers as t
            on t.policy = r.policy and t.policy_version = r.policy_version and t.tier = s.tier
        where s.run_id = %(run_id)s
        """,
        {
            "run_id": run_id,
            "in_force": list_in_force(policy, version, list_kind),
            **{code: prefix + "%" for code, prefix in STAFF_DECISIONS.items()},
        },
    )


def _published_decided_by() -> str:
    """SQL for the published decided_by: a staff decision's reason code, anything else as recorded."""
    cases = " ".join(f"when s.decided_by like %({code})s then '{code}'" for code in STAFF_DECISIONS)
    return f"case {cases} else s.decided_by end"


def current_run(cur, policy: str, period_month: date) -> tuple[str, str] | None:
    """The run whose list is published for the policy and period (the newest one), with its kind."""
    cur.execute(
        "select run_id, list_kind from history.grading_runs where policy = %s and period_month = %s"
        " order by created_at desc, run_id limit 1",
        (policy, period_month),
    )
    row = cur.fetchone()
    return (str(row[0]), row[1]) if row else None


def snapshot_rows(cur, run_id: str) -> dict[str, list]:
    """A recorded list, customer key to its snapshot columns (mutable, for a derived list)."""
    cur.execute(
        f"select {', '.join(SNAPSHOT_COLUMNS)} from history.tier_snapshots where run_id = %s order by customer_key", (run_id,)
    )
    return {row[0]: list(row) for row in cur.fetchall()}


def record_changes(cur, run_id: str, rule: str, changes: list[tuple[str, str, str, dict]]) -> None:
    """One tier_changes row per customer whose tier a derived list changed: from, to, rule, evidence."""
    cur.executemany(
        "insert into history.tier_changes (run_id, customer_key, from_tier, to_tier, rule, evidence) values (%s, %s, %s, %s, %s, %s)",
        [(run_id, key, old, new, rule, to_json(evidence)) for key, old, new, evidence in changes],
    )
