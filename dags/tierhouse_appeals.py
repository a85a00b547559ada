"""Airflow DAG: every morning, check the customers' re-check requests (P1 Art. 9: answered within
3 mainland-China working days). The task fails, and so alerts, while any appeal is past its due
day without an answer; ``history.appeal_status`` and ``tierhouse appeal list`` show which."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.defaults import DAG_SETTINGS
from tierhouse.orchestration.tasks import migrate_warehouse, run_day
from tierhouse.periods import TIMEZONE


@dag(
    dag_id="tierhouse_appeals",
    schedule=CronTriggerTimetable("30 9 * * *", timezone=TIMEZONE),
    tags=["tierhouse", "appeals"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_appeals():
    @task
    def check_appeal_deadlines(**context) -> dict[str, int]:
        return pipeline.check_appeal_deadlines(run_day(context))

    chain(migrate_warehouse(), check_appeal_deadlines())


tierhouse_appeals()
