"""The DAG folder imports cleanly and every DAG carries what operators rely on: tags, an owner,
retries, no database or network access at parse time, and a parse time the dag-processor can
afford. The checks apply to every file in dags/, whatever DAGs are added."""

from __future__ import annotations

import json
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tierhouse import settings
from tierhouse.orchestration.config import load_config
from tierhouse.orchestration.local_airflow import airflow_env
from tierhouse.warehouse.connection import WarehouseUrl

EXPECTED_DAGS = {
    "tierhouse_ingest", "tierhouse_grading", "tierhouse_review", "tierhouse_quarterly", "tierhouse_appeals", "tierhouse_backfill",
    "tierhouse_dsr",
}  # fmt: skip


DAG_FOLDER = settings.PROJECT_ROOT / "dags"
MIN_RETRIES = 2
#: The tasks allowed fewer retries, as (dag id pattern, task id pattern), each with its reason.
RETRY_EXCEPTIONS = {
    # A publish audit (audit_<policy> in the grading DAG) is not retried: the same data fails
    # the same way on retry, so retrying only delays the alert; the last published list stays.
    ("*", "audit_*"),
}
MAX_PARSE_SECONDS = 1.0


def run_dag_report(dag_folder: Path, airflow_home: Path) -> dict:
    """What tests/dag_report.py finds in ``dag_folder``, parsed with no network and no warehouse."""
    return _report("dag_report.py", "DAG_REPORT ", airflow_home, str(dag_folder))


def _report(script: str, prefix: str, airflow_home: Path, *args: str) -> dict:
    """The JSON a report script of tests/ prints after ``prefix``, run in a subprocess with
    Airflow's settings and a warehouse that does not exist."""
    unreachable = WarehouseUrl("127.0.0.1", 9, "nobody", "", "nowhere")
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), *args],
        env=airflow_env(unreachable, airflow_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith(prefix)), None)
    assert line, f"no report; stderr:\n{result.stderr[-4000:]}"
    return json.loads(line.removeprefix(prefix))


@pytest.fixture(scope="module")
def dag_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_dag_report(DAG_FOLDER, tmp_path_factory.mktemp("airflow_home"))


def test_dag_folder_has_no_import_errors(dag_report: dict) -> None:
    assert dag_report["import_errors"] == {}


def test_expected_dags_are_present(dag_report: dict) -> None:
    assert set(dag_report["dags"]) == EXPECTED_DAGS


def test_every_dag_file_is_parsed_and_defines_a_dag(dag_report: dict) -> None:
    files = {path.name for path in DAG_FOLDER.glob("*.py")}
    assert set(dag_report["parse_seconds"]) == files
    assert {dag["file"] for dag in dag_report["dags"].values()} == files


def test_every_dag_has_tags_owner_and_retries(dag_report: dict) -> None:
    for dag_id, dag in dag_report["dags"].items():
        assert "tierhouse" in dag["tags"], dag_id
        assert dag["max_active_runs"] == 1, dag_id
        assert dag["owner"] == "data-engineering", dag_id
        assert dag["retries"] >= MIN_RETRIES, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "data-engineering", (dag_id, task_id)
            if not _may_skip_retries(dag_id, task_id):
                assert task["retries"] >= MIN_RETRIES, (dag_id, task_id)


def _may_skip_retries(dag_id: str, task_id: str) -> bool:
    return any(fnmatch(dag_id, dags) and fnmatch(task_id, tasks) for dags, tasks in RETRY_EXCEPTIONS)


def test_retry_exceptions_still_match_tasks(dag_report: dict) -> None:
    for dags, tasks in RETRY_EXCEPTIONS:
        matched = [
            task_id
            for dag_id, dag in dag_report["dags"].items()
            if fnmatch(dag_id, dags)
            for task_id in dag["tasks"]
            if fnmatch(task_id, tasks)
        ]
        assert matched, f"no task matches the retry exception {(dags, tasks)}: remove it"


def test_no_dag_file_reaches_the_network_or_a_database_at_parse_time(dag_report: dict) -> None:
    assert dag_report["network_calls"] == {}


def test_grading_dag_renders_every_dbt_model_as_a_task(dag_report: dict) -> None:
    manifest = json.loads(settings.DBT_MANIFEST.read_text())
    models = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    tasks = set(dag_report["dags"]["tierhouse_grading"]["tasks"])
    assert {f"dbt_build.{model}_model_build" for model in models} <= tasks


def test_no_dbt_task_reads_a_model_its_upstream_tasks_have_not_built(dag_report: dict) -> None:
    """A fresh warehouse's first run once failed with `stg_shop__order_lines does not exist`: a
    relationships test between the two shop staging models ran inside `dbt build --select
    stg_shop__orders` (dbt selects every test touching a selected model) before the other
    model's task had run. Every model's task runs after the tasks of the models it reads, and a
    test reads one model only (a source besides is fine: the migrations created it)."""
    manifest = json.loads(settings.DBT_MANIFEST.read_text())
    tasks = dag_report["dags"]["tierhouse_grading"]["tasks"]
    models = {uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    for model in models.values():
        upstream = tasks[f"dbt_build.{model['name']}_model_build"]["upstream"]
        for parent in model["depends_on"]["nodes"]:
            if parent in models:
                assert f"dbt_build.{models[parent]['name']}_model_build" in upstream, (model["name"], parent)

    tests = [node for node in manifest["nodes"].values() if node["resource_type"] == "test"]
    for test in tests:
        read = {parent for parent in test["depends_on"]["nodes"] if parent in models}
        # under `dbt build --select <model>` a test runs in the task of every model it reads
        assert len(read) <= 1, f"{test['name']} reads {sorted(read)}"


def test_dbt_tasks_emit_no_assets_of_their_own(dag_report: dict) -> None:
    """The DAGs declare the project's Assets (tierhouse.orchestration.assets); Cosmos's Asset
    per dbt model (named after the warehouse host) is switched off in its RenderConfig."""
    for dag_id, dag in dag_report["dags"].items():
        dbt_tasks = {task_id: task for task_id, task in dag["tasks"].items() if task_id.startswith("dbt_build.")}
        for task_id, task in dbt_tasks.items():
            assert task["outlets"] == [], f"{dag_id}.{task_id}"
            assert task["emit_datasets"] is False, f"{dag_id}.{task_id}"


def test_every_dbt_task_holds_the_warehouse_wide_build_lock(dag_report: dict) -> None:
    """The month-end run and a backfill are two DAGs, each with its dbt tasks: every dbt task
    takes the build lock first (tierhouse.grading.transform.DBT_BUILD_LOCK), so two never rebuild
    one relation at once (tests/test_fault_matrix.py runs two builds together)."""
    dbt_tasks = [
        task for dag in dag_report["dags"].values() for task_id, task in dag["tasks"].items() if task_id.startswith("dbt_build.")
    ]
    assert dbt_tasks
    assert all(task["hooks"] == ["take_dbt_build_lock", "release_dbt_build_lock"] for task in dbt_tasks)


@pytest.mark.parametrize(("dag_id", "gate"), [("tierhouse_grading", "lists_{}"), ("tierhouse_backfill", "selected_{}")])
def test_a_run_can_be_limited_to_named_policies(dag_report: dict, dag_id: str, gate: str) -> None:
    """The `policies` param defaults to every graded policy (tierhouse.yml); each policy's audit runs only after
    its short-circuit gate (tierhouse.orchestration.pipeline.policy_selected) let it through."""
    dag, graded = dag_report["dags"][dag_id], list(load_config().policies)
    assert dag["params"]["policies"] == graded
    for policy in graded:
        assert gate.format(policy) in dag["tasks"][f"audit_{policy}"]["upstream"]


BAD_DAG_FILES = {
    # "airflow" and "dag" must appear in a file for the DagBag to consider it
    "calls_home.py": "# airflow dag\nimport socket\nsocket.create_connection(('192.0.2.1', 443), timeout=1)\n",
    "queries_warehouse.py": "# airflow dag\nimport psycopg2\npsycopg2.connect(host='192.0.2.1', connect_timeout=1)\n",
    "slow.py": "# airflow dag\nimport time\ntime.sleep(1.2)\n",
}


def test_the_parse_checks_catch_network_calls_and_slow_files(tmp_path: Path) -> None:
    dag_folder = tmp_path / "dags"
    dag_folder.mkdir()
    for name, text in BAD_DAG_FILES.items():
        (dag_folder / name).write_text(text)
    report = run_dag_report(dag_folder, tmp_path / "airflow_home")
    assert set(report["network_calls"]) == {"calls_home.py", "queries_warehouse.py"}
    assert {Path(path).name for path in report["import_errors"]} == {"calls_home.py", "queries_warehouse.py"}
    assert report["parse_seconds"]["slow.py"] >= MAX_PARSE_SECONDS


def test_the_dags_follow_the_deployment_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tierhouse.yml decides, at parse time: a source it leaves out has no load task (the shop
    no extract), a policy it leaves out no branch."""
    config = tmp_path / "tierhouse.yml"
    config.write_text("sources:\n  crm: {}\n  imports: {}\n  pos: {enabled: false}\npolicies: [abcd]\n")
    monkeypatch.setenv("TIERHOUSE_CONFIG", str(config))
    report = run_dag_report(DAG_FOLDER, tmp_path / "airflow_home")
    assert report["import_errors"] == {}
    ingest = report["dags"]["tierhouse_ingest"]["tasks"]
    assert sorted(t for t in ingest if t.startswith(("load_", "extract_"))) == ["load_crm", "load_imports"]
    assert set(ingest["check_raw_quality"]["upstream"]) == {"load_crm", "load_imports"}
    for dag_id in ("tierhouse_grading", "tierhouse_backfill"):
        dag = report["dags"][dag_id]
        assert dag["params"]["policies"] == ["abcd"]
        assert sorted(t for t in dag["tasks"] if t.startswith("audit_") and t != "audit_deidentification") == ["audit_abcd"]
    # highend_flower alone has re-grade rules, and this deployment does not grade it
    assert [t for t in report["dags"]["tierhouse_quarterly"]["tasks"] if t.startswith("regrade_")] == []


#: A run asked for at 14:00 China time on 29 November 2026 (06:00 UTC): it stands for that day.
RUN_AFTER = "2026-11-29T06:00:00+00:00"


@pytest.fixture(scope="module")
def no_logical_date_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every DAG's Python tasks run with the context Airflow builds for a run with no logical date
    and no data interval (tests/dag_context_report.py), the warehouse calls recorded, not made."""
    return _report(
        "dag_context_report.py", "CONTEXT_REPORT ", tmp_path_factory.mktemp("airflow_home"), str(DAG_FOLDER), RUN_AFTER
    )


def test_every_dag_runs_when_triggered_without_a_logical_date(no_logical_date_report: dict) -> None:
    """`airflow dags trigger` and the UI's trigger make a run with no logical date and no data
    interval (so the context has no `logical_date`, `ds` or `data_interval_*`); an Asset-triggered
    run has none either. No task of any DAG may need them."""
    runs = no_logical_date_report["runs"]
    assert no_logical_date_report["import_errors"] == {}
    assert {key.split(":")[0] for key in runs} == EXPECTED_DAGS
    assert "tierhouse_grading:asset_triggered" in runs
    errors = {
        f"{key} {task_id}": task["error"]
        for key, run in runs.items()
        for task_id, task in run["tasks"].items()
        if "error" in task
    }
    assert errors == {}
    ran = {key: [task_id for task_id, task in run["tasks"].items() if "result" in task] for key, run in runs.items()}
    assert all(ran.values()), ran


def test_a_run_without_a_logical_date_stands_for_the_day_it_was_asked_for(no_logical_date_report: dict) -> None:
    runs = no_logical_date_report["runs"]

    def calls(key: str, name: str) -> list[list]:
        return [args for called, args, _ in runs[key]["calls"] if called == name]

    # ingest: the Asset event says the data is complete through the day of the run
    assert runs["tierhouse_ingest:manual"]["tasks"]["check_raw_quality"]["outlet_extra"] == {"data_through": "2026-11-29"}
    # grading, by hand or from that event: the last complete month, published by the monthly policy
    # only (P2 and P3 list at quarter ends); the others' branches are skipped
    for key in ("tierhouse_grading:manual", "tierhouse_grading:asset_triggered"):
        assert runs[key]["tasks"]["resolve_period"]["result"] == "2026-10"
        assert [args[:2] for args in calls(key, "publish_tiers")] == [["highend_flower", "2026-10"]]
        assert runs[key]["tasks"]["publish_abcd"] == {"skipped": True}
    assert calls("tierhouse_review:manual", "confirm_due_lists")[0][0] == "2026-11-29"
    assert calls("tierhouse_review:manual", "check_approvals") == [["2026-11-29"]]
    assert calls("tierhouse_appeals:manual", "check_appeal_deadlines") == [["2026-11-29"]]
    assert runs["tierhouse_quarterly:manual"]["tasks"]["resolve_quarter"]["result"] == "2026-09"
