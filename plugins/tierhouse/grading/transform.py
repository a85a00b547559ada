"""Running dbt: from the command line (manifest, tests, engineers) and, via Cosmos, in Airflow."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tierhouse import settings
from tierhouse.warehouse.connection import WarehouseUrl, login_url

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

#: The warehouse-wide advisory lock every dbt command that builds relations holds while it runs.
#: dbt rebuilds shared tables under fixed names (``<model>__dbt_tmp``, the seeds' tables), so two
#: builds of one database at once (the month-end run and a backfill, two DAGs) fail each other
#: with "relation already exists"; holding this lock, the second waits for the first instead.
DBT_BUILD_LOCK = "tierhouse.grading.dbt_build"

#: dbt commands that create or replace relations (``dbt docs generate``, ``parse``, ``ls`` do not)
BUILDING_COMMANDS = frozenset({"build", "run", "seed", "snapshot"})


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
    """Run one dbt command against the warehouse; output is streamed to the caller's terminal. A
    command that builds waits for any other build of the same warehouse (:data:`DBT_BUILD_LOCK`)."""
    if args and args[0] in BUILDING_COMMANDS:
        with dbt_build_lock(url):
            return subprocess.run(dbt_command(*args), env=dbt_env(url), check=check, text=True)
    return subprocess.run(dbt_command(*args), env=dbt_env(url), check=check, text=True)


def acquire_dbt_build_lock(url: WarehouseUrl) -> PgConnection:
    """Take :data:`DBT_BUILD_LOCK` (a session lock, as the dbt login), waiting while another build
    holds it; held until the returned connection closes, which a crashed holder's does too."""
    import psycopg2

    conn = psycopg2.connect(login_url(url, "dbt").dsn(), application_name="tierhouse dbt build lock")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(hashtext(%s))", (DBT_BUILD_LOCK,))
            if not cur.fetchone()[0]:
                log.info("another dbt build of %s is running; waiting for it to end", url.dbname)
                cur.execute("select pg_advisory_lock(hashtext(%s))", (DBT_BUILD_LOCK,))
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def dbt_build_lock(url: WarehouseUrl) -> Iterator[None]:
    """:func:`acquire_dbt_build_lock` for the block."""
    conn = acquire_dbt_build_lock(url)
    try:
        yield
    finally:
        conn.close()
