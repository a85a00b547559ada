"""The real local deployment (tierhouse.orchestration.deployment): api-server, scheduler,
dag-processor and triggerer as separate processes, LocalExecutor, metadata on the embedded
PostgreSQL in a database of its own. Ingest is triggered by hand with no logical date, as
`airflow dags trigger` and the UI do, and the grading run its Asset triggers must succeed and
publish. Minutes, not seconds, however small the data: every dbt model of the grading run is a
task process of its own that starts dbt, and the machine's load multiplies that."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support import query
from tierhouse.devtools.generate import generate
from tierhouse.ingest.loaders import seed_shop_database
from tierhouse.orchestration.deployment import COMPONENTS, Deployment, drop_metadata_database
from tierhouse.periods import CHINA
from tierhouse.warehouse.connection import WarehouseUrl, _free_port
from tierhouse.warehouse.migrate import migrate

FINISHED = {"success", "failed"}


@pytest.fixture
def deployment(server_url: WarehouseUrl, empty_db: WarehouseUrl, tmp_path: Path) -> Iterator[Deployment]:
    """A warehouse with a year of a small retailer's data, and a deployment over it (its metadata
    in a database of its own), stopped by pid and dropped afterwards whatever happened."""
    warehouse = empty_db
    deployment = Deployment(
        warehouse,
        home=tmp_path / "airflow",
        metadata_db=f"{warehouse.dbname}_meta",
        extra_env=(("TIERHOUSE_DATA_DIR", str(tmp_path / "data")),),
        requested_port=_free_port(20000 + os.getpid() % 20000),
    )
    try:
        migrate(warehouse)  # the shop stand-in's tables, before the DAGs' own migrate task
        # the month before today (China) is the one the ingest run completes: data up to its end
        generate(tmp_path / "data", 40, 13, 11, datetime.now(CHINA).date().replace(day=1), plant_bad_rows=False)
        seed_shop_database(warehouse, tmp_path / "data" / "shop")
        yield deployment
    finally:
        deployment.stop()
        drop_metadata_database(server_url, deployment.metadata_db)


def _runs(deployment: Deployment, dag_id: str) -> list[dict]:
    return deployment.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def _wait_for(what: str, check, timeout_s: float, deployment: Deployment):
    deadline = time.monotonic() + timeout_s
    while (found := check()) is None:
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f} s; logs in {deployment.log_dir}"
        time.sleep(3)
    return found


def _finished_run(deployment: Deployment, dag_id: str, run_type: str, timeout_s: float) -> dict:
    def check():
        runs = [run for run in _runs(deployment, dag_id) if run["run_type"] == run_type]
        return runs[0] if runs and runs[0]["state"] in FINISHED else None

    return _wait_for(f"a finished {run_type} run of {dag_id}", check, timeout_s, deployment)


def _failed_tasks(deployment: Deployment, run: dict) -> str:
    """The failed tasks of a run with the end of their logs, for the assertion message."""
    path = f"/api/v2/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances?limit=200"
    failed = [ti for ti in deployment.api("GET", path)["task_instances"] if ti["state"] in {"failed", "upstream_failed"}]
    report = []
    for ti in failed:
        folder = deployment.log_dir / f"dag_id={run['dag_id']}" / f"run_id={run['dag_run_id']}" / f"task_id={ti['task_id']}"
        logs = sorted(folder.glob("*.log"))
        tail = logs[-1].read_text(errors="replace")[-2500:] if logs else "(no log)"
        report.append(f"--- {ti['task_id']} {ti['state']}\n{tail}")
    return "\n".join(report) or "no failed task"


@pytest.mark.e2e
@pytest.mark.deployment
@pytest.mark.timeout(3600)
def test_a_manual_ingest_without_a_logical_date_triggers_a_grading_run_that_publishes(
    deployment: Deployment, record_property
) -> None:
    started = time.monotonic()
    states = deployment.start()
    assert [state.name for state in states if state.running] == list(COMPONENTS)
    # a second start changes nothing: the same processes keep running
    assert deployment.start() == states

    dags = _wait_for(
        "the dag-processor parsing the DAGs",
        lambda: {dag["dag_id"] for dag in deployment.api("GET", "/api/v2/dags?limit=100")["dags"]} or None,
        300,
        deployment,
    )
    assert {"tierhouse_ingest", "tierhouse_grading"} <= dags
    assert deployment.api("GET", "/api/v2/importErrors")["total_entries"] == 0

    for dag_id in ("tierhouse_ingest", "tierhouse_grading"):
        deployment.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    # Unpausing runs each DAG's latest complete interval at once (catchup=False): ingest's
    # yesterday, grading's last month. An operator may mark those failed; the test does, so the
    # runs it watches are the manual one and the one its Asset event triggers.
    for dag_id in ("tierhouse_ingest", "tierhouse_grading"):
        scheduled = _wait_for(
            f"the catch-up run of {dag_id}",
            lambda dag_id=dag_id: next((run for run in _runs(deployment, dag_id) if run["run_type"] == "scheduled"), None),
            120,
            deployment,
        )
        deployment.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{scheduled['dag_run_id']}", {"state": "failed"})

    manual = deployment.api("POST", "/api/v2/dags/tierhouse_ingest/dagRuns", {"logical_date": None, "conf": {}})
    assert manual["logical_date"] is None and manual["data_interval_end"] is None

    ingest = _finished_run(deployment, "tierhouse_ingest", "manual", 900)
    assert ingest["state"] == "success", _failed_tasks(deployment, ingest)

    grading = _finished_run(deployment, "tierhouse_grading", "asset_triggered", 2400)
    assert grading["state"] == "success", _failed_tasks(deployment, grading)
    events = deployment.api("GET", f"/api/v2/dags/tierhouse_grading/dagRuns/{grading['dag_run_id']}/upstreamAssetEvents")
    assert {event["source_run_id"] for event in events["asset_events"]} == {manual["dag_run_id"]}

    xcom = f"/api/v2/dags/tierhouse_grading/dagRuns/{grading['dag_run_id']}/taskInstances/resolve_period/xcomEntries/return_value"
    period = deployment.api("GET", xcom)["value"]
    assert period == f"{datetime.now(CHINA).date().replace(day=1) - timedelta(days=1):%Y-%m}"
    recorded = query(
        deployment.warehouse,
        "select policy, list_kind, row_count from history.grading_runs where airflow_run_id = %s and period_month = %s",
        (grading["dag_run_id"], f"{period}-01"),
    )
    assert [(policy, kind) for policy, kind, _ in recorded] == [("highend_flower", "initial")]
    [(published,)] = query(
        deployment.warehouse,
        "select count(*) from published.customer_tiers where policy = 'highend_flower' and period_month = %s",
        (f"{period}-01",),
    )
    assert published == recorded[0][2] > 0

    stopped = deployment.stop()
    assert sorted(stopped) == sorted(COMPONENTS)
    assert not any(state.running for state in deployment.states())
    record_property("deployment_seconds", round(time.monotonic() - started))


def test_stop_signals_only_the_processes_its_pid_files_name_and_only_airflow_ones(tmp_path: Path) -> None:
    """A stale pid file whose pid now belongs to another program is dropped, never signalled."""
    deployment = Deployment(WarehouseUrl("127.0.0.1", 9, "nobody", "", "nowhere"), home=tmp_path)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        deployment.run_dir.mkdir(parents=True)
        for name in COMPONENTS:
            deployment.pid_file(name).write_text(f"{bystander.pid}\n")
        assert not any(state.running for state in deployment.states())
        assert deployment.stop() == []
        assert bystander.poll() is None  # still running
        assert list(deployment.run_dir.iterdir()) == []
    finally:
        bystander.kill()
        bystander.wait()
