"""Airflow DAG: every working morning, confirm the initial grading lists whose 5-working-day
review window (Art. 8, mainland-China calendar) has closed, applying the reviewers' changes,
and publish the confirmed lists BI tools read."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronTriggerTimetable, dag, task

from tierhouse import pipeline
from tierhouse.assets import PUBLISHED_TIERS
from tierhouse.dag_defaults import DEFAULT_ARGS, TIMEZONE


@dag(
    dag_id="tierhouse_review",
    schedule=CronTriggerTimetable("0 9 * * *", timezone=TIMEZONE),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tierhouse", "grading", "review"],
    doc_md=__doc__,
)
def tierhouse_review():
    @task(outlets=[PUBLISHED_TIERS])
    def confirm_due_lists(**context) -> list[dict]:
        today = context["logical_date"].in_timezone(TIMEZONE).date()
        return pipeline.confirm_due_lists(today, context["run_id"])

    confirm_due_lists()


tierhouse_review()
