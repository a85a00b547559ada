"""Fault matrix: the real task functions of the DAGs (tierhouse.orchestration.pipeline) against the
real PostgreSQL, each run as Airflow runs it (its job's login, from its Airflow connection).

(4) Every task of the ingest DAG run twice leaves every table it writes with the same checksum:
a retry, or a task cleared and run again, changes nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

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


def test_every_task_of_the_ingest_dag_run_twice_leaves_identical_table_checksums(
    airflow_connections: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierhouse.orchestration import pipeline

    url = airflow_connections
    generate(tmp_path, 12, 3, 5, date.today())
    (tmp_path / "imports").mkdir()
    shutil.copy(PROJECT_ROOT / "docs" / "examples" / "orders_import_example.csv", tmp_path / "imports")
    seed_shop_database(url, tmp_path / "shop")
    monkeypatch.setattr(settings, "DATA_DIR", tmp_path)
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
