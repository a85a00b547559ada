"""Running the real DAGs from the command line with ``airflow dags test``.

This is how the demo and the end-to-end tests drive Airflow: the DAG files, the Cosmos task
group, the task SDK and the metadata database are all real; only the scheduler is replaced by
``dags test``, which executes a run in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.periods import TIMEZONE
from tierhouse.privacy.crypto import KEY_ENV, KEYS_FILE_ENV, PII_KEY_ENV, ensure_local_key
from tierhouse.warehouse.connection import JOBS, WarehouseUrl, login_url

DEFAULT_AIRFLOW_HOME = Path(os.environ.get("TIERHOUSE_AIRFLOW_HOME", settings.PROJECT_ROOT / ".airflow"))


class LocalAirflowError(TierhouseError, RuntimeError):
    """The local Airflow could not be set up (its metadata database)."""


@dataclass(frozen=True)
class LocalAirflow:
    """A local Airflow (SQLite metadata, the project's DAG folder) talking to one warehouse."""

    url: WarehouseUrl
    home: Path = DEFAULT_AIRFLOW_HOME
    extra_env: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        return airflow_env(self.url, self.home, dict(self.extra_env))


def _write_private(path: Path, content: dict) -> None:
    """A JSON file only its owner reads (0600 from the start, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(content, out)
    os.replace(temp, path)


def airflow_env(url: WarehouseUrl, home: Path = DEFAULT_AIRFLOW_HOME, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a local Airflow whose warehouse connections (one per job, each with that
    job's login) point at ``url``'s server and database.

    No secret is in it: the connections are in a file read by Airflow's local-filesystem secrets
    backend and the keys in another (both 0600), so dbt, which Cosmos runs in the task's process,
    finds neither its peers' passwords nor the keys with ``env_var``."""
    connections = {settings.warehouse_conn_id(job): login_url(url, job).url() for job in JOBS}
    _write_private(home / "connections.json", connections)
    keys = {name: value for name, value in os.environ.items() if name.startswith((KEY_ENV, PII_KEY_ENV))}
    for name, value in ensure_local_key().items():
        keys.setdefault(name, value)  # a key from the environment (a deployment's) wins
    _write_private(home / "keys.json", keys)
    env = {
        **settings.without_secrets(dict(os.environ)),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": TIMEZONE,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        # Cosmos keeps dbt's partial-parse file in its cache, keyed by DAG id only: in the shared
        # /tmp/cosmos, a checkout's or deployment's run against another warehouse changes the
        # profile, and every dbt task then re-parses the whole project (over a minute each)
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(home / "connections.json")}),
        KEYS_FILE_ENV: str(home / "keys.json"),
        "TIERHOUSE_HOME": str(settings.PROJECT_ROOT),
        "TIERHOUSE_RETRY_DELAY_SECONDS": os.environ.get("TIERHOUSE_RETRY_DELAY_SECONDS", "1"),
    }
    env.update(extra or {})
    return env


def airflow_executable() -> str:
    beside = Path(sys.executable).with_name("airflow")
    return str(beside) if beside.exists() else shutil.which("airflow") or "airflow"


def ensure_metadata_db(airflow: LocalAirflow) -> None:
    """Create (or migrate) Airflow's own SQLite metadata database; skipped when already done."""
    airflow.home.mkdir(parents=True, exist_ok=True)
    marker = airflow.home / ".migrated"
    if marker.exists() and (airflow.home / "airflow.db").exists():
        return
    result = subprocess.run([airflow_executable(), "db", "migrate"], env=airflow.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalAirflowError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    marker.write_text("ok\n")


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    run_id: str | None
    state: str | None
    returncode: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and self.state == "success"


def dags_test(
    airflow: LocalAirflow, dag_id: str, logical_date: str | None = None, conf: dict | None = None, echo: bool = True
) -> DagRunResult:
    """Run one DAG end to end with ``airflow dags test`` and report the run's final state."""
    ensure_metadata_db(airflow)
    cmd = [airflow_executable(), "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    before = _latest_run_id(airflow.home, dag_id)
    proc = subprocess.Popen(cmd, env=airflow.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(line)
    returncode = proc.wait()
    run_id = _latest_run_id(airflow.home, dag_id)
    state = _run_state(airflow.home, dag_id, run_id) if run_id and run_id != before else None
    return DagRunResult(dag_id, run_id, state, returncode, "".join(lines))


def _query(home: Path, sql: str, params: tuple) -> list[tuple]:
    db = home / "airflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _latest_run_id(home: Path, dag_id: str) -> str | None:
    rows = _query(home, "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,))
    return rows[0][0] if rows else None


def _run_state(home: Path, dag_id: str, run_id: str) -> str | None:
    rows = _query(home, "select state from dag_run where dag_id = ? and run_id = ?", (dag_id, run_id))
    return rows[0][0] if rows else None


def task_states(home: Path, dag_id: str, run_id: str) -> dict[str, str | None]:
    rows = _query(home, "select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id))
    return dict(rows)
