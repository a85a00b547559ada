"""Data-subject requests end to end: access, correction, consent withdrawal and erasure.

These tests change the graded warehouse (new CRM versions, erased personal data), so they run
after the other end-to-end tests (file order)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from tests.support import GradedWarehouse, every_text_value, files_with, query
from tierhouse.grading.transform import run_dbt
from tierhouse.ingest import loaders
from tierhouse.ingest.sources import SOURCES
from tierhouse.lifecycle.history import customer_history
from tierhouse.orchestration.local_airflow import LocalAirflow, dags_test
from tierhouse.privacy import access, dsr
from tierhouse.warehouse.connection import login_url

pytestmark = pytest.mark.e2e
P1 = "highend_flower"
SEPTEMBER, OCTOBER = "2026-09-01", "2026-10-01"


def _graded_members(url, *periods: str) -> list[str]:
    # graded on purchases in every period (fct_customer_features leaves out lapsed customers)
    rows = query(
        url,
        "select customer_key from marts.fct_customer_features where policy = %s and period_month = any(%s::date[])"
        " and customer_key in (select member_id from pii.crm_members where name is not null)"
        " group by customer_key having count(*) = %s order by customer_key",
        (P1, list(periods), len(periods)),
    )
    return [key for (key,) in rows]


def test_access_request_exports_everything_held_on_one_customer(graded_warehouse: GradedWarehouse, tmp_path) -> None:
    url = graded_warehouse.url
    access.apply(url)
    steward = login_url(url, "steward")  # requests are the steward login's job
    member = _graded_members(url, SEPTEMBER)[0]
    reason = "customer asked by email for everything held on them"
    path = dsr.access(steward, member, "Chen Jing", reason, tmp_path, customer_history(url, member))
    assert path.stat().st_mode & 0o777 == 0o600
    report = json.loads(path.read_text())
    assert report["customer"] == member
    fields = {row["field"] for row in report["personal_data"] if row["value"]}
    assert {"name", "phone"} <= fields
    assert report["orders"] and report["member_versions"]
    grades = [e for e in report["grading_history"] if e["event"] == "grade" and e["period_month"] == SEPTEMBER]
    assert {e["policy"] for e in grades} == {P1, "service_levels", "abcd"}
    basis = [b for b in report["grading_basis"] if b["policy"] == P1 and b["period_month"] == SEPTEMBER]
    assert basis and {"spend", "order_count"} <= {b["item"] for b in basis}
    assert [r["kind"] for r in report["requests"]] == ["access"]
    assert query(
        url, "select customer_key, reason_code, dsr_request_id::text from audit.access_log order by access_id desc limit 1"
    ) == [(member, "dsr_access", report["request_id"])]
    with pytest.raises(dsr.RequestError, match="no CRM member"):
        dsr.access(steward, "NOBODY", "Chen Jing", "x", tmp_path, [])


def test_corrections_and_consent_withdrawal_reach_the_next_grading_and_are_recorded(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    access.apply(url)
    steward = login_url(url, "steward")  # requests are the steward login's job
    # members whose latest CRM version (before the change below) says individual
    individuals = {
        key
        for (key,) in query(
            url,
            "select member_id from (select distinct on (member_id) member_id, customer_type, updated_at from raw.crm_members"
            " order by member_id, updated_at desc) as latest where customer_type = 'individual' and updated_at < '2026-10-05'",
        )
    }
    candidates = [m for m in _graded_members(url, SEPTEMBER, OCTOBER) if m in individuals]
    corrected, withdrawn = candidates[0], candidates[1]
    tiers_sql = "select customer_key, consumption_attribute from marts.fct_customer_tiers where policy = %s and period_month = %s"
    september_before = dict(query(url, tiers_sql, (P1, SEPTEMBER)))
    published_before = query(url, "select * from published.customer_tiers order by policy, period_month, customer_key")
    effective = datetime(2026, 10, 5, 9, 0)  # within October: the October grading is the next one
    with pytest.raises(dsr.RequestError, match="individual or enterprise"):
        dsr.correct(steward, corrected, "customer_type", "company", "Chen Jing", "x", effective)
    dsr.correct(steward, corrected, "customer_type", "enterprise", "Chen Jing", "the customer buys for their company", effective)
    dsr.withdraw_consent(steward, withdrawn, "Chen Jing", "customer withdrew grading consent by phone", effective)

    build = run_dbt(url, "build", "--quiet", "--select", "stg_crm__member_versions+", "--exclude", "test_type:unit")
    assert build.returncode == 0, build.stdout[-3000:]
    october = dict(query(url, tiers_sql, (P1, OCTOBER)))
    assert october[corrected] == "enterprise"
    assert withdrawn not in october
    assert query(
        url,
        "select exclusion_reason from marts.fct_grading_exclusions where policy = %s and period_month = %s and customer_key = %s",
        (P1, OCTOBER, withdrawn),
    ) == [("no_grading_consent",)]
    # the month before is graded as it was, and nothing published changed
    assert dict(query(url, tiers_sql, (P1, SEPTEMBER))) == september_before
    assert query(url, "select * from published.customer_tiers order by policy, period_month, customer_key") == published_before
    recorded = query(
        url,
        "select customer_key, kind, details from audit.dsr_requests where kind in ('correction', 'consent_withdrawal') order by kind",
    )
    assert recorded == [
        (withdrawn, "consent_withdrawal", {"grading_consent": False}),
        (corrected, "correction", {"field": "customer_type", "from": "individual", "to": "enterprise"}),
    ]


def test_erasure_removes_personal_data_and_keeps_the_pseudonymous_history(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    access.apply(url)
    steward = login_url(url, "steward")  # requests are the steward login's job
    member = _graded_members(url, SEPTEMBER)[-1]
    history_sql = (
        "select r.list_kind, r.policy, s.tier from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
        " where s.customer_key = %s order by 1, 2"
    )
    history_before = query(url, history_sql, (member,))
    assert history_before
    dsr.erase(steward, member, "Chen Jing", "customer asked to be forgotten after closing their account")
    assert query(
        url, "select count(*) from pii.crm_members where member_id = %s and (name, phone, address) is distinct from (null, null, null)",
        (member,),
    ) == [(0,)]  # fmt: skip
    assert query(
        url,
        "select count(*) from pii.service_tickets where note is not null"
        " and ticket_id in (select ticket_id from raw.service_tickets where member_id = %s)",
        (member,),
    ) == [(0,)]
    assert query(url, history_sql, (member,)) == history_before
    assert all(row["value"] is None for row in dsr.read_personal_data(steward, member, "dsr_verification"))
    assert query(url, "select kind from audit.dsr_requests where customer_key = %s", (member,)) == [("erasure",)]


def _airflow_metadata_with(home: Path, needles: tuple[str, ...]) -> list[str]:
    """Every row of Airflow's metadata database (dag_run.conf, xcom, the log table...) and every task log."""
    with sqlite3.connect(home / "airflow.db") as db:
        dump = "\n".join(db.iterdump())
    return [f"airflow.db: {needle}" for needle in needles if needle in dump] + files_with(home / "logs", needles)


#: Where a member id stays after erasure: the pseudonymous key of grades, history and requests,
#: and the ids dbt derives from it (its schemas are rebuilt from raw on the next run).
PSEUDONYMOUS_KEY_COLUMNS = {"customer_key", "member_id"}
DBT_SCHEMAS = {"analytics", "staging", "intermediate", "marts"}
#: The retailer's own system (its stand-in) keeps guest phone numbers: docs/PRIVACY.md.
SHOP_COLUMNS = {"shop.orders.phone"}


def _left_behind(texts: dict[str, str], member: str, personal: tuple[str, ...]) -> list[str]:
    """Columns that hold the member id where no pseudonymous key belongs, or a personal value."""
    found = [
        f"{where}: member id"
        for where, text in texts.items()
        if member in text
        and (
            where.startswith("pii.")
            or (where.split(".")[0] not in DBT_SCHEMAS and where.rsplit(".", 1)[1] not in PSEUDONYMOUS_KEY_COLUMNS)
        )
    ]
    found += [
        f"{where}: {needle}"
        for where, text in texts.items()
        for needle in personal
        if needle in text and where not in SHOP_COLUMNS
    ]
    return sorted(found)


def test_erasure_through_the_dag_holds_and_old_files_do_not_bring_the_person_back(
    graded_warehouse: GradedWarehouse, tmp_path
) -> None:
    url, data_dir = graded_warehouse.url, graded_warehouse.data_dir
    access.apply(url)
    steward = login_url(url, "steward")  # requests are the steward login's job
    members = _graded_members(url, SEPTEMBER)
    member = members[len(members) // 2]
    personal = dsr.read_personal_data(steward, member, "dsr_verification")
    name = next(row["value"] for row in personal if row["field"] == "name" and row["value"])
    phone = next(row["value"] for row in personal if row["field"] == "phone" and row["value"])
    spelled = (member, name, phone, f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", f"{phone[:3]} {phone[3:7]} {phone[7:]}")
    originals = tmp_path / "originals"
    shutil.copytree(data_dir, originals)
    exports = tmp_path / "state" / "dsr"
    airflow = graded_warehouse.airflow
    assert isinstance(airflow, LocalAirflow)
    airflow = dataclasses.replace(airflow, extra_env=(*airflow.extra_env, ("TIERHOUSE_STATE_DIR", str(tmp_path / "state"))))

    def through_the_dag(kind: str, field: str | None = None, value: str | None = None) -> None:
        request_id = dsr.record(steward, kind, member, "Chen Jing", "the customer's letter of 3 November", field, value)
        run = dags_test(airflow, "tierhouse_dsr", conf={"request_id": request_id}, echo=False)
        assert run.succeeded, run.output[-4000:]

    through_the_dag("access")
    assert len(list(exports.glob(f"dsr_access_{member}_*.json"))) == 1
    through_the_dag("correction", "phone", "13700137000")  # the DAG is given the request id only
    through_the_dag("erasure")

    texts = every_text_value(url)
    kept = {where for where, text in texts.items() if member in text}
    assert _left_behind(texts, member, (*spelled[1:], "13700137000")) == []
    assert [hit for hit in files_with(data_dir, spelled) if not hit.startswith("shop/")] == []  # shop/: the shop's seed
    assert files_with(exports, spelled) == []
    assert _airflow_metadata_with(airflow.home, (*spelled, "13700137000")) == []

    # the old files come back, the CRM ones with a blank line added (a new checksum): still gone
    for original in originals.rglob("*.csv"):
        landed = data_dir / original.relative_to(originals)
        landed.write_bytes(original.read_bytes() + (b"\r\n" if original.parts[-2] == "crm" else b""))
    for source in SOURCES.values():
        loaders.load_exports(login_url(url, "ingest"), source, data_dir / source.subdir)
    texts = every_text_value(url)
    assert _left_behind(texts, member, spelled[1:]) == []
    assert {where for where, text in texts.items() if member in text} <= kept
    assert query(url, "select count(*) from raw.quarantine where reason_code = 'erased_subject' and raw_text is null") != [(0,)]
    assert all(report.reconciled for report in loaders.load_report(url))
