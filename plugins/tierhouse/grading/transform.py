"""Running dbt: from the command line (manifest, tests, engineers) and, via Cosmos, in Airflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tierhouse import settings
from tierhouse.warehouse.connection import WarehouseUrl, login_url


def dbt_env(url: WarehouseUrl) -> dict[str, str]:
    """Environment for ``dbt_project/profiles.yml``: the warehouse as the dbt login (``url`` names
    the server and database), and no other secret: no key, no other login's password."""
    url = login_url(url, "dbt")
    return {
        **settings.without_secrets(dict(os.environ)),
        "TIERHOUSE_PG_HOST": url.host,
        "TIERHOUSE_PG_PORT": str(url.port),
        "TIERHOUSE_PG_USER": url.user,
        "TIERHOUSE_PG_PASSWORD": url.password,
        "TIERHOUSE_PG_DBNAME": url.dbname,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def dbt_executable() -> str:
    """dbt of the running interpreter's environment (the venv), else the one on PATH (images)."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def dbt_command(*args: str) -> list[str]:
    """One dbt command on this project, with its profile (run it with :func:`dbt_env`)."""
    return [
        dbt_executable(),
        *args,
        "--project-dir",
        str(settings.DBT_PROJECT_DIR),
        "--profiles-dir",
        str(settings.DBT_PROJECT_DIR),
    ]


def run_dbt(url: WarehouseUrl, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one dbt command against the warehouse; output is streamed to the caller's terminal."""
    return subprocess.run(dbt_command(*args), env=dbt_env(url), check=check, text=True)
