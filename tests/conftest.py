"""Shared fixtures: a real PostgreSQL (WAREHOUSE_URL or the embedded one), one scratch database
(migrated, or empty) per test that needs isolation, and one fully graded warehouse built by the real DAGs. Helpers the
tests import are in tests/support.py: pytest loads this file itself, tests never import it."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.support import GradedWarehouse
from tierhouse.privacy.crypto import KEY_ENV, PII_KEY_ENV
from tierhouse.settings import PROJECT_ROOT
from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseUrl, resolve_url, session, wait_until_ready
from tierhouse.warehouse.migrate import migrate

# Loaders pseudonymise phone numbers; the tests bring their own throw-away key.
os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
os.environ.setdefault(PII_KEY_ENV, secrets.token_hex(32))

E2E_CUSTOMERS = 300
E2E_MONTHS = 36
E2E_SEED = 7
E2E_PERIOD = "2026-09"  # a quarter end: all three policies list it


@pytest.fixture(scope="session")
def server_url() -> Iterator[WarehouseUrl]:
    """WAREHOUSE_URL, or the embedded server; stopped afterwards if the tests started it."""
    embedded = None if os.environ.get("WAREHOUSE_URL") else EmbeddedWarehouse()
    started_here = embedded is not None and not embedded.is_running()
    url = resolve_url()
    wait_until_ready(url)
    yield url
    if started_here:
        embedded.stop()


def _admin(url: WarehouseUrl, statement: str) -> None:
    with session(url) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)


@pytest.fixture
def empty_db(server_url: WarehouseUrl) -> Iterator[WarehouseUrl]:
    """An empty database of its own, dropped afterwards: for a test that plants its own tables."""
    name = f"tierhouse_t_{uuid.uuid4().hex[:10]}"
    _admin(server_url, f'create database "{name}"')
    try:
        yield dataclasses.replace(server_url, dbname=name)
    finally:
        _admin(server_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture
def scratch_db(empty_db: WarehouseUrl) -> WarehouseUrl:
    """A warehouse of its own with every migration applied (and no grants), dropped afterwards."""
    migrate(empty_db)
    return empty_db


@pytest.fixture(scope="session")
def graded_warehouse(server_url: WarehouseUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GradedWarehouse]:
    """Sample data pushed through the real ingest and grading DAGs, once per session."""
    from datetime import date

    from tierhouse.devtools.generate import generate
    from tierhouse.ingest.loaders import seed_shop_database
    from tierhouse.orchestration.local_airflow import LocalAirflow, dags_test

    name = f"tierhouse_e2e_{os.getpid()}"
    _admin(server_url, f'drop database if exists "{name}" with (force)')
    _admin(server_url, f'create database "{name}"')
    url = dataclasses.replace(server_url, dbname=name)
    migrate(url)  # as the DAGs' first task does; the shop stand-in needs it before the DAGs run
    data_dir = tmp_path_factory.mktemp("data")
    counts = generate(data_dir, E2E_CUSTOMERS, E2E_MONTHS, E2E_SEED, date(2026, 11, 1))
    # a retailer's own order history in the generic layout rides along
    (data_dir / "imports").mkdir()
    shutil.copy(PROJECT_ROOT / "docs" / "examples" / "orders_import_example.csv", data_dir / "imports")
    seed_shop_database(url, data_dir / "shop")
    airflow = LocalAirflow(url, tmp_path_factory.mktemp("airflow"), (("TIERHOUSE_DATA_DIR", str(data_dir)),))
    ingest = dags_test(airflow, "tierhouse_ingest", "2026-11-02", echo=False)
    assert ingest.succeeded, ingest.output[-6000:]
    grading = dags_test(airflow, "tierhouse_grading", conf={"period": E2E_PERIOD}, echo=False)
    assert grading.succeeded, grading.output[-6000:]
    try:
        yield GradedWarehouse(url, data_dir, airflow, ingest, grading, E2E_PERIOD, counts)
    finally:
        _admin(server_url, f'drop database if exists "{name}" with (force)')
