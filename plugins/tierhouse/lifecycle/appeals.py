"""P1 Art. 9: a customer may ask for their grade to be re-checked; customer service answers
within 3 working days (mainland-China calendar) with the result and its basis.

An appeal is recorded against the list in force for a policy and month. The answer states the
outcome and a written basis; the grading basis dbt computed for the customer (every indicator,
score and rule check) is attached as evidence. A corrected grade becomes a new list of kind
``appeal`` with a ``tier_changes`` row, published like any other; an upheld grade changes no list.
Appeals past their due day without an answer are ``overdue`` in ``history.appeal_status`` and
fail the daily appeals DAG, which is how they alert.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import Policy, discover, newest
from tierhouse.lifecycle import publish
from tierhouse.lifecycle.workdays import policy_deadline
from tierhouse.periods import CHINA, TIMEZONE
from tierhouse.privacy import free_text
from tierhouse.privacy.deidentification import GateLogins
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import fetch_dicts, to_json

DEFAULT_APPEAL_WORKING_DAYS = 3


class AppealError(TierhouseError, ValueError):
    """An appeal or answer that cannot be accepted; the message says why."""


class AppealsOverdue(TierhouseError, RuntimeError):
    """Appeals past their due day without an answer."""


@dataclass(frozen=True)
class AppealState:
    appeal_id: str
    policy: str
    period_month: date
    customer_key: str
    received_at: datetime
    due_on: date
    status: str  # open | overdue | answered | answered_late
    outcome: str | None


def appeal_deadline(graded_policy: Policy, received_at: datetime) -> date:
    return policy_deadline(graded_policy, "appeal_working_days", DEFAULT_APPEAL_WORKING_DAYS, received_at)


def file_appeal(
    url: WarehouseUrl, policy: str, period_month: date, customer_key: str, request: str, recorded_by: str,
    channel: str = "service desk", received_at: datetime | None = None, logins: GateLogins | None = None,
) -> tuple[str, date]:  # fmt: skip
    """Record a customer's re-check request; returns its id and the day it must be answered by.

    ``request`` says what the customer disputes, in staff's words; it must not quote personal
    data (names, phone numbers), which stay in the restricted ``pii`` schema: the text is checked
    first (customer names read as ``logins.steward``; by default the steward's login beside ``url``).
    """
    received_at = received_at or datetime.now(CHINA)
    if not request.strip():
        raise AppealError("an appeal needs the customer's request")
    if not recorded_by.strip():
        raise AppealError("an appeal needs the name of whoever recorded it")
    try:
        graded_policy = newest(policy)
    except ValueError as exc:
        raise AppealError(str(exc)) from None
    if "appeal_working_days" not in graded_policy.calendar:
        raise AppealError(f"{policy} has no appeal step in its calendar")
    free_text.check_entry((logins or GateLogins.beside(url)).steward, request=request, recorded_by=recorded_by, channel=channel)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        current = publish.current_run(cur, policy, period_month)
        if current is None:
            raise AppealError(f"no list of {policy} for {period_month:%Y-%m}")
        cur.execute("select 1 from history.tier_snapshots where run_id = %s and customer_key = %s", (current[0], customer_key))
        if not cur.fetchone():
            raise AppealError(f"customer {customer_key!r} is not on the {period_month:%Y-%m} list of {policy}")
        cur.execute(
            "select appeal_id from history.appeal_status where policy = %s and period_month = %s and customer_key = %s"
            " and status in ('open', 'overdue')",
            (policy, period_month, customer_key),
        )
        if cur.fetchone():
            raise AppealError(f"customer {customer_key!r} already has an open appeal on the {period_month:%Y-%m} list")
        appeal_id, due_on = str(uuid.uuid4()), appeal_deadline(graded_policy, received_at)
        cur.execute(
            "insert into history.appeals (appeal_id, policy, period_month, customer_key, channel, request, recorded_by,"
            " received_at, due_on) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (appeal_id, policy, period_month, customer_key, channel.strip(), request.strip(), recorded_by.strip(), received_at,
             due_on),
        )  # fmt: skip
        return appeal_id, due_on


def grading_basis(cur, policy: str, period_month: date, customer_key: str) -> list[dict]:
    """The customer's grading basis for the period as dbt computed it (fct_grading_basis)."""
    cur.execute(
        "select * from marts.fct_grading_basis where policy = %s and period_month = %s and customer_key = %s"
        " order by grading_basis_id",
        (policy, period_month, customer_key),
    )
    return [
        {k: (str(v) if isinstance(v, Decimal | date) else v) for k, v in row.items() if v is not None} for row in fetch_dicts(cur)
    ]


def answer_appeal(
    url: WarehouseUrl, appeal_id: str, answered_by: str, basis: str, new_tier: str | None = None,
    airflow_run_id: str | None = None, answered_at: datetime | None = None, logins: GateLogins | None = None,
) -> publish.PublishOutcome | None:  # fmt: skip
    """Answer an appeal with its basis: upheld (``new_tier`` None or unchanged) or corrected,
    which records and publishes an ``appeal`` list for the period with the customer's new tier
    once the de-identification gate has passed. The text is checked and the gate run as
    ``logins`` (by default the gate's and the steward's logins beside ``url``)."""
    answered_at = answered_at or datetime.now(CHINA)
    if not basis.strip():
        raise AppealError("an answer needs its basis (Art. 9)")
    if not answered_by.strip():
        raise AppealError("an answer needs the name of whoever decided it")
    logins = logins or GateLogins.beside(url)
    free_text.check_entry(logins.steward, answered_by=answered_by, basis=basis)
    if new_tier is not None:  # a corrected grade publishes a list
        publish.require_deidentified(logins, f"answering appeal {appeal_id}")
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            "select a.policy, a.period_month, a.customer_key, a.due_on, x.appeal_id is not null"
            " from history.appeals as a left join history.appeal_answers as x using (appeal_id) where a.appeal_id = %s",
            (appeal_id,),
        )
        found = cur.fetchone()
        if found is None:
            raise AppealError(f"no appeal {appeal_id}")
        policy, period_month, customer_key, due_on, answered = found
        if answered:
            raise AppealError(f"appeal {appeal_id} is already answered")
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"publish:{policy}:{period_month}",))
        current = publish.current_run(cur, policy, period_month)
        if current is None:  # an appeal is only recorded against an existing list
            raise AppealError(f"no list of {policy} for {period_month:%Y-%m}")
        base_id, base_kind = current
        rows = publish.snapshot_rows(cur, base_id)
        current_tier = rows[customer_key][1]
        cur.execute("select policy_version, policy_sha256, snapshot_hash from history.grading_runs where run_id = %s", (base_id,))
        version, policy_sha, base_hash = cur.fetchone()
        graded_policy = next((p for p in discover() if p.name == policy and p.version == version), None)
        if graded_policy is None:
            raise AppealError(f"no policy file for {policy} v{version}")
        tiers = graded_policy.tier_ranks
        if new_tier is not None and new_tier not in tiers:
            raise AppealError(f"{new_tier!r} is not a tier of {policy} v{version}; one of {sorted(tiers)}")
        evidence = {
            "list": base_kind,
            "list_run_id": base_id,
            "due_on": due_on.isoformat(),
            "grading_basis": grading_basis(cur, policy, period_month, customer_key),
        }
        outcome, run_id, published = "upheld", None, None
        if new_tier is not None and new_tier != current_tier:
            outcome = "corrected"
            row = rows[customer_key]
            row[1], row[2], row[3] = (
                new_tier,
                tiers[new_tier],
                publish.staff_decision("art9_appeal", answered_by.strip(), basis.strip()),
            )
            snapshot = [tuple(r) for r in rows.values()]
            fingerprint = publish.digest([(base_hash, appeal_id)])
            run_id, snapshot_hash = publish.record_run(
                cur, policy, version, period_month, "appeal", airflow_run_id, policy_sha, fingerprint, snapshot
            )
            publish.record_changes(
                cur, run_id, "art9_appeal", [(customer_key, current_tier, new_tier, {"appeal_id": appeal_id, "basis": basis})]
            )
            publish.publish_run(cur, run_id)
            published = publish.PublishOutcome(run_id, "published", len(snapshot), snapshot_hash)
        cur.execute(
            "insert into history.appeal_answers (appeal_id, answered_by, outcome, tier_before, tier_after, basis, evidence,"
            " run_id, answered_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (appeal_id, answered_by.strip(), outcome, current_tier, new_tier or current_tier, basis.strip(),
             to_json(evidence), run_id, answered_at),
        )  # fmt: skip
        return published


def appeal_states(url: WarehouseUrl, today: date | None = None) -> list[AppealState]:
    """Every appeal with its status on ``today`` (the mainland-China date by default)."""
    today = today or datetime.now(CHINA).date()
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            "select a.appeal_id, a.policy, a.period_month, a.customer_key, a.received_at, a.due_on,"
            " (x.answered_at at time zone %s)::date, x.outcome"
            " from history.appeals as a left join history.appeal_answers as x using (appeal_id) order by a.received_at",
            (TIMEZONE,),
        )
        return [
            AppealState(str(appeal_id), policy, month, customer, received, due, _status(due, answered_on, today), outcome)
            for appeal_id, policy, month, customer, received, due, answered_on, outcome in cur.fetchall()
        ]


def _status(due_on: date, answered_on: date | None, today: date) -> str:
    # history.appeal_status says the same in SQL, for auditors' own queries
    if answered_on is not None:
        return "answered" if answered_on <= due_on else "answered_late"
    return "overdue" if today > due_on else "open"


def check_deadlines(url: WarehouseUrl, today: date | None = None) -> dict[str, int]:
    """Count appeals by status; raise AppealsOverdue naming every overdue one."""
    states = appeal_states(url, today)
    overdue = [s for s in states if s.status == "overdue"]
    if overdue:
        raise AppealsOverdue(
            f"{len(overdue)} appeal(s) past their due day without an answer: "
            + "; ".join(f"{s.appeal_id} ({s.policy} {s.period_month:%Y-%m}, due {s.due_on})" for s in overdue)
        )
    counts: dict[str, int] = {}
    for state in states:
        counts[state.status] = counts.get(state.status, 0) + 1
    return counts
