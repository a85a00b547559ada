"""Art. 8: customer service reviews the initial list for 5 working days; then the confirmed list
(确认清单) is published and is what BI tools read. Unreviewed customers keep their initial grade.

Reviews are appended to ``history.reviews`` (reviewer, new tier and a mandatory reason); the
confirmed list is a new run in the history whose changes are recorded in ``history.tier_changes``.

A policy whose calendar says ``approval_required`` (P2, seed 001: "评估结果经相关部门审核确认后")
is never confirmed by time-out: its list takes effect only when an approver records the approval
(:func:`approve`, ``history.approvals``), which publishes it, reviews applied, as an ``approved``
list. An unapproved list past its window is overdue (:func:`check_approvals`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import Policy, discover
from tierhouse.lifecycle import publish
from tierhouse.lifecycle.workdays import policy_deadline
from tierhouse.periods import CHINA
from tierhouse.privacy import free_text
from tierhouse.privacy.deidentification import GateLogins
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated

DEFAULT_REVIEW_WORKING_DAYS = 5
#: The lists that close a review: the time-out confirmation, or an approver's approval
CLOSING_KINDS = ("confirmed", "approved")


class ReviewError(TierhouseError, ValueError):
    """A review that cannot be accepted; the message says why."""


class ApprovalsOverdue(TierhouseError, RuntimeError):
    """Lists past their window without the approval their policy requires (P2)."""


def _policy(policies: dict[tuple[str, int], Policy], name: str, version: int) -> Policy:
    try:
        return policies[(name, version)]
    except KeyError:
        raise ReviewError(f"no policy file for {name} v{version}") from None


def has_review(graded_policy: Policy) -> bool:
    """Policies whose calendar asks for a review window before a list is confirmed (P1 Art. 8, P2)."""
    return "review_working_days" in graded_policy.calendar


def requires_approval(graded_policy: Policy) -> bool:
    """Policies whose lists take effect only once an approver approves them (P2), never by time-out."""
    return bool(graded_policy.calendar.get("approval_required"))


def review_window(url: WarehouseUrl, policy: str, period_month: date) -> tuple[datetime, date]:
    """When the period's initial list was published and the last day reviews are accepted."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        lists = _initial_lists(cur, policy, period_month)
    if not lists:
        raise ReviewError(f"no initial list of {policy} for {period_month:%Y-%m}")
    return lists[0].published_at, lists[0].deadline


def review_deadline(graded_policy: Policy, published_at: datetime) -> date:
    """The last day reviews are accepted: N working days after the initial list was published."""
    return policy_deadline(graded_policy, "review_working_days", DEFAULT_REVIEW_WORKING_DAYS, published_at)


@dataclass(frozen=True)
class InitialList:
    run_id: str
    policy: Policy
    period_month: date
    published_at: datetime

    @property
    def deadline(self) -> date:
        return review_deadline(self.policy, self.published_at)


def _initial_lists(
    cur, policy: str | None = None, period_month: date | None = None, unconfirmed_only: bool = False
) -> list[InitialList]:
    cur.execute(
        """
        select i.run_id, i.policy, i.policy_version, i.period_month, i.created_at
        from history.grading_runs as i
        where i.list_kind = 'initial'
          and (%s::text is null or i.policy = %s) and (%s::date is null or i.period_month = %s)
          and (not %s or not exists (
                select 1 from history.grading_runs as c
                where c.list_kind = any(%s) and c.policy = i.policy and c.period_month = i.period_month))
        order by i.period_month, i.policy
        """,
        (policy, policy, period_month, period_month, unconfirmed_only, list(CLOSING_KINDS)),
    )
    # the policy files are read once per call, not once per list
    policies = {(p.name, p.version): p for p in discover()}
    return [
        InitialList(str(run_id), _policy(policies, name, version), month, created)
        for run_id, name, version, month, created in cur.fetchall()
    ]


def _initial_list(cur, policy: str, period_month: date, to: str) -> InitialList:
    lists = _initial_lists(cur, policy, period_month)
    if not lists:
        raise ReviewError(f"no initial list of {policy} for {period_month:%Y-%m} to {to}")
    return lists[0]


def add_review(
    url: WarehouseUrl, policy: str, period_month: date, customer_key: str, new_tier: str, reviewer: str, reason: str,
    now: datetime | None = None, logins: GateLogins | None = None,
) -> str:  # fmt: skip
    """Record a reviewer's change to one customer's grade on an initial list still under review.
    The reviewer and reason are checked for personal data first (customer names read as
    ``logins.steward``; by default the steward's login beside ``url``)."""
    now = now or datetime.now(CHINA)
    if not reason.strip():
        raise ReviewError("a review needs a reason (Art. 8)")
    if not reviewer.strip():
        raise ReviewError("a review needs the reviewer's name")
    free_text.check_entry((logins or GateLogins.beside(url)).steward, reviewer=reviewer, reason=reason)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        initial = _initial_list(cur, policy, period_month, "review")
        if not has_review(initial.policy):
            raise ReviewError(f"{policy} has no review step in its calendar")
        cur.execute(
            "select list_kind from history.grading_runs where list_kind = any(%s) and policy = %s and period_month = %s",
            (list(CLOSING_KINDS), policy, period_month),
        )
        closed = cur.fetchone()
        if closed:
            raise ReviewError(f"the {period_month:%Y-%m} list of {policy} is already {closed[0]}; use an appeal instead")
        if now.astimezone(CHINA).date() > initial.deadline:
            raise ReviewError(f"the review window closed on {initial.deadline} ({period_month:%Y-%m} list of {policy})")
        tiers = initial.policy.tier_ranks
        if new_tier not in tiers:
            raise ReviewError(f"{new_tier!r} is not a tier of {policy} v{initial.policy.version}; one of {sorted(tiers)}")
        cur.execute(
            "select 1 from history.tier_snapshots where run_id = %s and customer_key = %s", (initial.run_id, customer_key)
        )
        if not cur.fetchone():
            raise ReviewError(f"customer {customer_key!r} is not on the {period_month:%Y-%m} list of {policy}")
        review_id = str(uuid.uuid4())
        cur.execute(
            "insert into history.reviews (review_id, policy, period_month, customer_key, reviewer, new_tier, reason, created_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (review_id, policy, period_month, customer_key, reviewer.strip(), new_tier, reason.strip(), now),
        )
        return review_id


def confirm_due_lists(
    url: WarehouseUrl, today: date, airflow_run_id: str | None = None, logins: GateLogins | None = None
) -> list[publish.PublishOutcome]:
    """Confirm and publish every initial list whose review window closed before ``today``, once
    the de-identification gate has passed, run as ``logins`` (by default the gate's and the
    steward's logins beside ``url``)."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        due = [i for i in _initial_lists(cur, unconfirmed_only=True) if _confirms_by_time_out(i, today)]
    if not due:
        return []
    publish.require_deidentified(logins or GateLogins.beside(url), "confirming the reviewed lists")
    outcomes = []
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        for initial in _initial_lists(cur, unconfirmed_only=True):
            if not _confirms_by_time_out(initial, today):
                continue
            cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"confirm:{initial.policy.name}:{initial.period_month}",))
            outcomes.append(_confirm(cur, initial, airflow_run_id))
    return outcomes


def _confirms_by_time_out(initial: InitialList, today: date) -> bool:
    return has_review(initial.policy) and not requires_approval(initial.policy) and today > initial.deadline


def _confirm(cur, initial: InitialList, airflow_run_id: str | None, list_kind: str = "confirmed") -> publish.PublishOutcome:
    rows = publish.snapshot_rows(cur, initial.run_id)
    cur.execute(
        """
        select distinct on (customer_key) review_id, customer_key, reviewer, new_tier, reason, created_at
        from history.reviews
        where policy = %s and period_month = %s and created_at::date <= %s
        order by customer_key, created_at desc
        """,
        (initial.policy.name, initial.period_month, initial.deadline),
    )
    reviews = cur.fetchall()
    ranks = initial.policy.tier_ranks
    changes = []
    for review_id, customer_key, reviewer, new_tier, reason, created_at in reviews:
        row = rows[customer_key]
        if row[1] != new_tier:
            changes.append(
                (
                    customer_key,
                    row[1],
                    new_tier,
                    {"review_id": review_id, "reviewer": reviewer, "reason": reason, "reviewed_at": created_at.isoformat()},
                )
            )
        row[1], row[2], row[3] = new_tier, ranks[new_tier], publish.staff_decision("art8_review", reviewer, reason)
    snapshot = [tuple(row) for row in rows.values()]
    cur.execute("select input_fingerprint, policy_sha256 from history.grading_runs where run_id = %s", (initial.run_id,))
    initial_fingerprint, policy_sha = cur.fetchone()
    fingerprint = publish.digest([(initial_fingerprint,), *[tuple(str(v) for v in r) for r in reviews]])
    run_id, snapshot_hash = publish.record_run(
        cur,
        initial.policy.name,
        initial.policy.version,
        initial.period_month,
        list_kind,
        airflow_run_id,
        policy_sha,
        fingerprint,
        snapshot,
    )
    publish.record_changes(cur, run_id, "art8_review", changes)
    publish.publish_run(cur, run_id)
    return publish.PublishOutcome(run_id, list_kind, len(snapshot), snapshot_hash)


@dataclass(frozen=True)
class ApprovalState:
    policy: str
    period_month: date
    deadline: date
    status: str  # awaiting | overdue | approved | approved_late
    approver: str | None = None
    approved_at: datetime | None = None
    comment: str | None = None


def approval_states(url: WarehouseUrl, today: date | None = None) -> list[ApprovalState]:
    """Every initial list of a policy that requires approval: awaiting it (within the window),
    overdue (past the window, still not in force), or approved (on time or late)."""
    today = today or datetime.now(CHINA).date()
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        lists = [i for i in _initial_lists(cur) if requires_approval(i.policy)]
        cur.execute("select policy, period_month, approver, approved_at, comment from history.approvals")
        approvals = {(row[0], row[1]): row[2:] for row in cur.fetchall()}
    states = []
    for initial in lists:
        found = approvals.get((initial.policy.name, initial.period_month))
        if found:
            approver, approved_at, comment = found
            on_time = approved_at.astimezone(CHINA).date() <= initial.deadline
            states.append(
                ApprovalState(
                    initial.policy.name,
                    initial.period_month,
                    initial.deadline,
                    "approved" if on_time else "approved_late",
                    approver,
                    approved_at,
                    comment,
                )  # fmt: skip
            )
        else:
            status = "overdue" if today > initial.deadline else "awaiting"
            states.append(ApprovalState(initial.policy.name, initial.period_month, initial.deadline, status))
    return states


def check_approvals(url: WarehouseUrl, today: date | None = None) -> dict[str, int]:
    """Count the approval-required lists by status; raise ApprovalsOverdue naming every list past
    its window without an approval (it is not in force: the previous list stays)."""
    states = approval_states(url, today)
    overdue = [s for s in states if s.status == "overdue"]
    if overdue:
        raise ApprovalsOverdue(
            f"{len(overdue)} list(s) past their window without the approval their policy requires: "
            + "; ".join(f"{s.policy} {s.period_month:%Y-%m} (window closed {s.deadline})" for s in overdue)
        )
    return dict(Counter(state.status for state in states))


def approve(
    url: WarehouseUrl, policy: str, period_month: date, approver: str, comment: str,
    now: datetime | None = None, airflow_run_id: str | None = None, logins: GateLogins | None = None,
) -> publish.PublishOutcome:  # fmt: skip
    """Record an approver's approval of a list whose policy requires one and publish it, the
    reviews recorded in its window applied, as an ``approved`` list: once, after the approver
    and comment passed the free-text check and the de-identification gate passed (both as
    ``logins``, by default the logins beside ``url``)."""
    now = now or datetime.now(CHINA)
    if not approver.strip():
        raise ReviewError("an approval needs the approver's name")
    if not comment.strip():
        raise ReviewError("an approval needs a comment")
    logins = logins or GateLogins.beside(url)
    free_text.check_entry(logins.steward, approver=approver, comment=comment)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        initial = _approvable(cur, policy, period_month)
    publish.require_deidentified(logins, f"approving the {period_month:%Y-%m} list of {policy}")
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"confirm:{policy}:{period_month}",))
        _approvable(cur, policy, period_month)  # again, under the lock: one approval however many ask at once
        outcome = _confirm(cur, initial, airflow_run_id, "approved")
        cur.execute(
            "insert into history.approvals (approval_id, policy, period_month, initial_run_id, approver, comment, run_id,"
            " approved_at) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (str(uuid.uuid4()), policy, period_month, initial.run_id, approver.strip(), comment.strip(), outcome.run_id, now),
        )
    return outcome


def _approvable(cur, policy: str, period_month: date) -> InitialList:
    initial = _initial_list(cur, policy, period_month, "approve")
    if not requires_approval(initial.policy):
        raise ReviewError(f"{policy} v{initial.policy.version} requires no approval; its lists are confirmed after review")
    cur.execute(
        "select approver, approved_at from history.approvals where policy = %s and period_month = %s",
        (policy, period_month),
    )
    found = cur.fetchone()
    if found:
        raise ReviewError(
            f"the {period_month:%Y-%m} list of {policy} was already approved by {found[0]}"
            f" on {found[1].astimezone(CHINA):%Y-%m-%d %H:%M}"
        )
    return initial
