"""Run in a subprocess by test_dags.py: run every Python task of every DAG in dags/ with the
context Airflow's task runner builds (RuntimeTaskInstance.get_template_context) for a run that has
no logical date and no data interval — a manual trigger as `airflow dags trigger` and the UI make
it, and, for DAGs an Asset schedules, an Asset-triggered run — and print what happened as JSON.

Tasks run in dependency order, each fed its upstream tasks' return values; a short-circuit task
that returns False skips what follows it. The pipeline functions
that reach the warehouse are replaced by recorders (their arguments are reported); the ones that
only compute (which period, which months, whether a policy lists the month) run for real. dbt
tasks (Cosmos) are not run: they read nothing of the run's dates.
"""

from __future__ import annotations

import inspect
import json
import sys
import uuid
from datetime import UTC, date, datetime
from typing import Any

from airflow.dag_processing.dagbag import DagBag
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk.api.datamodels._generated import (
    AssetEventDagRunReference,
    AssetReferenceAssetEventDagRun,
    DagRun,
    DagRunState,
    DagRunType,
    TIRunContext,
)
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.assets import RAW_SALES

#: Pipeline functions that only compute from their arguments (and the policy files): run for real.
COMPUTING = {"resolve_period", "quarter_to_regrade", "grading_months", "policy_selected", "lists_month"}
#: What a manual run of a DAG whose params have no usable default must be given.
MANUAL_CONF = {"tierhouse_dsr": {"request_id": "00000000-0000-4000-8000-000000000001"}}  # a recorded request's id


def record_pipeline_calls(calls: list[list]) -> None:
    def recorder(name: str):
        def record(*args: Any, **kwargs: Any) -> None:
            calls.append([name, [_plain(a) for a in args], {k: _plain(v) for k, v in kwargs.items()}])

        return record

    for name, function in inspect.getmembers(pipeline, inspect.isfunction):
        if function.__module__ == pipeline.__name__ and name not in COMPUTING and not name.startswith("_"):
            setattr(pipeline, name, recorder(name))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value if isinstance(value, str | int | float | list) else repr(value)


def dag_run(dag_id: str, run_type: DagRunType, run_after: datetime, events: list[AssetEventDagRunReference]) -> DagRun:
    return DagRun(
        dag_id=dag_id,
        run_id=f"{run_type.value}__{run_after.isoformat()}",
        logical_date=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=run_after,
        start_date=run_after,
        end_date=None,
        run_type=run_type,
        state=DagRunState.RUNNING,
        conf=MANUAL_CONF.get(dag_id, {}) if run_type == DagRunType.MANUAL else {},
        consumed_asset_events=events,
        partition_key=None,
    )


def raw_sales_event(data_through: date) -> AssetEventDagRunReference:
    """The event the ingest DAG's check_raw_quality emits (its extra names the day loaded through)."""
    return AssetEventDagRunReference(
        asset=AssetReferenceAssetEventDagRun(name=RAW_SALES.name, uri=RAW_SALES.uri, extra={}),
        extra={"data_through": data_through.isoformat()},
        source_task_id="check_raw_quality",
        source_dag_id="tierhouse_ingest",
        source_run_id="manual__ingest",
        source_map_index=-1,
        source_aliases=[],
        timestamp=datetime.now(UTC),
    )


def run_tasks(dag, run: DagRun) -> dict:
    """Every Python task of ``dag`` in dependency order under ``run``: its result or its error."""
    results: dict[str, Any] = {}
    report: dict[str, dict] = {}
    skipped: set[str] = set()
    for task in dag.topological_sort():
        if not hasattr(task, "python_callable"):
            continue
        if task.task_id in skipped:
            report[task.task_id] = {"skipped": True}
            continue
        ti = RuntimeTaskInstance.model_construct(
            id=uuid.uuid4(), task_id=task.task_id, dag_id=dag.dag_id, run_id=run.run_id, try_number=1,
            dag_version_id=uuid.uuid4(), map_index=-1, task=task, start_date=run.run_after, max_tries=task.retries,
        )  # fmt: skip
        ti._ti_context_from_server = TIRunContext(dag_run=run, max_tries=task.retries)
        entry: dict[str, Any] = {}
        try:
            context = ti.get_template_context()
            args = [_resolve(arg, results) for arg in task.op_args]
            kwargs = {name: _resolve(value, results) for name, value in task.op_kwargs.items()}
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(task.python_callable).parameters.values()):
                kwargs = {**context, **kwargs}  # as PythonOperator passes the context to **context
            results[task.task_id] = task.python_callable(*args, **kwargs)
            entry["result"] = _plain(results[task.task_id])
            if isinstance(task, ShortCircuitOperator) and not results[task.task_id]:
                skipped |= task.get_flat_relative_ids(upstream=False)  # as a short-circuit skips
            if RAW_SALES in task.outlets:
                entry["outlet_extra"] = context["outlet_events"][RAW_SALES].extra
        except Exception as error:  # reported, so one failing task does not hide the others
            entry["error"] = f"{type(error).__name__}: {error}"
        report[task.task_id] = entry
    return report


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    return results.get(value.operator.task_id) if isinstance(value, PlainXComArg) else value


def main(dag_folder: str, run_after: datetime) -> None:
    calls: list[list] = []
    record_pipeline_calls(calls)
    bag = DagBag(dag_folder=dag_folder)
    report: dict[str, Any] = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "runs": {}}
    for dag_id, dag in sorted(bag.dags.items()):
        kinds = {"manual": []}
        if getattr(dag.timetable, "asset_condition", None) is not None:
            kinds["asset_triggered"] = [raw_sales_event(run_after.date())]
        for kind, events in kinds.items():
            calls.clear()
            tasks = run_tasks(dag, dag_run(dag_id, DagRunType(kind), run_after, events))
            report["runs"][f"{dag_id}:{kind}"] = {"tasks": tasks, "calls": list(calls)}
    print("CONTEXT_REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
    # the DAG folder, and the moment the runs are asked for (ISO 8601 with its offset)
    main(sys.argv[1], datetime.fromisoformat(sys.argv[2]))
