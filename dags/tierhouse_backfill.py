"""Airflow DAG: catch up past months in order — load the policy files, build the dbt project once
(every month is in the marts), then audit and publish each month every policy lists, oldest
first, so each month's drift is audited against the month published before it. Already
published months are left as they are (late data becomes a restatement candidate); a month no
version of a policy is in force for is skipped. Run by hand with ``{"start": "YYYY-MM", "end":
"YYYY-MM"}``, optionally limited to some policies with ``{"policies": ["abcd"]}``."""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import PUBLISHED_TIERS
from tierhouse.orchestration.chains import build_and_deidentify
from tierhouse.orchestration.config import load_config
from tierhouse.orchestration.defaults import DAG_SETTINGS, POLICIES_PARAM_DESCRIPTION
from tierhouse.orchestration.tasks import migrate_warehouse

# tierhouse.yml's policies (default: every policy under policies/), one branch each
GRADED_POLICIES = list(load_config().policies)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


@dag(
    dag_id="tierhouse_backfill",
    schedule=None,
    params={
        "start": Param("2026-01", type="string", pattern=MONTH, description="First month to grade, YYYY-MM"),
        "end": Param("2026-01", type="string", pattern=MONTH, description="Last month to grade, YYYY-MM"),
        "policies": Param(GRADED_POLICIES, type="array", items={"type": "string"}, description=POLICIES_PARAM_DESCRIPTION),
    },
    tags=["tierhouse", "grading", "backfill"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_backfill():
    @task
    def resolve_months(**context) -> list[str]:
        return pipeline.grading_months(context["params"]["start"], context["params"]["end"])

    # one task per policy walks the months in order: a failed audit stops it before publishing
    @task(retries=0, outlets=[PUBLISHED_TIERS])
    def audit_and_publish(policy: str, months: list[str], **context) -> list[dict]:
        return pipeline.backfill(policy, months, context["run_id"])

    @task.short_circuit
    def selected(policy: str, **context) -> bool:
        return pipeline.policy_selected(policy, context["params"].get("policies"), GRADED_POLICIES)

    months = resolve_months()
    chain(migrate_warehouse(), months)
    deidentified = build_and_deidentify(months)
    for policy in GRADED_POLICIES:
        chain(
            deidentified,
            selected.override(task_id=f"selected_{policy}")(policy),
            audit_and_publish.override(task_id=f"audit_{policy}")(policy, months),
        )


tierhouse_backfill()
