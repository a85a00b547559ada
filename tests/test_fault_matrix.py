"""Fault matrix: the real task functions of the DAGs (tierhouse.orchestration.pipeline) against the
real PostgreSQL, each run as Airflow runs it (its job's login, from its Airflow connection).

(1) dbt killed half-way leaves the list in force; (3) the schedule and a backfill grading the same
month at once, two processes: dbt builds take turns, the month is published once; (4) every task of
the ingest DAG run twice leaves every table it writes with the same checksum, and so does every
task that writes of the grading, backfill, review, quarterly and appeals DAGs (raw, history,
published, audit): a retry, or a task cleared and run again, changes nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path
from subprocess import PIPE

import pytest

from tests.support import query
from tierhouse import settings
from tierhouse.devtools.generate import generate
from tierhouse.ingest.loaders import seed_shop_database
from tierhouse.ingest.sources import SOURCES
from tierhouse.settings import PROJECT_ROOT
from tierhouse.warehouse.connection import LOGINS, WarehouseUrl, login_url

#: Columns that record when or in which batch a row was written, not what it holds
VOLATILE = {"_loaded_at", "loaded_at", "quarantined_at", "updated_at", "_batch_id", "applied_at"}


def table_checksums(url: WarehouseUrl, schemas: tuple[str, ...] = ("raw", "pii", "shop", "tierhouse_meta")) -> dict[str, str]:
    """Per table, an md5 over its rows in a fixed order, leaving out the volatile columns. The
    shop extract's manifest row is named after its random batch id, so it counts by content."""
    tables = query(
        url,
        "select n.nspname, c.relname, array_agg(a.attname::text order by a.attnum)"
        " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where c.relkind = 'r' and n.nspname = any(%s) and not (a.attname = any(%s))"
        " group by 1, 2 order by 1, 2",
        (list(schemas), sorted(VOLATILE)),
    )
    sums = {}
    for schema, table, columns in tables:
        if (schema, table) == ("raw", "load_manifest"):
            columns = [c for c in columns if c not in ("file_name", "sha256")]
        listed = ", ".join(f'"{c}"' for c in columns)
        ((digest,),) = query(
            url,
            f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from (select {listed} from {schema}.{table}) as t",
        )
        sums[f"{schema}.{table}"] = digest
    return sums


@pytest.fixture
def airflow_connections(scratch_db: WarehouseUrl, monkeypatch: pytest.MonkeyPatch) -> WarehouseUrl:
    """Each job's Airflow connection, as the runner sets them: its own login on the test's warehouse."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.warehouse_conn_id('migrate').upper()}", scratch_db.url())
    for job in LOGINS:
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.warehouse_conn_id(job).upper()}", login_url(scratch_db, job).url())
    return scratch_db


def landing_area(url: WarehouseUrl, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small sample of every source in the landing area, and the shop stand-in filled."""
    generate(data_dir, 12, 3, 5, date.today())
    (data_dir / "imports").mkdir()
    shutil.copy(PROJECT_ROOT / "docs" / "examples" / "orders_import_example.csv", data_dir / "imports")
    seed_shop_database(url, data_dir / "shop")
    monkeypatch.setattr(settings, "DATA_DIR", data_dir)


def ingested(url: WarehouseUrl, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The landing area loaded by the ingest DAG's tasks, once each."""
    from tierhouse.orchestration import pipeline

    landing_area(url, data_dir, monkeypatch)
    for task in (pipeline.migrate_warehouse, pipeline.apply_access_controls, pipeline.extract_shop_orders):
        task()
    for name in SOURCES:
        pipeline.load_exports(name)


def test_every_task_of_the_ingest_dag_run_twice_leaves_identical_table_checksums(
    airflow_connections: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierhouse.orchestration import pipeline

    url = airflow_connections
    landing_area(url, tmp_path, monkeypatch)
    tasks: list[tuple[str, Callable[[], object]]] = [
        ("migrate_warehouse", pipeline.migrate_warehouse),
        ("apply_access_controls", pipeline.apply_access_controls),
        *((f"load_{name}", lambda name=name: pipeline.load_exports(name)) for name in SOURCES),
        ("extract_shop_orders", pipeline.extract_shop_orders),
        ("check_raw_quality", pipeline.check_raw_quality),
    ]
    for task_id, run in tasks:  # in the DAG's order
        run()
        once = table_checksums(url)
        run()
        assert table_checksums(url) == once, task_id
    # and the data did land: the checksums compared tables that hold something
    rows = query(url, "select source, sum(rows_loaded) from raw.load_manifest group by 1 order by 1")
    assert {source for source, _ in rows} == {*SOURCES, "shop"} and all(n > 0 for _, n in rows)


PUBLISHED = (
    "select period_month, count(*), md5(string_agg(customer_key || tier || published_at::text, ',' order by customer_key))"
    " from published.customer_tiers where policy = 'highend_flower' group by 1 order by 1"
)


@pytest.mark.e2e  # two full dbt builds and a killed one: minutes
def test_dbt_killed_half_way_leaves_the_grades_in_force_and_the_next_run_publishes_once(
    airflow_connections: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(1) A grading run whose dbt build is killed (the worker lost, SIGKILL) publishes nothing:
    the list in force stays as it was; the retry builds and publishes the month once."""
    from tierhouse.grading.transform import dbt_command, dbt_env, run_dbt
    from tierhouse.orchestration import pipeline

    url = airflow_connections
    ingested(url, tmp_path, monkeypatch)
    build = ["build", "--exclude", "test_type:unit", "--quiet"]
    pipeline.load_policies()
    run_dbt(url, *build)
    pipeline.apply_access_controls()  # as the DAGs grant what dbt built before publishing
    assert pipeline.publish_tiers("highend_flower", "2026-09", "september")["status"] == "published"
    in_force = query(url, PUBLISHED)

    # the October run: dbt is killed once it has rebuilt an intermediate model (seeds and staging
    # rebuilt, the marts not yet)
    cmd = dbt_command(*build[:-1])
    env = {**dbt_env(url), "PYTHONUNBUFFERED": "1"}  # each line as dbt writes it
    dbt = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert dbt.stdout is not None
    progress = []
    for line in dbt.stdout:
        progress.append(line)
        if " OK created " in line and " intermediate." in line:
            break
    else:
        pytest.fail("dbt ended before it was killed:\n" + "".join(progress[-20:]))
    os.killpg(dbt.pid, signal.SIGKILL)
    assert dbt.wait(timeout=60) == -signal.SIGKILL
    assert query(url, PUBLISHED) == in_force
    assert query(url, "select count(*) from history.grading_runs") == [(1,)]

    # the retry: dbt builds again from where the kill left it, then the month is published once
    run_dbt(url, *build)
    pipeline.apply_access_controls()
    assert pipeline.publish_tiers("highend_flower", "2026-10", "october")["status"] == "published"
    assert pipeline.publish_tiers("highend_flower", "2026-10", "october-again")["status"] == "unchanged"
    assert query(url, PUBLISHED)[0] == in_force[0]
    assert query(url, "select period_month, list_kind, airflow_run_id from history.grading_runs order by 1") == [
        (date(2026, 9, 1), "initial", "september"),
        (date(2026, 10, 1), "initial", "october"),
    ]


#: One grading run of a month in its own process, as its DAG's tasks run it: the policy files, a
#: dbt build, the grants, then the scheduled run's audit and publish of the month, or the
#: backfill's walk over it. Prints the publish outcomes as its last line.
GRADING_RUN = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from tierhouse.grading.transform import run_dbt
from tierhouse.orchestration import pipeline
from tierhouse.errors import TierhouseError
role, policy, period = sys.argv[1:4]
try:
    pipeline.load_policies()
    run_dbt(pipeline.warehouse_url("dbt"), "build", "--exclude", "test_type:unit", "--quiet")
    pipeline.apply_access_controls()
    if role == "schedule":
        pipeline.audit_tiers(policy, period)
        outcomes = [pipeline.publish_tiers(policy, period, "scheduled__" + period)]
    else:
        outcomes = pipeline.backfill(policy, [period], "backfill__" + period)
except TierhouseError as error:
    print(f"tierhouse: {error}")
    sys.exit(2)
print(json.dumps([o["status"] for o in outcomes]))
"""


@pytest.mark.e2e  # two dbt builds, one after the other: about two minutes
def test_the_schedule_and_a_backfill_grading_the_same_month_at_once_publish_it_once(
    airflow_connections: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(3) The month-end run and a backfill of the same month, two real processes started
    together, each building dbt and publishing: one waits for the other (or fails with one line
    naming the policy and month); the month is recorded and published once, never interleaved."""
    import json
    import sys

    from tierhouse.lifecycle.publish import SNAPSHOT_COLUMNS, digest

    url = airflow_connections
    ingested(url, tmp_path, monkeypatch)
    command = [sys.executable, "-c", GRADING_RUN]
    runs = [
        subprocess.Popen([*command, role, "highend_flower", "2026-10"], cwd=PROJECT_ROOT, stdout=PIPE, stderr=PIPE, text=True)
        for role in ("schedule", "backfill")
    ]
    results = [run.communicate(timeout=900) + (run.returncode,) for run in runs]
    for out, err, code in results:
        assert code == 0, out[-2000:] + err[-2000:]
    # the second dbt build waited for the first instead of failing on its half-built relations
    assert sum("another dbt build" in out + err for out, err, _ in results) == 1
    # the month was published once: one run recorded it, the other found the same list
    statuses = sorted(json.loads(out.strip().splitlines()[-1])[0] for out, _, _ in results)
    assert statuses == ["published", "unchanged"]
    ((run_id, snapshot_hash, row_count),) = query(
        url,
        "select run_id::text, snapshot_hash, row_count from history.grading_runs"
        " where policy = 'highend_flower' and period_month = '2026-10-01'",
    )
    assert query(url, "select count(*) from history.restatement_candidates") == [(0,)]
    published = query(
        url,
        f"select {', '.join(SNAPSHOT_COLUMNS)} from published.customer_tiers"
        " where policy = 'highend_flower' and period_month = '2026-10-01' order by customer_key",
    )
    assert len(published) == row_count > 0 and digest(published) == snapshot_hash, run_id


#: What a grading task run again may add: each read of personal data is an event the steward's
#: access log records (docs/PRIVACY.md), with the read that used the log row, so the
#: de-identification gate every publish path runs adds its read once per run by design. Nothing
#: else may change (not even a timestamp: a rerun that records nothing rewrites nothing).
READ_LOG = "audit.access_log"
READ_LOGS = {READ_LOG, "audit.access_log_reads"}


def run_twice(url: WarehouseUrl, task_id: str, run: Callable[[], object]) -> object:
    """Run a task, then again as a retry or a cleared task would: every table of raw, history,
    published and audit keeps its checksum, but for the gate's logged reads."""
    schemas = ("raw", "history", "published", "audit")
    first = run()
    once = table_checksums(url, schemas)
    (reads,) = query(url, f"select coalesce(max(access_id), 0) from {READ_LOG}")[0]
    run()
    again = table_checksums(url, schemas)
    assert {t: s for t, s in again.items() if t not in READ_LOGS} == {t: s for t, s in once.items() if t not in READ_LOGS}, (
        task_id
    )
    added = query(url, f"select distinct reason_code from {READ_LOG} where access_id > %s", (reads,))
    assert added in ([], [("deidentification_gate",)]), task_id
    return first


@pytest.mark.e2e  # one dbt build, then every grading-side task twice: about two minutes
def test_every_task_of_the_grading_review_quarterly_backfill_and_appeals_dags_run_twice_changes_nothing(
    airflow_connections: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(4) beyond ingest: the tasks of the grading, backfill, review, quarterly and appeals DAGs
    that write, each run twice in the DAGs' order, leave every table of raw, history, published
    and audit as the first run left it (the DAG's dbt build is the dbt-kill case's; Cosmos runs
    it one model at a time)."""
    from datetime import datetime, timedelta

    from tierhouse.grading.transform import run_dbt
    from tierhouse.lifecycle import appeals, review
    from tierhouse.orchestration import pipeline
    from tierhouse.periods import CHINA

    url = airflow_connections
    ingested(url, tmp_path, monkeypatch)
    run_twice(url, "load_policies", pipeline.load_policies)
    run_dbt(url, "build", "--exclude", "test_type:unit", "--quiet")
    run_twice(url, "apply_access_controls", pipeline.apply_access_controls)
    run_twice(url, "audit_deidentification", pipeline.check_deidentification)

    # tierhouse_grading: September, a quarter end every policy lists
    for policy in ("highend_flower", "service_levels", "abcd"):
        run_twice(url, f"audit_{policy}", lambda p=policy: pipeline.audit_tiers(p, "2026-09"))
        outcome = run_twice(url, f"publish_{policy}", lambda p=policy: pipeline.publish_tiers(p, "2026-09", "grading"))
        assert outcome["status"] == "published", policy  # type: ignore[index]
    # tierhouse_backfill: October, each policy walking the months in order (P2 and P3 skip it)
    for policy in ("highend_flower", "service_levels", "abcd"):
        run_twice(url, f"backfill {policy}", lambda p=policy: pipeline.backfill(p, ["2026-10"], "backfill"))
    initial = query(url, "select policy, to_char(period_month, 'YYYY-MM') from history.grading_runs order by 1, 2")
    assert initial == [
        ("abcd", "2026-09"),
        ("highend_flower", "2026-09"),
        ("highend_flower", "2026-10"),
        ("service_levels", "2026-09"),
    ]

    # tierhouse_review: a reviewer's change, then the confirmed lists once their window closed
    (customer,) = query(
        url,
        "select customer_key from history.tier_snapshots join history.grading_runs using (run_id)"
        " where policy = 'highend_flower' and period_month = '2026-09-01' and tier = 'none' order by 1 limit 1",
    )[0]
    _, deadline = review.review_window(url, "highend_flower", date(2026, 9, 1))
    published_at = query(url, "select min(created_at) from history.grading_runs")[0][0]
    review.add_review(
        login_url(url, "review"), "highend_flower", date(2026, 9, 1), customer, "potential", "Li Wei",
        "a standing order for the shop's events", now=published_at + timedelta(hours=1),
    )  # fmt: skip
    after_window = deadline + timedelta(days=1)
    confirmed = run_twice(url, "confirm_due_lists", lambda: pipeline.confirm_due_lists(after_window, "review"))
    assert {o["status"] for o in confirmed} == {"confirmed"}  # type: ignore[attr-defined]

    # tierhouse_quarterly: Q3 re-graded on the confirmed September list
    assert pipeline.regrade_base_ready("highend_flower", "2026-09")
    quarterly = run_twice(url, "regrade_quarter", lambda: pipeline.regrade_quarter("highend_flower", "2026-09", "quarterly"))
    assert quarterly["status"] == "published"  # type: ignore[index]

    # tierhouse_appeals: an appeal past its due day fails the check, the same way twice
    _, due = appeals.file_appeal(
        login_url(url, "review"), "highend_flower", date(2026, 9, 1), customer, "a guest checkout order is missing",
        "Demo Service Desk", received_at=datetime(2026, 10, 20, 10, tzinfo=CHINA),
    )  # fmt: skip

    def check_deadlines() -> object:
        with pytest.raises(appeals.AppealsOverdue):
            pipeline.check_appeal_deadlines(due + timedelta(days=1))
        return None

    run_twice(url, "check_appeal_deadlines", check_deadlines)
    kinds = query(url, "select list_kind, count(*) from history.grading_runs group by 1 order by 1")
    assert dict(kinds).keys() == {"initial", "confirmed", "quarterly"}
