"""What the DAG tasks do. DAG files only wire these together; each function takes plain values,
resolves the warehouse from the Airflow connection and returns something small for XCom."""

from __future__ import annotations

import logging
from datetime import date, datetime

from tierhouse import settings
from tierhouse.periods import PeriodError, add_months, is_quarter_end, months_between, parse_period, quarter_end
from tierhouse.warehouse.connection import WarehouseUrl

log = logging.getLogger(__name__)


def warehouse_url(job: str) -> WarehouseUrl:
    """The warehouse as ``job``'s login, from its Airflow connection (``tierhouse_warehouse_<job>``;
    ``tierhouse_warehouse`` for the migrate step): each task connects with its own job's login."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(settings.warehouse_conn_id(job))
    return WarehouseUrl(
        host=conn.host or "127.0.0.1",
        port=int(conn.port or 5432),
        user=conn.login or "postgres",
        password=conn.password or "",
        dbname=conn.schema or "postgres",
    )


def migrate_warehouse() -> list[str]:
    """Every DAG's first task: apply the warehouse migrations it lacks (tierhouse.warehouse.migrate)."""
    from tierhouse.warehouse.connection import LOGINS
    from tierhouse.warehouse.migrate import migrate

    # each login gets the password its job's Airflow connection holds
    passwords = {job: warehouse_url(job).password for job in LOGINS}
    applied = [migration.label for migration in migrate(warehouse_url("migrate"), passwords=passwords)]
    log.info("warehouse migrations applied: %s", ", ".join(applied) or "none (up to date)")
    return applied


# -- ingest -----------------------------------------------------------------------------------
def load_exports(source_name: str) -> dict:
    """Load the new or changed export files of one file source from the landing directory."""
    from tierhouse.ingest import loaders
    from tierhouse.ingest.sources import SOURCES

    source = SOURCES[source_name]
    summary = loaders.load_exports(warehouse_url("ingest"), source, settings.DATA_DIR / source.subdir)
    log.info("%s exports: %s", source_name, summary)
    return summary.__dict__


def extract_shop_orders() -> dict:
    from tierhouse.ingest import loaders

    summary = loaders.extract_shop_orders(warehouse_url("ingest"))
    log.info("shop orders: %s", summary)
    return summary.__dict__


def check_raw_quality() -> int:
    from tierhouse.grading import quality

    return quality.gate(warehouse_url("ingest"), "ingest_raw").evaluated


# -- grading ----------------------------------------------------------------------------------
def resolve_period(
    requested: str | None, asset_extras: list[dict], run_after: datetime | date, data_interval_start: date | None = None
) -> str:
    """The month to grade: asked for explicitly; else the month a scheduled run's data interval
    covers; else the last complete month of the data the triggering ingest run loaded; else the
    month before the run."""
    if requested:
        return f"{parse_period(requested):%Y-%m}"
    if data_interval_start is not None:
        return f"{data_interval_start:%Y-%m}"
    through_dates = [date.fromisoformat(str(extra["data_through"])[:10]) for extra in asset_extras if extra.get("data_through")]
    reference = max(through_dates) if through_dates else (run_after.date() if isinstance(run_after, datetime) else run_after)
    return f"{add_months(reference, -1):%Y-%m}"


def apply_access_controls() -> list[str]:
    """Each role's grants on the pipeline's schemas, dbt's relations included (tierhouse.privacy.access)."""
    from tierhouse.privacy import access

    access.apply(warehouse_url("migrate"))
    return list(access.ROLES)


def load_policies() -> list[str]:
    from tierhouse.grading import policy

    policies = policy.discover()
    policy.load_policies(warehouse_url("ingest"), policies)
    return [p.policy_version_id for p in policies]


def check_deidentification() -> int:
    """P1 Art. 13: no personal data outside ``pii`` — mobile numbers, ID numbers, emails or any
    customer's name anywhere in the other schemas fails the run before anything is published."""
    from tierhouse.privacy import deidentification, dsr

    names = dsr.customer_names(warehouse_url("steward"), "tierhouse pipeline", "de-identification gate before publish")
    return deidentification.gate(warehouse_url("gate"), names).evaluated


def audit_tiers(policy: str, period: str) -> int:
    """The publish gate for one policy and period; the allowed tiers come from the policy files.
    A period whose customers are all excluded fails first, with the counts by reason; a failed
    audit names the policy and period with the failing expectations."""
    from tierhouse.gates import QualityGateFailed
    from tierhouse.grading import population, quality
    from tierhouse.grading.policy import newest

    parameters = quality.tier_audit_parameters(policy)
    url, period_month = warehouse_url("publish"), parse_period(period)
    population.require_graded_customers(url, policy, period_month)
    filters = {"policy": policy, "period_month": period_month.isoformat()}
    try:
        evaluated = quality.gate(url, "publish_customer_tiers", filters, expectation_parameters=parameters).evaluated
        audit = newest(policy).document.get("audit", {})
        return evaluated + audit_drift(url, policy, period_month, parameters["tiers"], audit)
    except QualityGateFailed as failure:
        raise QualityGateFailed(f"{policy} {period_month:%Y-%m}: {failure}") from failure


def audit_drift(url: WarehouseUrl, policy: str, period_month: date, tiers: list[str], audit: dict) -> int:
    """The drift gate against the previous published month, when there is one and a threshold."""
    from tierhouse.grading import quality
    from tierhouse.lifecycle import history

    previous = history.previous_distribution(url, policy, period_month, tiers)
    if previous is None or "max_tier_kl_divergence" not in audit:
        log.info("%s %s: no previous published month or no drift threshold; drift not audited", policy, period_month)
        return 0
    return quality.gate(
        url,
        "publish_tier_drift",
        {"policy": policy, "period_month": period_month.isoformat()},
        expectation_parameters={"previous_distribution": previous, "max_kl_divergence": audit["max_tier_kl_divergence"]},
    ).evaluated


def publish_tiers(policy: str, period: str, run_id: str | None) -> dict:
    """Record and publish the period's initial list (once; see tierhouse.lifecycle.publish)."""
    from tierhouse.lifecycle import publish

    outcome = publish.publish_initial_list(warehouse_url("publish"), policy, parse_period(period), run_id)
    if outcome.status == "restatement_candidate":
        log.warning("%s %s: results differ from the published list; recorded as a restatement candidate", policy, period)
    return outcome.__dict__


def summarise_tiers(policy: str, period: str) -> str:
    from tierhouse.grading import summary

    period_month = parse_period(period)
    text = summary.format_summary(policy, period_month, summary.tier_summary(warehouse_url("publish"), policy, period_month))
    log.info("\n%s", text)
    return text


def confirm_due_lists(today: date, run_id: str | None) -> list[dict]:
    """Art. 8: publish the confirmed list of every initial list whose review window has closed."""
    from tierhouse.lifecycle.review import confirm_due_lists as confirm

    return [outcome.__dict__ for outcome in confirm(warehouse_url("publish"), today, run_id)]


# -- calendars, quarterly re-grade, appeals, backfill -------------------------------------------
def policy_selected(policy: str, selected: list[str] | None, graded: list[str]) -> bool:
    """Whether the run's ``policies`` param (None: every graded policy) includes the policy; a name
    that is not graded fails every branch, so a typo never passes as an empty run."""
    from tierhouse.grading.policy import UnknownPolicy

    if selected is None:
        return True
    if unknown := sorted(set(selected) - set(graded)):
        raise UnknownPolicy(f"policies param names {', '.join(unknown)}, not graded here; graded policies: {', '.join(graded)}")
    if policy not in selected:
        log.info("%s: not among this run's policies (%s); skipped", policy, ", ".join(selected))
    return policy in selected


def lists_month(policy: str, period: str) -> bool:
    """Whether the policy produces a list for the month: a version of it is in force at the
    period end, and its calendar lists the month (P2 and P3 grade at quarter ends)."""
    from tierhouse.grading.policy import in_force

    graded_policy = in_force(policy, parse_period(period))
    if graded_policy is None:
        log.info("%s %s: no version of the policy is in force for the period; skipped", policy, period)
        return False
    due = graded_policy.lists_month(parse_period(period))
    log.info("%s %s: %s", policy, period, "a list is due" if due else "no list this month (policy calendar)")
    return due


def grading_months(start: str, end: str) -> list[str]:
    """Every month from ``start`` to ``end``, oldest first."""
    first, last = parse_period(start), parse_period(end)
    if last < first:
        raise PeriodError(f"backfill end {end} is before its start {start}")
    return [f"{month:%Y-%m}" for month in months_between(first, last)]


def backfill(policy: str, months: list[str], run_id: str | None) -> list[dict]:
    """Audit and publish each month the policy lists, oldest first (each month's drift is audited
    against the one published before it); stops at the first failed audit. A month no version of
    the policy is in force for is skipped."""
    from tierhouse.grading.policy import discover, in_force

    policies, outcomes = discover(), []  # the files are read once, not once a month
    for period in months:
        graded_policy = in_force(policy, parse_period(period), policies)
        if graded_policy is None:
            log.info("%s %s: no version of the policy is in force for the period; skipped", policy, period)
            continue
        if not graded_policy.lists_month(parse_period(period)):
            log.info("%s %s: no list this month (policy calendar)", policy, period)
            continue
        audit_tiers(policy, period)
        outcomes.append({"period": period, **publish_tiers(policy, period, run_id)})
    return outcomes


def quarter_to_regrade(requested: str | None, data_interval_start: date | None, run_after: datetime | date) -> str:
    """The last month of the quarter to re-grade: asked for; else the quarter a scheduled run's
    data interval covers; else the last complete quarter before the run."""
    if requested:
        month = parse_period(requested)
    elif data_interval_start is not None:
        month = quarter_end(data_interval_start)
    else:  # the quarter before the run's
        month = quarter_end(add_months(run_after.date() if isinstance(run_after, datetime) else run_after, -3))
    if not is_quarter_end(month):
        raise PeriodError(f"{month:%Y-%m} is not the last month of a quarter")
    return f"{month:%Y-%m}"


def regrade_base_ready(policy: str, period: str) -> bool:
    from tierhouse.lifecycle import regrade

    return regrade.base_ready(warehouse_url("publish"), policy, parse_period(period))


def regrade_quarter(policy: str, period: str, run_id: str | None) -> dict:
    """Art. 9: the quarterly list on the last three months' trend (see tierhouse.lifecycle.regrade)."""
    from tierhouse.lifecycle import regrade

    outcome = regrade.regrade_quarter(warehouse_url("publish"), policy, parse_period(period), run_id)
    if outcome.status == "restatement_candidate":
        log.warning("%s %s: quarterly results differ from the recorded list; recorded as a restatement candidate", policy, period)
    return outcome.__dict__


def check_appeal_deadlines(today: date) -> dict[str, int]:
    """Art. 9: fail (and so alert) while any appeal is past its due day without an answer."""
    from tierhouse.lifecycle import appeals

    counts = appeals.check_deadlines(warehouse_url("audit"), today)
    log.info("appeals on %s: %s", today, counts or "none")
    return counts


def data_subject_request(
    kind: str, customer: str, requested_by: str, reason: str, field: str | None = None, value: str | None = None,
    out_dir: str | None = None, url: WarehouseUrl | None = None,
) -> str:  # fmt: skip
    """One data-subject request (tierhouse.privacy.dsr); returns what was done, without personal data."""
    from pathlib import Path

    from tierhouse.lifecycle import history
    from tierhouse.privacy import dsr

    url = url or warehouse_url("steward")
    if kind == "access":
        out = Path(out_dir or settings.STATE_DIR / "dsr")
        path = dsr.access(url, customer, requested_by, reason, out, history.customer_history(url, customer))
        return f"access: everything held on {customer} written to {path}"
    if kind == "correction":
        if not field or value is None:
            raise dsr.RequestError("a correction needs the field and its correct value")
        return f"correction {dsr.correct(url, customer, field, value, requested_by, reason)}: {field} of {customer} corrected"
    if kind == "consent_withdrawal":
        return f"consent withdrawal {dsr.withdraw_consent(url, customer, requested_by, reason)}: {customer} is no longer graded"
    if kind == "erasure":
        return f"erasure {dsr.erase(url, customer, requested_by, reason)}: personal data of {customer} erased"
    raise dsr.RequestError(f"unknown request kind {kind!r}")
