"""Data-subject requests end to end: access, correction, consent withdrawal and erasure.

These tests change the graded warehouse (new CRM versions, erased personal data), so they run
after the other end-to-end tests (file order)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.support import GradedWarehouse, query
from tierhouse.grading.transform import run_dbt
from tierhouse.lifecycle.history import customer_history
from tierhouse.privacy import access, dsr
from tierhouse.warehouse.connection import connect

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
    member = _graded_members(url, SEPTEMBER)[0]
    reason = "customer asked by email for everything held on them"
    path = dsr.access(url, member, "Chen Jing", reason, tmp_path, customer_history(url, member))
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
    assert query(url, "select customer_key, reason from audit.access_log order by access_id desc limit 1") == [
        (member, f"data-subject access request {report['request_id']}")
    ]
    with pytest.raises(dsr.RequestError, match="no CRM member"):
        dsr.access(url, "NOBODY", "Chen Jing", "x", tmp_path, [])


def test_corrections_and_consent_withdrawal_reach_the_next_grading_and_are_recorded(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    access.apply(url)
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
        dsr.correct(url, corrected, "customer_type", "company", "Chen Jing", "x", effective)
    dsr.correct(url, corrected, "customer_type", "enterprise", "Chen Jing", "the customer buys for their company", effective)
    dsr.withdraw_consent(url, withdrawn, "Chen Jing", "customer withdrew grading consent by phone", effective)

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
    member = _graded_members(url, SEPTEMBER)[-1]
    history_sql = (
        "select r.list_kind, r.policy, s.tier from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
        " where s.customer_key = %s order by 1, 2"
    )
    history_before = query(url, history_sql, (member,))
    assert history_before
    dsr.erase(url, member, "Chen Jing", "customer asked to be forgotten after closing their account")
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
    with connect(url) as conn, conn.cursor() as cur:
        assert all(row["value"] is None for row in dsr.read_personal_data(cur, member, "Chen Jing", "verify erasure"))
    assert query(url, "select kind from audit.dsr_requests where customer_key = %s", (member,)) == [("erasure",)]
