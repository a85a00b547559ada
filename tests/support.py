"""Helpers the tests import (fixtures stay in conftest.py, which pytest loads by itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierhouse.warehouse.connection import WarehouseUrl, connect


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
