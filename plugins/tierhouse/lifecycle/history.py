"""The grading history auditors rely on: append-only, reproducible, explained.

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
from tierhouse.periods import add_months
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import fetch_dicts, to_json

SNAPSHOT_COLUMNS = (
    "customer_key", "tier", "tier_rank", "decided_by", "composite_score",
    "consumption_attribute", "demand_feature", "cooperation_feature",
)  # fmt: skip


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
    """Different results for a list already recorded: kept for a person to decide on, never applied."""
    cur.execute("select customer_key, tier from history.tier_snapshots where run_id = %s", (published_run_id,))
    published = dict(cur.fetchall())
    changed = sum(1 for row in snapshot if published.get(row[0]) != row[1]) + len(set(published) - {r[0] for r in snapshot})
    candidate_id = str(uuid.uuid4())
    cur.execute(
        "insert into history.restatement_candidates (candidate_id, published_run_id, input_fingerprint, snapshot_hash,"
        " changed_customers, airflow_run_id) values (%s, %s, %s, %s, %s, %s)",
        (candidate_id, published_run_id, input_fingerprint, snapshot_hash, changed, airflow_run_id),
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


def publish_run(cur, run_id: str) -> None:
    """Make a recorded run the published list of its policy and period (inside the caller's transaction)."""
    cur.execute("select policy, period_month from history.grading_runs where run_id = %s", (run_id,))
    policy, period_month = cur.fetchone()
    cur.execute("delete from published.customer_tiers where policy = %s and period_month = %s", (policy, period_month))
    cur.execute(
        f"""
        insert into published.customer_tiers
            (policy, policy_version, period_month, list_kind, tier_label, {", ".join(SNAPSHOT_COLUMNS)}, airflow_run_id)
        select r.policy, r.policy_version, r.period_month, r.list_kind, t.tier_label, {", ".join("s." + c for c in SNAPSHOT_COLUMNS)},
               r.airflow_run_id
        from history.tier_snapshots as s
        join history.grading_runs as r using (run_id)
        left join marts.dim_policy_tiers as t
            on t.policy = r.policy and t.policy_version = r.policy_version and t.tier = s.tier
        where s.run_id = %s
        """,
        (run_id,),
    )


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


def previous_distribution(url: WarehouseUrl, policy: str, period_month: date, tiers: list[str]) -> dict | None:
    """The tier shares of the policy's newest published initial list from the three months before
    (the month before for monthly policies, the quarter before for quarterly ones), smoothed so
    that an empty tier does not make the divergence infinite; None when there is none."""
    earliest = add_months(period_month, -3)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            """
            select s.tier, count(*)
            from history.tier_snapshots as s
            join history.grading_runs as r using (run_id)
            where r.run_id = (
                select run_id from history.grading_runs
                where policy = %s and list_kind = 'initial' and period_month >= %s and period_month < %s
                order by period_month desc limit 1)
            group by s.tier
            """,
            (policy, earliest, period_month.replace(day=1)),
        )
        counts = dict(cur.fetchall())
    if not counts:
        return None
    total = sum(counts.values()) + 0.5 * len(tiers)
    return {"values": tiers, "weights": [(counts.get(tier, 0) + 0.5) / total for tier in tiers]}


_CUSTOMER_EVENTS = """
select r.created_at as at, r.period_month, r.policy, 'grade' as event, r.list_kind as kind, s.tier,
       coalesce(c.rule || ' (from ' || coalesce(c.from_tier, '-') || '): ' || c.evidence::text, s.decided_by) as detail,
       r.policy_version, r.run_id::text, r.airflow_run_id, r.code_version, r.snapshot_hash
from history.tier_snapshots as s
join history.grading_runs as r using (run_id)
left join history.tier_changes as c on c.run_id = s.run_id and c.customer_key = s.customer_key
where s.customer_key = %(customer)s
union all
select v.created_at, v.period_month, v.policy, 'review', 'by ' || v.reviewer, v.new_tier, v.reason,
       null, v.review_id::text, null, null, null
from history.reviews as v
where v.customer_key = %(customer)s
union all
select a.received_at, a.period_month, a.policy, 'appeal', 'via ' || a.channel || ', due ' || a.due_on, null,
       a.request || ' (recorded by ' || a.recorded_by || ')', null, a.appeal_id::text, null, null, null
from history.appeals as a
where a.customer_key = %(customer)s
union all
select x.answered_at, a.period_month, a.policy, 'answer', x.outcome || ' by ' || x.answered_by, x.tier_after,
       x.basis || ' [was ' || x.tier_before || case when x.answered_at::date > a.due_on then ', answered late' else '' end
       || ']', null, coalesce(x.run_id::text, x.appeal_id::text), null, null, null
from history.appeal_answers as x
join history.appeals as a using (appeal_id)
where a.customer_key = %(customer)s
order by period_month, policy, at
"""


def customer_history(url: WarehouseUrl, customer_key: str) -> list[dict]:
    """Everything recorded about one customer's grades, oldest first: every grade on every list
    with the run that produced it (and the rule and evidence when a list changed it), every
    review, every appeal and its answer."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(_CUSTOMER_EVENTS, {"customer": customer_key})
        return fetch_dicts(cur)


def format_history(customer_key: str, rows: list[dict]) -> str:
    if not rows:
        return f"no recorded grades for {customer_key!r}"
    lines = [f"Grading history of {customer_key}"]
    for row in rows:
        when = f"{row['period_month']:%Y-%m} {row['policy']}"
        if row["event"] == "grade":
            lines.append(
                f"{when} v{row['policy_version']} {row['kind']:<9} {row['tier']:<10} {row['detail']}"
                f"  [run {row['run_id'][:8]}, airflow {row['airflow_run_id'] or '-'},"
                f" code {row['code_version'][:10]}, hash {row['snapshot_hash'][:12]}]"
            )
        else:
            tier = f" -> {row['tier']}" if row["tier"] else ""
            lines.append(
                f"{when} {row['event']:<6} {row['kind']}{tier}: {row['detail']}  [{row['at']:%Y-%m-%d %H:%M}, id {row['run_id'][:8]}]"
            )
    return "\n".join(lines)


def format_lists(url: WarehouseUrl) -> str:
    """Every recorded list, oldest period first: kind, size and how many grades it changed."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            """
            select r.period_month, r.policy, r.policy_version, r.list_kind, r.row_count, count(c.customer_key),
                   string_agg(distinct c.rule, ', '), r.snapshot_hash, r.created_at
            from history.grading_runs as r
            left join history.tier_changes as c using (run_id)
            group by r.run_id
            order by r.period_month, r.policy, r.created_at
            """
        )
        rows = cur.fetchall()
    lines = [
        "Recorded lists (history.grading_runs)",
        f"{'period':<8} {'policy':<15} {'kind':<10} {'customers':>9} {'changed':>8}  hash",
    ]
    for month, policy, version, kind, count, changed, rules, snapshot_hash, _ in rows:
        lines.append(
            f"{month:%Y-%m}  {policy + ' v' + str(version):<15} {kind:<10} {count:>9} {changed:>8}  {snapshot_hash[:12]}"
            + (f"  ({rules})" if rules else "")
        )
    return "\n".join(lines)
