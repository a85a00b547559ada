"""Airflow DAG: every working morning, confirm the initial grading lists whose 5-working-day
review window (Art. 8, mainland-China calendar) has closed, applying the reviewers' changes,
and publish the confirmed lists BI tools read. A list whose policy requires approval (P2) is never
confirmed here: ``check_approvals`` fails, and so alerts, while one is past its window without an
approval (``tierhouse approve --list`` shows which)."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import PUBLISHED_TIERS
from tierhouse.orchestration.defaults import DAG_SETTINGS
from tierhouse.orchestration.tasks import migrate_warehouse, run_day
from tierhouse.periods import TIMEZONE


@dag(
    dag_id="tierhouse_review",
    schedule=CronTriggerTimetable("0 9 * * *", timezone=TIMEZONE),
    tags=["tierhouse", "grading", "review"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_review():
    @task(outlets=[PUBLISHED_TIERS])
    def confirm_due_lists(**context) -> list[dict]:
        return pipeline.confirm_due_lists(run_day(context), context["run_id"])

    @task
    def check_approvals(**context) -> dict[str, int]:
        return pipeline.check_approvals(run_day(context))

    chain(migrate_warehouse(), confirm_due_lists(), check_approvals())


tierhouse_review()
