"""Reading the grading history auditors rely on: every grade of a customer on every list with
the run that produced it, every recorded list, and the tier shares the drift audit compares
against. The history is written by :mod:`tierhouse.lifecycle.publish` (and the review, appeal and
re-grade modules through it); its tables are warehouse migration ``0003_history_and_published``.
"""

from __future__ import annotations

from datetime import date

from tierhouse.periods import add_months
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import fetch_dicts


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
