"""Erasure that holds and an access log that cannot be skipped, on a warehouse of their own:
the steward's read needs a log row committed by another transaction; an erased person is gone
from every table, the landing files and the exports, and reloading their old files (changed by a
blank line) does not bring them back."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import psycopg2
import pytest

from tests.support import every_text_value, files_with, query
from tests.test_ingest import CRM_HEADER, HEADER, pos_line
from tierhouse.ingest import loaders, sources
from tierhouse.orchestration import pipeline
from tierhouse.privacy import access, dsr
from tierhouse.warehouse.connection import WarehouseUrl, login_url, session

NOW = datetime(2026, 11, 2, 12, 0)
MEMBER, NAME, PHONE, SPELLED = "M004217", "张伟", "13800138000", "+86 138-0013-8000"
OTHER = "M000002"


def _steward(url: WarehouseUrl):
    """The steward's real login (its own password, no SET ROLE)."""
    return psycopg2.connect(login_url(url, "steward").dsn())


def test_a_steward_read_needs_a_log_row_committed_by_another_transaction(scratch_db: WarehouseUrl) -> None:
    access.apply(scratch_db)
    conn = _steward(scratch_db)
    try:
        with conn.cursor() as cur:
            cur.execute("select audit.log_personal_data_read(%s, 'customer', 'dsr_verification')", (MEMBER,))
            read_id = cur.fetchone()[0]
            # logged and read in one transaction: refused, so a rollback can never take the log back
            with pytest.raises(psycopg2.errors.RaiseException, match="its own committed transaction"):
                cur.execute("select * from pii.read_customer(%s)", (read_id,))
            conn.rollback()
            assert query(scratch_db, "select count(*) from audit.access_log") == [(0,)]

            cur.execute("select audit.log_personal_data_read(%s, 'customer', 'dsr_verification')", (MEMBER,))
            read_id = cur.fetchone()[0]
            conn.commit()
            # begin; read; rollback: the log row stays
            cur.execute("select * from pii.read_customer(%s)", (read_id,))
            conn.rollback()
            assert query(
                scratch_db,
                "select database_user, database_role, customer_key, what, reason_code, requested_by, reason"
                " from audit.access_log where read_id = %s",
                (read_id,),
            ) == [("th_steward", "th_steward", MEMBER, "customer", "dsr_verification", None, None)]
            # a read with no log row, with a made-up one, or with one used already is refused
            with pytest.raises(psycopg2.errors.RaiseException, match="no committed access-log entry"):
                cur.execute("select * from pii.read_customer(gen_random_uuid())")
            conn.rollback()
            cur.execute("select * from pii.read_customer(%s)", (read_id,))
            conn.commit()
            with pytest.raises(psycopg2.errors.RaiseException, match="used already"):
                cur.execute("select * from pii.read_customer(%s)", (read_id,))
            conn.rollback()
            # one customer's log row does not read every name
            cur.execute("select audit.log_personal_data_read(%s, 'customer', 'dsr_verification')", (MEMBER,))
            other_read = cur.fetchone()[0]
            conn.commit()
            with pytest.raises(psycopg2.errors.RaiseException, match="not for this login and read"):
                cur.execute("select * from pii.customer_names(%s)", (other_read,))
            conn.rollback()
            # free text is no reason; the steward reads no table directly and writes no log row itself
            with pytest.raises(psycopg2.errors.RaiseException, match="known reason code"):
                cur.execute("select audit.log_personal_data_read(%s, 'customer', 'the customer asked')", (MEMBER,))
            conn.rollback()
            for statement in (
                "select count(*) from pii.crm_members",
                "select count(*) from pii.service_tickets",
                "select * from audit.access_log",
                "insert into audit.access_log (customer_key, what, reason_code) values ('x', 'customer', 'dsr_access')",
            ):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
                conn.rollback()
    finally:
        conn.close()
    # append-only, even for the login that owns it
    for statement in (
        "delete from audit.access_log",
        "update audit.access_log set reason_code = null",
        "truncate audit.access_log cascade",
    ):
        with pytest.raises(psycopg2.errors.RaiseException, match="append-only"):
            query(scratch_db, statement)
    with pytest.raises(psycopg2.errors.RaiseException, match="append-only"):
        query(scratch_db, "delete from audit.access_log_reads")


def test_the_python_steward_path_logs_in_its_own_transaction(scratch_db: WarehouseUrl) -> None:
    access.apply(scratch_db)
    steward = login_url(scratch_db, "steward")
    with session(steward) as conn, conn.cursor() as cur:
        cur.execute("select 1")  # the caller's open transaction does not hold the log row back
        assert dsr.read_personal_data(steward, MEMBER, "dsr_verification") == []
        conn.rollback()
    assert query(scratch_db, "select count(*) from audit.access_log_reads") == [(1,)]
    assert dsr.customer_names(steward) == []
    assert query(scratch_db, "select what, reason_code from audit.access_log order by access_id") == [
        ("customer", "dsr_verification"),
        ("customer_names", "deidentification_gate"),
    ]


def test_every_security_definer_function_fixes_its_search_path(scratch_db: WarehouseUrl) -> None:
    rows = query(
        scratch_db,
        "select n.nspname || '.' || p.proname, coalesce(p.proconfig, '{}') from pg_proc as p"
        " join pg_namespace as n on n.oid = p.pronamespace where p.prosecdef and left(n.nspname, 3) <> 'pg_'"
        " and n.nspname <> 'information_schema'",
    )
    assert {name for name, _ in rows} >= {
        "pii.read_customer", "pii.customer_names", "audit.log_personal_data_read", "pii.add_member_version",
        "pii.erase_customer",
    }  # fmt: skip
    for name, config in rows:
        paths = [setting.split("=", 1)[1] for setting in config if setting.startswith("search_path=")]
        assert paths, f"{name} has no search_path"
        schemas = [schema.strip() for schema in paths[0].split(",")]
        assert schemas[0] == "pg_catalog" and schemas[-1] == "pg_temp", (name, schemas)


# -- erasure -------------------------------------------------------------------------------------
def _crm_file() -> bytes:
    return (
        CRM_HEADER + "\r\n"
        f"{MEMBER},{NAME},{SPELLED},上海市静安区某路1号,individual,是,2026-09-01 10:00:00,否,,2026-09-01 10:00:00\r\n"
        f"{OTHER},李娜,13900139000,北京市朝阳区某街2号,individual,是,2026-09-02 10:00:00,否,,2026-09-02 10:00:00\r\n"
        # the erased person's malformed record: quarantined, its text encrypted
        f"{MEMBER},{NAME},{PHONE},上海市,individual,也许,2026-09-03 10:00:00,否,,2026-09-03 10:00:00\r\n"
    ).encode("utf-8-sig")


def _landing(root: Path) -> None:
    (root / "crm").mkdir(parents=True)
    (root / "crm" / "members_202609.csv").write_bytes(_crm_file())
    (root / "pos" / "SH01").mkdir(parents=True)
    lines = [
        pos_line("SH01-1", member=MEMBER),
        pos_line("SH01-2", member=OTHER),
        pos_line("SH01-3", member="", phone=PHONE),  # a guest purchase with their phone
    ]
    (root / "pos" / "SH01" / "sales_20261001.csv").write_bytes("\r\n".join([HEADER, *lines]).encode("utf-8"))
    (root / "shop").mkdir()
    (root / "shop" / "orders.csv").write_text(
        "order_id,member_id,phone,channel,status,ordered_at,updated_at\n"
        f"W1,{MEMBER},,website,completed,2026-10-01 10:00:00,2026-10-01 10:05:00\n"
        f"W2,,{PHONE},wechat,completed,2026-10-02 10:00:00,2026-10-02 10:05:00\n"
        f"W3,{OTHER},,wechat,completed,2026-10-02 10:00:00,2026-10-02 10:05:00\n"
    )
    (root / "shop" / "order_lines.csv").write_text(
        "order_id,line_no,sku,business_line,customization_level,quantity,unit_price,amount\n"
        "W1,1,A,wedding,bespoke,1,5000.00,5000.00\nW2,1,B,anniversary,standard,2,300.00,600.00\n"
        "W3,1,B,anniversary,standard,1,300.00,300.00\n"
    )


def _load_everything(url: WarehouseUrl, root: Path) -> None:
    """Every source, as the ingest job's login loads it."""
    url = login_url(url, "ingest")
    for source in (sources.CRM, sources.POS):
        loaders.load_exports(url, source, root / source.subdir, now=NOW)
    loaders.extract_shop_orders(url)


def _hits(texts: dict[str, str], *needles: str) -> set[str]:
    return {where for where, text in texts.items() for needle in needles if needle in text}


#: After erasure the member id may stay only as the pseudonymous key of the request records.
MEMBER_ID_KEPT = {"audit.dsr_requests.customer_key", "audit.access_log.customer_key"}


def test_erasure_removes_the_person_everywhere_and_old_files_do_not_bring_them_back(
    scratch_db: WarehouseUrl, tmp_path: Path
) -> None:
    url, landing, exports = scratch_db, tmp_path / "data", tmp_path / "exports"
    steward = login_url(url, "steward")
    access.apply(url)
    _landing(landing)
    originals = tmp_path / "originals"
    shutil.copytree(landing, originals)
    loaders.seed_shop_database(url, landing / "shop")
    _load_everything(url, landing)
    assert query(url, "select count(*) from raw.quarantine where source = 'crm'") == [(1,)]

    def request(kind: str, **extra) -> str:
        return pipeline.data_subject_request(
            kind, MEMBER, "steward 7", "request by letter", out_dir=str(exports), url=steward, data_dir=str(landing), **extra
        )

    # earlier access exports (the real one needs dbt's marts: tests/test_subject_requests.py)
    exports.mkdir()
    for member, name in ((MEMBER, NAME), (OTHER, "李娜")):
        (exports / f"dsr_access_{member}_0a1b2c3d.json").write_text(json.dumps({"customer": member, "name": name}))
    # a correction recorded for later keeps its value encrypted, and erasure discards it
    dsr.record(steward, "correction", MEMBER, "steward 7", "new number by letter", "phone", "13700137000")
    assert _hits(every_text_value(url, ()), "13700137000") == {"audit.dsr_request_values.value"}
    assert "13700137000" not in str(query(url, "select * from audit.dsr_request_values"))

    done = request("erasure")
    assert MEMBER not in done and NAME not in done

    searched = ("shop",)  # the retailer's own system (its stand-in): erasure there is the shop's (docs/PRIVACY.md)
    texts = every_text_value(url, searched)
    assert _hits(texts, NAME, PHONE, "138-0013", "13700137000") == set()
    assert _hits(texts, MEMBER) <= MEMBER_ID_KEPT
    assert [hit for hit in files_with(landing, (MEMBER, NAME, PHONE, "138-0013")) if not hit.startswith("shop/")] == []
    assert [path.name for path in exports.iterdir()] == [f"dsr_access_{OTHER}_0a1b2c3d.json"]
    # the other customer's records are all still there, and the rewritten files still reconcile
    assert query(url, "select count(*) from raw.crm_members where member_id = %s", (OTHER,)) == [(1,)]
    assert query(url, "select count(*) from raw.pos_sales_lines") == [(1,)]
    assert all(report.reconciled for report in loaders.load_report(url))
    with pytest.raises(dsr.RequestError, match="has been erased"):
        dsr.record(steward, "access", MEMBER, "steward 7", "again")

    # the old files come back (the CRM file with a blank line, so its checksum changes), and the
    # shop sends the person's orders again: nothing of theirs is loaded
    for original in originals.rglob("*.csv"):
        shutil.copy(original, landing / original.relative_to(originals))
    crm_file = landing / "crm" / "members_202609.csv"
    crm_file.write_bytes(crm_file.read_bytes() + b"\r\n")
    query(url, "update shop.orders set updated_at = '2026-10-20 09:00'")
    _load_everything(url, landing)
    texts = every_text_value(url, searched)
    assert _hits(texts, NAME, PHONE, "138-0013") == set()
    assert _hits(texts, MEMBER) <= MEMBER_ID_KEPT
    assert query(url, "select count(*) from raw.crm_members where member_id = %s", (OTHER,)) == [(1,)]
    assert query(url, "select order_id from raw.shop_orders") == [("W3",)]
    erased = query(
        url, "select source, count(*), count(raw_text), count(detail) from raw.quarantine"
        " where reason_code = 'erased_subject' group by source order by source",
    )  # fmt: skip
    assert erased == [("crm", 2, 0, 0), ("pos", 2, 0, 0), ("shop", 2, 0, 0)]
    assert all(report.reconciled for report in loaders.load_report(url))


def test_the_cli_records_a_request_for_the_dag_with_its_value_encrypted(
    scratch_db: WarehouseUrl, tmp_path: Path, monkeypatch, capsys
) -> None:
    from tierhouse.cli.main import main

    access.apply(scratch_db)
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "members_202609.csv").write_bytes(_crm_file())
    loaders.load_exports(login_url(scratch_db, "ingest"), sources.CRM, tmp_path / "crm", now=NOW)
    monkeypatch.setenv("WAREHOUSE_URL", scratch_db.url())
    argv = ["dsr", "correction", "--customer", MEMBER, "--requested-by", "steward 7", "--reason", "by letter"]
    assert main([*argv, "--field", "phone", "--value", "137 0013 7000", "--record-only"]) == 0
    printed = capsys.readouterr().out
    ((request_id,),) = query(scratch_db, "select request_id::text from audit.dsr_requests")
    assert f'{{"request_id": "{request_id}"}}' in printed and "13700137000" not in printed
    assert _hits(every_text_value(scratch_db, ()), "13700137000") == {"audit.dsr_request_values.value"}
    auditor = psycopg2.connect(login_url(scratch_db, "audit").dsn())  # auditors read audit, not a pending value
    try:
        with auditor.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select count(*) from audit.dsr_request_values")
    finally:
        auditor.close()
    # carried out by its id alone (what the DAG does), once
    steward = login_url(scratch_db, "steward")
    done = pipeline.carry_out_request(request_id, str(tmp_path / "exports"), steward, str(tmp_path))
    assert done == f"correction {request_id}: phone corrected"
    assert query(scratch_db, "select count(*) from audit.dsr_request_values") == [(0,)]
    with pytest.raises(dsr.RequestError, match="carried out already"):
        pipeline.carry_out_request(request_id, None, steward)
    phones = {row["value"] for row in dsr.read_personal_data(steward, MEMBER, "dsr_verification") if row["field"] == "phone"}
    assert "13700137000" in phones
