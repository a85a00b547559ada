"""P1 Art. 9: every quarter, grades are adjusted on the last three months of behaviour.

The quarterly list starts from the list in force for the quarter's last month (the confirmed list
when the policy has a review step) and applies the policy file's re-grade rules, which dbt
evaluates in ``marts.fct_regrade_signals`` (e.g. potential -> high on spend and frequency
rising over the last three months; top -> high when frequency and spend both fall). Every move
is a ``history.tier_changes`` row with the rule and the numbers behind it; the list is recorded
and published like any other, once.
"""

from __future__ import annotations

import logging
from datetime import date

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import Policy, UnknownPolicy, discover
from tierhouse.lifecycle import publish
from tierhouse.lifecycle.review import has_review
from tierhouse.periods import PeriodError, is_quarter_end
from tierhouse.privacy.deidentification import GateLogins
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated

log = logging.getLogger(__name__)

_EVIDENCE = (
    "recent_from", "recent_spend", "prior_spend", "spend_growth", "recent_orders", "prior_orders", "order_growth",
    "recent_special_orders", "prior_special_orders", "special_order_growth", "recent_active_months",
)  # fmt: skip


class RegradeNotReady(TierhouseError, RuntimeError):
    """The list the quarterly re-grade builds on does not exist yet (e.g. still under review)."""


def regraded_policies(policies: list[Policy] | None = None) -> list[Policy]:
    """The newest version of each policy whose file has re-grade rules."""
    newest: dict[str, Policy] = {}
    for graded_policy in policies if policies is not None else discover():
        if graded_policy.regrade_rules and graded_policy.version >= newest.get(graded_policy.name, graded_policy).version:
            newest[graded_policy.name] = graded_policy
    return list(newest.values())


def base_run(cur, graded_policy: Policy, period_month: date) -> tuple[str, str]:
    """The list the re-grade starts from: the newest list of the month, which must be the confirmed
    one (or a later appeal list) when the policy reviews its lists first."""
    current = publish.current_run(cur, graded_policy.name, period_month)
    if current is None:
        raise RegradeNotReady(f"no list of {graded_policy.name} for {period_month:%Y-%m} yet")
    if has_review(graded_policy) and current[1] == "initial":
        raise RegradeNotReady(f"the {period_month:%Y-%m} list of {graded_policy.name} is still under review")
    return current


def base_ready(url: WarehouseUrl, policy_name: str, period_month: date) -> bool:
    """Whether the quarterly re-grade of the policy can start (for the DAG's sensor)."""
    graded_policy = _policy(policy_name)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        try:
            base_run(cur, graded_policy, period_month)
        except RegradeNotReady as exc:
            log.info("%s", exc)
            return False
    return True


def _policy(name: str) -> Policy:
    for graded_policy in regraded_policies():
        if graded_policy.name == name:
            return graded_policy
    raise UnknownPolicy(f"{name!r} has no re-grade rules in its policy file")


def regrade_quarter(
    url: WarehouseUrl, policy_name: str, period_month: date, airflow_run_id: str | None = None,
    logins: GateLogins | None = None,
) -> publish.PublishOutcome:  # fmt: skip
    """Record and publish the quarterly list for the quarter ending with ``period_month`` — once,
    after the de-identification gate has passed, run as ``logins`` (by default the gate's and the
    steward's logins beside ``url``).

    A rerun with the same base list and signals changes nothing; different results for a quarter
    already re-graded become a restatement candidate, like a late change to an initial list.
    """
    if not is_quarter_end(period_month):
        raise PeriodError(f"{period_month:%Y-%m} is not the last month of a quarter")
    graded_policy = _policy(policy_name)
    publish.require_deidentified(
        logins or GateLogins.beside(url), f"the {period_month:%Y-%m} quarterly re-grade of {policy_name}"
    )
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"regrade:{policy_name}:{period_month}",))
        cur.execute(
            "select run_id, snapshot_hash from history.grading_runs"
            " where policy = %s and period_month = %s and list_kind = 'quarterly' order by created_at limit 1",
            (policy_name, period_month),
        )
        existing = cur.fetchone()
        base_id, base_kind = _existing_base(cur, existing[0]) if existing else base_run(cur, graded_policy, period_month)
        rows = publish.snapshot_rows(cur, base_id)
        cur.execute(
            f"select customer_key, rule, from_tier, to_tier, {', '.join(_EVIDENCE)} from marts.fct_regrade_signals"
            " where policy = %s and policy_version = %s and period_month = %s and rule_holds order by customer_key, rule",
            (policy_name, graded_policy.version, period_month),
        )
        signals = cur.fetchall()
        ranks = {tier.code: tier.rank for tier in graded_policy.tiers}
        changes = []
        for customer_key, rule, from_tier, to_tier, *numbers in signals:
            row = rows.get(customer_key)
            if row is None or row[1] != from_tier:
                continue
            evidence = {"rule": rule, **dict(zip(_EVIDENCE, numbers, strict=True))}
            changes.append((customer_key, from_tier, to_tier, evidence))
            row[1], row[2], row[3] = to_tier, ranks[to_tier], f"art9 {rule}: {from_tier} -> {to_tier}"
        snapshot = [tuple(row) for row in rows.values()]
        cur.execute("select snapshot_hash, policy_sha256 from history.grading_runs where run_id = %s", (base_id,))
        base_hash, policy_sha = cur.fetchone()
        fingerprint = publish.digest([(base_hash, policy_sha), *signals])
        snapshot_hash = publish.digest(snapshot)
        if existing and existing[1] == snapshot_hash:
            return publish.PublishOutcome(str(existing[0]), "unchanged", len(snapshot), snapshot_hash)
        if existing:
            publish.record_restatement(cur, str(existing[0]), fingerprint, snapshot_hash, snapshot, airflow_run_id)
            return publish.PublishOutcome(str(existing[0]), "restatement_candidate", len(snapshot), snapshot_hash)
        cur.execute(
            "select max(dbt_invocation_id) from marts.fct_regrade_signals where policy = %s and period_month = %s",
            (policy_name, period_month),
        )
        (dbt_invocation_id,) = cur.fetchone()
        run_id, _ = publish.record_run(
            cur, policy_name, graded_policy.version, period_month, "quarterly", airflow_run_id, policy_sha, fingerprint, snapshot,
            dbt_invocation_id,
        )  # fmt: skip
        publish.record_changes(
            cur, run_id, "art9_quarterly", [(k, f, t, {**e, "base_list": base_kind}) for k, f, t, e in changes]
        )
        publish.publish_run(cur, run_id)
        log.info("%s %s quarterly list: %d of %d customers moved", policy_name, period_month, len(changes), len(snapshot))
        return publish.PublishOutcome(run_id, "published", len(snapshot), snapshot_hash)


def _existing_base(cur, quarterly_run_id) -> tuple[str, str]:
    """The list a recorded quarterly list was built from: the newest list recorded before it."""
    cur.execute(
        """
        select b.run_id, b.list_kind from history.grading_runs as q
        join history.grading_runs as b
            on b.policy = q.policy and b.period_month = q.period_month and b.created_at < q.created_at
            and b.list_kind in ('initial', 'confirmed', 'approved', 'appeal', 'restatement')
        where q.run_id = %s
        order by b.created_at desc limit 1
        """,
        (quarterly_run_id,),
    )
    row = cur.fetchone()
    return str(row[0]), row[1]
