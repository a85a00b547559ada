"""What the DAG tasks do. DAG files only wire these together; each function takes plain values,
resolves the warehouse from the Airflow connection and returns something small for XCom."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tierhouse import settings
from tierhouse.periods import PeriodError, add_months, is_quarter_end, months_between, parse_period, quarter_end
from tierhouse.warehouse.connection import WarehouseUrl, login_url

if TYPE_CHECKING:
    from tierhouse.ingest.loaders import LoadSummary
    from tierhouse.ingest.sources import CsvSource

if TYPE_CHECKING:
    from tierhouse.privacy.deidentification import GateLogins

log = logging.getLogger(__name__)


def warehouse_url(job: str) -> WarehouseUrl:
    """The warehouse as ``job``'s login, from its Airflow connection (``tierhouse_warehouse_<job>``;
    ``tierhouse_warehouse`` for the migrate step): each task connects with its own job's login."""
    return _connection_url(settings.warehouse_conn_id(job))


def _connection_url(conn_id: str) -> WarehouseUrl:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return WarehouseUrl(
        host=conn.host or "127.0.0.1",
        port=int(conn.port or 5432),
        user=conn.login or "postgres",
        password=conn.password or "",
        dbname=conn.schema or "postgres",
    )


def migrate_warehouse() -> list[str]:
    """Every DAG's first task: apply the warehouse migrations it lacks (tierhouse.warehouse.migrate),
    then every job's grants (tierhouse.privacy.access), as `tierhouse warehouse migrate` does: a
    login whose role has no grants yet could not run the DAG's next task."""
    from tierhouse.privacy import access
    from tierhouse.warehouse.connection import LOGINS
    from tierhouse.warehouse.migrate import migrate

    url = warehouse_url("migrate")
    # each login gets the password its job's Airflow connection holds
    passwords = {job: warehouse_url(job).password for job in LOGINS}
    applied = [migration.label for migration in migrate(url, passwords=passwords)]
    log.info("warehouse migrations applied: %s", ", ".join(applied) or "none (up to date)")
    access.apply(url)
    return applied


def gate_logins() -> GateLogins:
    """The de-identification gate's own login and the steward's, from their Airflow connections:
    every publish path runs the gate as ``th_gate``, never as the publishing task's login."""
    from tierhouse.privacy.deidentification import GateLogins

    return GateLogins(gate=warehouse_url("gate"), steward=warehouse_url("steward"))


# -- ingest -----------------------------------------------------------------------------------
def load_exports(source_name: str) -> dict:
    """Load the new or changed export files of one enabled file source from its landing folder
    (tierhouse.yml, tierhouse.orchestration.config)."""
    from tierhouse.ingest import loaders
    from tierhouse.ingest.sources import SOURCES
    from tierhouse.orchestration.config import load_config

    landing = load_config().source(source_name).landing_dir
    assert landing is not None  # every file source has one
    summary = loaders.load_exports(warehouse_url("ingest"), SOURCES[source_name], landing)
    log.info("%s exports: %s", source_name, summary)
    return summary.__dict__


def importable(source_name: str, paths: list[Path]) -> tuple[CsvSource, Path]:
    """The file source ``tierhouse import`` loads and its landing folder (tierhouse.yml); one line
    for an unknown or disabled source, the shop (a database) or a missing file."""
    from tierhouse.ingest.loaders import LandingError
    from tierhouse.ingest.sources import SOURCES
    from tierhouse.orchestration.config import SHOP, ConfigError, load_config

    config = load_config()
    if source_name == SHOP:
        raise ConfigError("shop is read from the online shop's database by the ingest DAG, not imported from files")
    landing = config.source(source_name).landing_dir
    assert landing is not None  # every file source has one
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise LandingError(f"no such file: {', '.join(missing)}")
    return SOURCES[source_name], landing


def import_files(url: WarehouseUrl, source_name: str, paths: list[Path]) -> LoadSummary:
    """``tierhouse import``: land each file in the source's landing folder (atomically), then load
    exactly those files with the loader the DAG's ``load_<source>`` task runs on the folder."""
    from tierhouse.ingest import loaders

    source, landing = importable(source_name, paths)
    return loaders.import_files(url, source, paths, landing)


def extract_shop_orders() -> dict:
    """Online orders from the shop database: tierhouse.yml's ``sources.shop.connection`` (an
    Airflow connection), or the warehouse's own ``shop`` schema when it names none."""
    from tierhouse.ingest import loaders
    from tierhouse.orchestration.config import SHOP, load_config

    connection = load_config().source(SHOP).connection
    summary = loaders.extract_shop_orders(warehouse_url("ingest"), _connection_url(connection) if connection else None)
    log.info("shop orders: %s", summary)
    return summary.__dict__


def check_raw_quality() -> int:
    """The raw-data gate over the enabled sources only, each with its own freshness window."""
    from tierhouse.grading import quality
    from tierhouse.orchestration.config import load_config

    return quality.gate(warehouse_url("ingest"), "ingest_raw", sources=load_config().freshness()).evaluated


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
    """The graded policies' files (tierhouse.yml; default every policy under policies/) into raw.policy_*."""
    from tierhouse.grading import policy
    from tierhouse.orchestration.config import load_config

    graded = load_config().policies
    policies = [p for p in policy.discover() if p.name in graded]
    policy.load_policies(warehouse_url("ingest"), policies)
    return [p.policy_version_id for p in policies]


def check_deidentification() -> int:
    """P1 Art. 13: no personal data outside ``pii`` — mobile numbers, ID numbers, emails or any
    customer's name anywhere in the other schemas fails the run before anything is published."""
    from tierhouse.lifecycle import publish

    return publish.require_deidentified(gate_logins(), "publishing the graded lists").evaluated


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

    return [outcome.__dict__ for outcome in confirm(warehouse_url("publish"), today, run_id, gate_logins())]


def check_approvals(today: date) -> dict[str, int]:
    """P2: fail (and so alert) while a list that requires approval is past its window without one;
    it is never confirmed by time-out, so the previous list stays in force until it is approved."""
    from tierhouse.lifecycle.review import check_approvals as check

    counts = check(warehouse_url("audit"), today)
    log.info("approvals on %s: %s", today, counts or "none")
    return counts


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

    outcome = regrade.regrade_quarter(warehouse_url("publish"), policy, parse_period(period), run_id, gate_logins())
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
    out_dir: str | None = None, url: WarehouseUrl | None = None, data_dir: str | None = None,
) -> str:  # fmt: skip
    """Record one data-subject request (tierhouse.privacy.dsr) and carry it out; what ``tierhouse
    dsr`` does. Returns what was done."""
    from tierhouse.privacy import dsr, free_text

    url = url or warehouse_url("steward")
    # who handles it and the customer's request are staff free text, refused before anything is
    # recorded when they hold personal data (a correction's value is personal data by design)
    free_text.check_entry(url, requested_by=requested_by, reason=reason)
    request_id = dsr.record(url, kind, customer, requested_by, reason, field, value)
    return carry_out_request(request_id, out_dir, url, data_dir)


def carry_out_request(
    request_id: str, out_dir: str | None = None, url: WarehouseUrl | None = None, data_dir: str | None = None
) -> str:
    """Carry out a recorded data-subject request by its id (the ``tierhouse_dsr`` DAG is given
    nothing else); an erasure also cleans the landing files. The answer names no person."""
    from pathlib import Path

    from tierhouse.ingest import loaders
    from tierhouse.lifecycle import history
    from tierhouse.privacy import dsr

    # the steward's login records and carries out the request; the landing files are reloaded
    # as the ingest job's login, which alone writes raw
    ingest_url = login_url(url, "ingest") if url else warehouse_url("ingest")
    url = url or warehouse_url("steward")
    out = Path(out_dir or settings.STATE_DIR / "dsr")
    request, done = dsr.carry_out(url, request_id, out, lambda member: history.customer_history(url, member))
    if request.kind == "erasure":
        removed = loaders.purge_erased_subjects(ingest_url, Path(data_dir) if data_dir else settings.DATA_DIR)
        done += f"; {sum(removed.values())} records removed from {len(removed)} landing files and those files reloaded"
    return done
