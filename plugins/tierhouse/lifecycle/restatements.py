"""Restatements: late data for a month already published, decided by a person.

Publishing never replaces a recorded list by itself: different results for it become a
restatement candidate, kept whole in ``history.restatement_snapshots``
(:func:`tierhouse.lifecycle.publish.record_restatement`). ``tierhouse restatements`` lists the
undecided ones with every customer whose grade would change against the list in force; a person
accepts one (the candidate's list is recorded as a ``restatement`` run and published) or rejects
it (the list in force stays). Either way the decision is recorded in
``history.restatement_decisions`` with who and why, append-only (migration
``0452_restatement_decisions``).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import discover
from tierhouse.lifecycle import publish
from tierhouse.lifecycle.review import has_review
from tierhouse.privacy import free_text
from tierhouse.privacy.deidentification import GateLogins
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated

DECISIONS = ("accepted", "rejected")


class RestatementError(TierhouseError, ValueError):
    """A restatement decision cannot be recorded; the message says why."""


@dataclass(frozen=True)
class Change:
    customer_key: str
    tier_in_force: str | None  # None: not on the list in force
    restated_tier: str | None  # None: not on the restated list


@dataclass(frozen=True)
class Candidate:
    candidate_id: str
    policy: str
    period_month: date
    list_in_force: str
    detected_at: datetime
    snapshot_hash: str
    changes: tuple[Change, ...]


# The list in force per policy and period is the newest recorded one (publish.current_run); each
# undecided candidate against it, customer by customer, where the tier differs.
_PENDING = """
with candidates as (
    select c.candidate_id, c.detected_at, c.snapshot_hash, r.policy, r.period_month
    from history.restatement_candidates as c
    join history.grading_runs as r on r.run_id = c.published_run_id
    where not exists (select 1 from history.restatement_decisions as d where d.candidate_id = c.candidate_id)
      and exists (select 1 from history.restatement_snapshots as s where s.candidate_id = c.candidate_id)
),
in_force as (
    select distinct on (policy, period_month) run_id, list_kind, policy, period_month
    from history.grading_runs
    order by policy, period_month, created_at desc, run_id
)
select c.candidate_id::text, c.policy, c.period_month, f.list_kind, c.detected_at, c.snapshot_hash,
       k.customer_key, k.tier_in_force, k.restated_tier
from candidates as c
join in_force as f using (policy, period_month)
left join lateral (
    select coalesce(o.customer_key, n.customer_key) as customer_key, o.tier as tier_in_force, n.tier as restated_tier
    from (select customer_key, tier from history.tier_snapshots where run_id = f.run_id) as o
    full join (select customer_key, tier from history.restatement_snapshots where candidate_id = c.candidate_id) as n
        using (customer_key)
    where o.tier is distinct from n.tier
) as k on true
order by c.period_month, c.policy, c.detected_at, c.candidate_id, k.customer_key
"""


def pending(url: WarehouseUrl) -> list[Candidate]:
    """Every undecided candidate, oldest month first, with the customers whose grade would change."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(_PENDING)
        rows = cur.fetchall()
    found: dict[str, Candidate] = {}
    changes: dict[str, list[Change]] = {}
    for candidate_id, policy, period, kind, detected, snapshot_hash, key, before, after in rows:
        found.setdefault(candidate_id, Candidate(candidate_id, policy, period, kind, detected, snapshot_hash, ()))
        if key is not None:
            changes.setdefault(candidate_id, []).append(Change(key, before, after))
    return [dataclasses.replace(c, changes=tuple(changes.get(c.candidate_id, ()))) for c in found.values()]


def format_pending(candidates: list[Candidate]) -> str:
    if not candidates:
        return "no restatement candidates waiting for a decision"
    lines = []
    for c in candidates:
        lines.append(
            f"{c.candidate_id}  {c.policy} {c.period_month:%Y-%m}  detected {c.detected_at:%Y-%m-%d %H:%M}"
            f"  {len(c.changes)} customers would change against the {c.list_in_force} list in force"
        )
        lines += [
            f"    {ch.customer_key:<14} {ch.tier_in_force or '(not listed)'} -> {ch.restated_tier or '(not listed)'}"
            for ch in c.changes
        ]
    return "\n".join(lines)


def decide(
    url: WarehouseUrl, candidate_id: str, decision: str, decided_by: str, reason: str, airflow_run_id: str | None = None,
    logins: GateLogins | None = None,
) -> str | None:  # fmt: skip
    """Record a person's decision on a candidate. Accepted: its list is recorded as a
    ``restatement`` run and published, once the de-identification gate has passed (run as
    ``logins``, by default the gate's and the steward's logins beside ``url``), and that run's id is
    returned; rejected: nothing changes but the record. A candidate is decided once. Who decides
    and why are staff free text, refused before anything is written when they hold personal data."""
    if decision not in DECISIONS:
        raise RestatementError(f"a decision is one of {list(DECISIONS)}, got {decision!r}")
    if not decided_by.strip() or not reason.strip():
        raise RestatementError("a restatement decision needs who decides (--decided-by) and why (--reason)")
    try:
        uuid.UUID(candidate_id)
    except ValueError:
        raise RestatementError(f"{candidate_id!r} is not a candidate id; `tierhouse restatements list` shows them") from None
    logins = logins or GateLogins.beside(url)
    free_text.check_entry(logins.steward, decided_by=decided_by, reason=reason)
    if decision == "accepted":
        publish.require_deidentified(logins, "publishing an accepted restatement")
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            "select r.policy, r.policy_version, r.period_month, r.policy_sha256, c.input_fingerprint, c.snapshot_hash"
            " from history.restatement_candidates as c join history.grading_runs as r on r.run_id = c.published_run_id"
            " where c.candidate_id = %s",
            (candidate_id,),
        )
        found = cur.fetchone()
        if not found:
            raise RestatementError(f"no restatement candidate {candidate_id}")
        policy, version, period_month, policy_sha, fingerprint, snapshot_hash = found
        # the same lock as publishing the period: a decision and a grading run never interleave
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"publish:{policy}:{period_month}",))
        cur.execute("select decision, decided_by from history.restatement_decisions where candidate_id = %s", (candidate_id,))
        earlier = cur.fetchone()
        if earlier:
            raise RestatementError(f"restatement candidate {candidate_id} was already {earlier[0]} by {earlier[1]}")
        run_id = None
        if decision == "accepted":
            run_id = _publish_candidate(
                cur, candidate_id, policy, version, period_month, policy_sha, fingerprint, snapshot_hash, airflow_run_id
            )
        cur.execute(
            "insert into history.restatement_decisions (candidate_id, decision, decided_by, reason, run_id) values (%s, %s, %s, %s, %s)",
            (candidate_id, decision, decided_by.strip(), reason.strip(), run_id),
        )
        return run_id


def _publish_candidate(
    cur, candidate_id: str, policy: str, version: int, period_month: date, policy_sha: str, fingerprint: str,
    snapshot_hash: str, airflow_run_id: str | None,
) -> str:  # fmt: skip
    graded_policy = next((p for p in discover() if (p.name, p.version) == (policy, version)), None)
    if graded_policy is None:
        raise RestatementError(f"no policy file for {policy} v{version}, which graded this list")
    if has_review(graded_policy):
        cur.execute(
            "select 1 from history.grading_runs where policy = %s and period_month = %s"
            " and list_kind in ('confirmed', 'approved')",
            (policy, period_month),
        )
        if not cur.fetchone():
            # confirming builds on the initial list and its reviews: it would undo the restatement
            raise RestatementError(
                f"the {period_month:%Y-%m} list of {policy} is still under review; decide once it is confirmed"
            )
    cur.execute(
        f"select {', '.join(publish.SNAPSHOT_COLUMNS)} from history.restatement_snapshots where candidate_id = %s"
        " order by customer_key",
        (candidate_id,),
    )
    snapshot = cur.fetchall()
    if not snapshot:
        raise RestatementError(f"restatement candidate {candidate_id} was recorded without its list; reject it and grade again")
    run_id, recorded_hash = publish.record_run(
        cur, policy, version, period_month, "restatement", airflow_run_id, policy_sha, fingerprint, snapshot
    )
    if recorded_hash != snapshot_hash:
        raise RestatementError(
            f"restatement candidate {candidate_id}: its stored list hashes to {recorded_hash[:12]}…, not {snapshot_hash[:12]}…"
        )
    publish.publish_run(cur, run_id)
    return run_id
