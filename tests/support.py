"""Helpers the tests import (fixtures stay in conftest.py, which pytest loads by itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierhouse.privacy import crypto
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
