"""Airflow DAG: grade customers for one month — load the policy files, build the dbt project
(through Cosmos), audit the candidate tiers with a Great Expectations checkpoint and only then
publish the initial list of every policy whose calendar lists that month. Triggered by fresh raw sales from the ingest DAG, or run by hand with
``{"period": "YYYY-MM"}``, optionally limited to some policies with ``{"policies": ["abcd"]}``. A policy
with no version in force for the month is skipped."""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, Param, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import PUBLISHED_TIERS, RAW_SALES
from tierhouse.orchestration.chains import build_and_deidentify
from tierhouse.orchestration.config import load_config
from tierhouse.orchestration.defaults import DAG_SETTINGS, POLICIES_PARAM_DESCRIPTION
from tierhouse.orchestration.tasks import interval_start, migrate_warehouse, summarise_tiers
from tierhouse.periods import TIMEZONE

# tierhouse.yml's policies (default: every policy under policies/), one branch each
GRADED_POLICIES = list(load_config().policies)


@dag(
    dag_id="tierhouse_grading",
    # Month end (Art. 7): at 02:00 on the 1st the previous month's data interval is graded; fresh
    # raw sales from the ingest DAG also trigger a run, which records late data for a published
    # month as a restatement candidate instead of changing its list.
    schedule=AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("0 2 1 * *", timezone=TIMEZONE), assets=[RAW_SALES]),
    params={
        "period": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}$", description="Month to grade, YYYY-MM"),
        "policies": Param(GRADED_POLICIES, type="array", items={"type": "string"}, description=POLICIES_PARAM_DESCRIPTION),
    },
    tags=["tierhouse", "grading"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_grading():
    @task
    def resolve_period(**context) -> str:
        extras = [event.extra for events in context["triggering_asset_events"].values() for event in events]
        # a month-end run's data interval is the month to grade; asset and manual runs have none
        return pipeline.resolve_period(
            context["params"].get("period"), extras, context["dag_run"].run_after, interval_start(context)
        )

    # P2 and P3 list only at quarter ends (their calendars); a policy not in the run's `policies`
    # or with no version in force for the month is skipped too: the rest of its branch is skipped.
    @task.short_circuit
    def lists_month(policy: str, period: str, **context) -> bool:
        selected = pipeline.policy_selected(policy, context["params"].get("policies"), GRADED_POLICIES)
        return selected and pipeline.lists_month(policy, period)

    # A failed audit fails this task, so publish (all_success) never runs and the last published list stays.
    @task(retries=0)
    def audit_tiers(policy: str, period: str) -> int:
        return pipeline.audit_tiers(policy, period)

    @task(outlets=[PUBLISHED_TIERS])
    def publish_tiers(policy: str, period: str, **context) -> dict:
        return pipeline.publish_tiers(policy, period, context["run_id"])

    period = resolve_period()
    chain(migrate_warehouse(), period)
    deidentified = build_and_deidentify(period)
    for policy in GRADED_POLICIES:
        due = lists_month.override(task_id=f"lists_{policy}")(policy, period)
        audit = audit_tiers.override(task_id=f"audit_{policy}")(policy, period)
        publish = publish_tiers.override(task_id=f"publish_{policy}")(policy, period)
        summary = summarise_tiers.override(task_id=f"summarise_{policy}")(policy, period)
        chain(deidentified, due, audit, publish, summary)


tierhouse_grading()
