"""The DAG folder imports cleanly and every DAG carries what operators rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tierhouse import settings
from tierhouse.runner import airflow_env
from tierhouse.warehouse import WarehouseUrl

EXPECTED_DAGS = {
    "tierhouse_ingest", "tierhouse_grading", "tierhouse_review", "tierhouse_quarterly", "tierhouse_appeals", "tierhouse_backfill",
    "tierhouse_dsr",
}  # fmt: skip


@pytest.fixture(scope="module")
def dag_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # A warehouse that does not exist: parsing must not need one.
    unreachable = WarehouseUrl("127.0.0.1", 9, "nobody", "", "nowhere")
    env = airflow_env(unreachable, tmp_path_factory.mktemp("airflow_home"))
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dag_report.py")), str(settings.PROJECT_ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("DAG_REPORT ")), None)
    assert line, f"no report; stderr:\n{result.stderr[-4000:]}"
    return json.loads(line.removeprefix("DAG_REPORT "))


def test_dag_folder_has_no_import_errors(dag_report: dict) -> None:
    assert dag_report["import_errors"] == {}


def test_expected_dags_are_present(dag_report: dict) -> None:
    assert set(dag_report["dags"]) == EXPECTED_DAGS


def test_every_dag_has_tags_owner_and_retries(dag_report: dict) -> None:
    for dag_id, dag in dag_report["dags"].items():
        assert "tierhouse" in dag["tags"], dag_id
        assert dag["max_active_runs"] == 1, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "data-engineering", (dag_id, task_id)
            # The publish audit is deliberately not retried: the same data fails the same way.
            if not task_id.startswith("audit_"):
                assert task["retries"] >= 2, (dag_id, task_id)


def test_grading_dag_renders_every_dbt_model_as_a_task(dag_report: dict) -> None:
    manifest = json.loads(settings.DBT_MANIFEST.read_text())
    models = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    tasks = set(dag_report["dags"]["tierhouse_grading"]["tasks"])
    assert {f"dbt_build.{model}_model_build" for model in models} <= tasks


def test_parse_time_per_file_is_reported(dag_report: dict, record_property) -> None:
    times = dag_report["parse_seconds"]
    assert set(times) == {f"{dag_id}.py" for dag_id in EXPECTED_DAGS}
    for file_name, seconds in times.items():
        record_property(f"parse_seconds[{file_name}]", seconds)
        print(f"DAG file {file_name} parsed in {seconds:.3f} s")
