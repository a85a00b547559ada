"""Backup and restore (policy 002): a dump with a manifest of every list's snapshot hash, restored
into a fresh database and proved there: the same hashes, the append-only history still refusing
changes, personal data still decrypting with the key, which is never in the dump."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from tests.support import query
from tierhouse.cli.main import main
from tierhouse.lifecycle import backup, publish
from tierhouse.privacy import access, crypto
from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseUrl, connect, session

PERIOD = date(2026, 9, 1)
INITIAL = [
    ("M000001", "top", 1, "top: all conditions met", Decimal("91.50"), "individual", "regular", "long_term"),
    ("M000002", "high", 2, "high: all conditions met", Decimal("100.00"), None, None, None),
    ("M000003", "none", 9, "no rule holds", None, "enterprise", "special_needs", "seasonal"),
]
NAME = "王芳 Wang Fang"


@pytest.fixture
def fresh_db(server_url: WarehouseUrl) -> Iterator[WarehouseUrl]:
    """A second empty database, beside the test's scratch warehouse."""
    name = f"tierhouse_restore_{uuid.uuid4().hex[:10]}"
    with session(server_url) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'create database "{name}"')
    try:
        yield dataclasses.replace(server_url, dbname=name)
    finally:
        with session(server_url) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'drop database if exists "{name}" with (force)')


def graded(url: WarehouseUrl) -> str:
    """Two recorded lists of one month (initial, then a confirmed one that changes a grade), the
    second published, and one member's encrypted personal data; returns the name's ciphertext."""
    with connect(url) as conn, conn.cursor() as cur:
        # the tier labels publish joins on; dbt builds it in a real warehouse
        cur.execute("create table marts.dim_policy_tiers (policy text, policy_version integer, tier text, tier_label text)")
        cur.execute("insert into marts.dim_policy_tiers values ('highend_flower', 1, 'top', '顶级高端')")
        initial, _ = publish.record_run(cur, "highend_flower", 1, PERIOD, "initial", "run-1", "policy-sha", "inputs", INITIAL)
        publish.publish_run(cur, initial)
    with connect(url) as conn, conn.cursor() as cur:
        confirmed = [INITIAL[0], (*INITIAL[1][:1], "top", 1, *INITIAL[1][3:]), INITIAL[2]]
        run_id, _ = publish.record_run(cur, "highend_flower", 1, PERIOD, "confirmed", "run-2", "policy-sha", "inputs", confirmed)
        publish.publish_run(cur, run_id)
        ciphertext = crypto.encrypt(NAME, "pii.crm_members.name")
        cur.execute(
            "insert into pii.crm_members (member_id, updated_at, name, phone, address, _source_file, _source_line)"
            " values ('M000001', '2026-01-01', %s, %s, null, 'crm.csv', 2)",
            (ciphertext, crypto.encrypt("13800138000", "pii.crm_members.phone")),
        )
    access.apply(url)  # as `tierhouse warehouse migrate` leaves a warehouse
    return ciphertext


def test_a_backup_restores_into_a_fresh_database_with_every_list_hash_triggers_and_personal_data(
    scratch_db: WarehouseUrl, fresh_db: WarehouseUrl, tmp_path: Path
) -> None:
    ciphertext = graded(scratch_db)
    manifest = backup.backup(scratch_db, tmp_path / "backup")
    # the database's hash of each list is the one publish recorded, computed the same way
    assert [(item["list_kind"], item["rows"]) for item in manifest.recorded] == [("initial", 3), ("confirmed", 3)]
    assert manifest.recorded[0]["snapshot_hash"] == publish.digest(INITIAL)
    recorded = query(scratch_db, "select snapshot_hash from history.grading_runs where list_kind = 'confirmed'")
    assert manifest.published == [{"policy": "highend_flower", "period": "2026-09", "rows": 3, "snapshot_hash": recorded[0][0]}]
    on_disk = json.loads((tmp_path / "backup" / backup.MANIFEST_FILE).read_text())
    assert on_disk["dump"]["sha256"] == manifest.dump_sha256 and {"loader", "tierhouse_owner"} <= set(on_disk["roles"])

    # the keys are never in the dump: personal data is in it only as ciphertext
    tool = backup.pg_tool("pg_restore", 18)
    dumped = subprocess.run(
        [str(tool), "--file", "-", str(tmp_path / "backup" / backup.DUMP_FILE)], capture_output=True, text=True, check=True
    ).stdout
    assert ciphertext in dumped
    for secret in (os.environ[crypto.PII_KEY_ENV], os.environ[crypto.KEY_ENV], NAME, "13800138000"):
        assert secret not in dumped

    restored = backup.restore(fresh_db, tmp_path / "backup")
    assert restored.recorded == manifest.recorded
    assert query(fresh_db, "select run_id::text, snapshot_hash from history.grading_runs order by created_at") == [
        (item["run_id"], item["snapshot_hash"]) for item in manifest.recorded
    ]
    published = "select * from published.customer_tiers order by customer_key"
    assert query(fresh_db, published) == query(scratch_db, published)
    for statement in (
        "update history.tier_snapshots set tier = 'top'",
        "delete from history.grading_runs",
        "truncate history.tier_changes",
    ):
        with pytest.raises(psycopg2.errors.RaiseException, match="history is append-only"):
            query(fresh_db, statement)
    ((name,),) = query(fresh_db, "select name from pii.crm_members where member_id = 'M000001'")
    assert crypto.decrypt(name, "pii.crm_members.name") == NAME
    # the restored warehouse is migrated and granted: the job logins work on it
    assert query(fresh_db, "select count(*) from tierhouse_meta.schema_migrations") == query(
        scratch_db, "select count(*) from tierhouse_meta.schema_migrations"
    )
    assert query(fresh_db, "select has_table_privilege('bi_reader', 'published.customer_tiers', 'select')") == [(True,)]

    with pytest.raises(backup.BackupError, match=f"database {fresh_db.dbname} already holds .* relations; restore into a new"):
        backup.restore(fresh_db, tmp_path / "backup")


def test_a_damaged_dump_is_refused_before_anything_is_restored(
    scratch_db: WarehouseUrl, fresh_db: WarehouseUrl, tmp_path: Path
) -> None:
    graded(scratch_db)
    backup.backup(scratch_db, tmp_path / "backup")
    damaged = shutil.copytree(tmp_path / "backup", tmp_path / "damaged")
    dump = damaged / backup.DUMP_FILE
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(backup.BackupError, match="is not the dump its manifest describes .*; the backup is damaged"):
        backup.restore(fresh_db, damaged)
    assert query(fresh_db, "select count(*) from pg_class where relnamespace = 'public'::regnamespace") == [(0,)]


def test_backup_and_restore_from_the_command_line(scratch_db: WarehouseUrl, tmp_path: Path, monkeypatch, capsys) -> None:
    graded(scratch_db)
    monkeypatch.setenv("WAREHOUSE_URL", scratch_db.url())
    assert main(["backup", str(tmp_path / "backup")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("2 recorded and 1 published lists in the manifest (no keys)")
    assert main(["backup", str(tmp_path / "backup")]) == 2
    assert capsys.readouterr().err == f"tierhouse: {tmp_path / 'backup'} is not an empty folder; back up into a new one\n"
    assert main(["restore", str(tmp_path / "backup")]) == 2  # the warehouse it came from is not empty
    (error,) = capsys.readouterr().err.splitlines()
    assert error.startswith(f"tierhouse: database {scratch_db.dbname} already holds ")


def test_a_backup_restores_onto_a_new_server_that_has_none_of_the_roles(scratch_db: WarehouseUrl, tmp_path: Path) -> None:
    graded(scratch_db)
    manifest = backup.backup(scratch_db, tmp_path / "backup")
    server = EmbeddedWarehouse(tmp_path / "new_server", port=scratch_db.port + 100)
    server.init()  # a new cluster: only its superuser exists
    try:
        url = server.url()
        assert query(url, "select count(*) from pg_roles where rolname = any(%s)", (manifest.roles,)) == [(0,)]
        backup.restore(url, tmp_path / "backup")
        assert query(url, "select snapshot_hash from history.grading_runs order by created_at") == [
            (item["snapshot_hash"],) for item in manifest.recorded
        ]
        assert query(url, "select count(*) from pg_roles where rolname = any(%s)", (manifest.roles,)) == [(len(manifest.roles),)]
        assert query(url, "select pg_get_userbyid(relowner) from pg_class where oid = 'history.grading_runs'::regclass") == [
            ("tierhouse_owner",)
        ]
    finally:
        server.stop()
