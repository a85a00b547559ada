"""Airflow DAG: land every enabled source in the warehouse's raw schema — store POS exports, CRM
members, payments, custom-order details, service tickets and order-history imports from their
export files, online orders from the shop database — then gate them with Great Expectations.
Which sources a deployment has, and where, is tierhouse.yml (tierhouse.orchestration.config): a
disabled source has no task and is not checked. Emits the raw-sales Asset that triggers grading."""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import RAW_SALES
from tierhouse.orchestration.config import SHOP, load_config
from tierhouse.orchestration.defaults import DAG_SETTINGS
from tierhouse.orchestration.tasks import migrate_warehouse, run_day
from tierhouse.periods import TIMEZONE


@dag(
    dag_id="tierhouse_ingest",
    # Tills export after closing; load each business day's files at 01:00 China time.
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=TIMEZONE),
    tags=["tierhouse", "ingest"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_ingest():
    @task
    def load_exports(source_name: str) -> dict:
        return pipeline.load_exports(source_name)

    @task
    def extract_shop_orders() -> dict:
        return pipeline.extract_shop_orders()

    @task(outlets=[RAW_SALES])
    def check_raw_quality(**context) -> int:
        evaluated = pipeline.check_raw_quality()
        # Grading reads this to know which month the data now completes.
        context["outlet_events"][RAW_SALES].extra = {"data_through": run_day(context, "data_interval_end").isoformat()}
        return evaluated

    config = load_config()
    loads = [load_exports.override(task_id=f"load_{name}")(name) for name in config.enabled_file_sources]
    if SHOP in config.enabled_sources:
        loads.append(extract_shop_orders())
    chain(migrate_warehouse(), loads, check_raw_quality())


tierhouse_ingest()
