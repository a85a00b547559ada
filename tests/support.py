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

from tierhouse.privacy import crypto
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


def every_text_value(url: WarehouseUrl, skip_schemas: tuple[str, ...] = ()) -> dict[str, str]:
    """Every text value of every table of every schema but ``skip_schemas``, decrypted where it
    is encrypted, by ``schema.table.column``: where a person's data may still sit."""
    columns = query(
        url,
        "select table_schema, table_name, column_name from information_schema.columns join information_schema.tables"
        " using (table_schema, table_name) where table_type = 'BASE TABLE'"
        " and table_schema not in ('pg_catalog', 'information_schema') and not (table_schema = any(%s))"
        " and data_type in ('text', 'character varying', 'jsonb', 'json')",
        (list(skip_schemas),),
    )
    found = {}
    for schema, table, column in columns:
        values = [v for (v,) in query(url, f'select "{column}"::text from "{schema}"."{table}" where "{column}" is not null')]
        where = f"{schema}.{table}.{column}"
        found[where] = "\n".join(crypto.decrypt(v, where) if crypto.is_encrypted(v) else v for v in values)
    return found


def files_with(folder: Path, needles: tuple[str, ...]) -> list[str]:
    """``file: needle`` for every file below ``folder`` holding a needle, in the encodings exports come in."""
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            text = data.decode("utf-8", "replace") + data.decode("utf-16", "replace") + data.decode("gb18030", "replace")
            hits += [f"{path.relative_to(folder)}: {needle}" for needle in needles if needle in text]
    return hits


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
