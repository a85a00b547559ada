"""Warehouse URL handling and the embedded PostgreSQL's life cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseError, WarehouseUrl, connect, resolve_url


def test_url_round_trips_and_escapes_passwords() -> None:
    url = WarehouseUrl.parse("postgresql://u%40x:p%2Fw%3Aq@db.example:6543/wh")
    assert (url.user, url.password, url.host, url.port, url.dbname) == ("u@x", "p/w:q", "db.example", 6543, "wh")
    assert WarehouseUrl.parse(url.url()) == url
    assert "p/w" not in url.redacted()


def test_url_defaults_and_bad_scheme() -> None:
    url = WarehouseUrl.parse("postgresql://localhost")
    assert (url.port, url.user, url.dbname) == (5432, "postgres", "postgres")
    with pytest.raises(WarehouseError, match="postgresql://"):
        WarehouseUrl.parse("mysql://localhost/db")


def test_warehouse_url_from_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://a:b@h:1/d")
    assert resolve_url() == WarehouseUrl("h", 1, "a", "b", "d")


def test_embedded_warehouse_initialises_restarts_and_stops(tmp_path: Path) -> None:
    warehouse = EmbeddedWarehouse(state_dir=tmp_path / "wh", port=55400)
    try:
        url = warehouse.start()
        with connect(url) as conn, conn.cursor() as cur:
            cur.execute("create table kept (x int); insert into kept values (42)")
        assert warehouse.is_running()
        # the password is required over TCP: scram, not trust
        with pytest.raises(Exception, match="password"), connect(WarehouseUrl(url.host, url.port, url.user, "wrong", url.dbname)):
            pass
        warehouse.stop()
        assert not warehouse.is_running()
        again = warehouse.start()  # reuses the cluster
        assert again == url
        with connect(again) as conn, conn.cursor() as cur:
            cur.execute("select x from kept")
            assert cur.fetchall() == [(42,)]
    finally:
        warehouse.stop()
    assert (tmp_path / "wh" / "credentials.json").stat().st_mode & 0o077 == 0
