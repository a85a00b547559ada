"""Airflow DAG: the quarterly re-grade (P1 Art. 9). After each quarter, once the list of its last
month is confirmed, customers move tier on the last three months' trend (potential -> high on
rising spend and frequency; top -> high on a sharp fall); every move is recorded with its rule
and evidence, and the quarterly list is published. Run by hand with ``{"quarter_end": "YYYY-MM"}``."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import PUBLISHED_TIERS
from tierhouse.orchestration.config import load_config
from tierhouse.orchestration.defaults import DAG_SETTINGS, REGRADED_POLICIES
from tierhouse.orchestration.tasks import interval_start, migrate_warehouse, summarise_tiers
from tierhouse.periods import TIMEZONE

# The base list is confirmed 5 working days after the month's initial list; Golden Week can
# stretch that to two weeks, so the sensor waits up to three.
BASE_LIST_WAIT = timedelta(days=21)
# a policy with re-grade rules that the deployment does not grade (tierhouse.yml) has no branch
REGRADED = [policy for policy in REGRADED_POLICIES if policy in load_config().policies]


@dag(
    dag_id="tierhouse_quarterly",
    # 03:00 on the first day of January, April, July and October: the data interval is the quarter.
    schedule=CronDataIntervalTimetable("0 3 1 1,4,7,10 *", timezone=TIMEZONE),
    params={
        "quarter_end": Param(
            None, type=["null", "string"], pattern=r"^\d{4}-(03|06|09|12)$", description="Last month of the quarter, YYYY-MM"
        )
    },
    tags=["tierhouse", "grading", "quarterly"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_quarterly():
    @task
    def resolve_quarter(**context) -> str:
        return pipeline.quarter_to_regrade(
            context["params"].get("quarter_end"), interval_start(context), context["dag_run"].run_after
        )

    @task.sensor(poke_interval=timedelta(hours=1), timeout=BASE_LIST_WAIT, mode="reschedule")
    def await_base_list(policy: str, period: str) -> bool:
        return pipeline.regrade_base_ready(policy, period)

    @task(outlets=[PUBLISHED_TIERS])
    def regrade(policy: str, period: str, **context) -> dict:
        return pipeline.regrade_quarter(policy, period, context["run_id"])

    period = resolve_quarter()
    chain(migrate_warehouse(), period)
    for policy in REGRADED:
        chain(
            period,
            await_base_list.override(task_id=f"await_base_{policy}")(policy, period),
            regrade.override(task_id=f"regrade_{policy}")(policy, period),
            summarise_tiers.override(task_id=f"summarise_{policy}")(policy, period),
        )


tierhouse_quarterly()
