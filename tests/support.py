"""Helpers the tests import (fixtures stay in conftest.py, which pytest loads by itself)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.errors
import pytest

from tierhouse.warehouse.connection import LOGINS, WarehouseUrl, connect, login_url

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection


@dataclass(frozen=True)
class GradedWarehouse:
    """What the ``graded_warehouse`` fixture built: sample data pushed through the real DAGs."""

    url: WarehouseUrl
    data_dir: Path
    airflow: object  # tierhouse.orchestration.local_airflow.LocalAirflow
    ingest_run: object
    grading_run: object
    period: str
    generated: object  # tierhouse.devtools.generate.GeneratedCounts


def query(url: WarehouseUrl, sql: str, params: tuple | dict = ()) -> list[tuple]:
    """Run one statement in its own committed transaction and return its rows."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@contextmanager
def as_login(url: WarehouseUrl, job_or_user: str) -> Iterator[PgConnection]:
    """A connection to ``url``'s database as a job's own login (``gate`` or ``th_gate``), with its
    own password and no ``SET ROLE``, checked to be that login and no superuser; what it has not
    committed is rolled back at the end."""
    job = next(job for job, login in LOGINS.items() if job_or_user in (job, login.user))
    login = login_url(url, job)
    conn = psycopg2.connect(login.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select session_user, current_user, (select rolsuper from pg_roles where rolname = session_user)")
            assert cur.fetchone() == (login.user, login.user, False)  # the real login, not a superuser
        yield conn
    finally:
        conn.rollback()
        conn.close()


def assert_denied(url: WarehouseUrl, job_or_user: str, *statements: str, role: str | None = None) -> None:
    """Each statement, run as the job's own login (acting as its group ``role`` when given, as dbt
    does), fails with ``insufficient_privilege``; nothing is kept."""
    with as_login(url, job_or_user) as conn, conn.cursor() as cur:
        if role:
            cur.execute(f"set role {role}")
        for statement in statements:
            cur.execute("savepoint denied")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            cur.execute("rollback to savepoint denied")
