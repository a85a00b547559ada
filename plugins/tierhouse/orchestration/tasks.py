"""Tasks more than one DAG runs, and what a task reads from its run's context: the days a run
stands for, on the mainland-China calendar (tierhouse.periods)."""

from __future__ import annotations

from datetime import date

from airflow.sdk import task

from tierhouse.orchestration import pipeline
from tierhouse.periods import CHINA


def run_day(context, key: str = "logical_date") -> date:
    """The mainland-China date of the run's ``key`` (its logical date, or an end of its data
    interval); a run triggered by hand without a logical date has neither, and stands for the day
    it was asked to run."""
    moment = context.get(key) or context["dag_run"].run_after
    return moment.astimezone(CHINA).date()


def interval_start(context) -> date | None:
    """The first day of a scheduled run's data interval (the month or quarter it covers); None for
    runs triggered by an Asset or by hand, whose interval is empty or missing."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    return start.astimezone(CHINA).date() if start is not None and end is not None and end > start else None


@task
def migrate_warehouse() -> list[str]:
    """Every DAG's first task, so that no task meets a warehouse behind the code."""
    return pipeline.migrate_warehouse()


@task
def apply_access_controls() -> list[str]:
    """The grants on what the warehouse holds now (dbt builds new relations on every run)."""
    return pipeline.apply_access_controls()


@task
def summarise_tiers(policy: str, period: str) -> str:
    return pipeline.summarise_tiers(policy, period)
