"""The de-identification gate finds planted personal data outside pii, names where, and never
repeats the value; keyed hashes, receipts and wrong-checksum numbers are not personal data."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import query
from tierhouse import deidentification
from tierhouse.quality import QualityGateFailed

NAMES = ["王芳", "李建国"]


def _resident_id(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


@pytest.fixture
def clean_warehouse(scratch_db):
    keys = [f"v1:{secrets.token_hex(16)}" for _ in range(2000)]
    query(
        scratch_db,
        "create schema raw; create schema marts; create schema history; create schema pii; create schema shop;"
        " create table raw.service_tickets (ticket_id text, member_id text, category text);"
        " create table raw.pos_sales_lines (receipt_no text, phone_key text, amount numeric);"
        " create table marts.fct_customer_tiers (customer_key text, tier text, decided_by text);"
        " create table history.tier_changes (customer_key text, evidence jsonb);"
        " create table pii.service_tickets (ticket_id text, note text);"
        " create table shop.orders (order_id text, phone text);"
        " insert into raw.service_tickets values ('T1', 'M000001', 'delivery_delay');"
        " insert into marts.fct_customer_tiers values ('M000001', 'top', 'top: all conditions met, 顶级高端');"
        ' insert into history.tier_changes values (\'M000001\', \'{"rule": "art8_review", "reason": "婚礼订单"}\');'
        " insert into pii.service_tickets values ('T1', '客户王芳说请打13812345678联系');"
        " insert into shop.orders values ('W1', '13812345678')",
    )
    query(
        scratch_db,
        "insert into raw.pos_sales_lines select 'SH01-20261002-' || n, k, 100 from unnest(%s::text[]) with ordinality as t (k, n)",
        (keys,),
    )
    return scratch_db


def test_a_clean_warehouse_passes_though_pii_and_the_shop_system_hold_personal_data(clean_warehouse) -> None:
    outcome = deidentification.gate(clean_warehouse, NAMES, exemptions=[])
    assert outcome.success and outcome.evaluated == 4  # raw x2, marts, history


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        ("insert into raw.service_tickets values ('T2', '客户说请打13812345678联系', 'enquiry')", "mobile in raw.service_tickets.member_id"),
        ("insert into raw.service_tickets values ('T2', 'call +86 138-0013-8000', 'x')", "mobile in raw.service_tickets.member_id"),
        ("insert into marts.fct_customer_tiers values ('M2', 'high', 'wang.fang@example.com')", "email in marts.fct_customer_tiers.decided_by"),
        ("insert into history.tier_changes values ('M2', '{\"reason\": \"李建国 asked\"}')", "name in history.tier_changes.evidence"),
        (f"insert into raw.service_tickets values ('{_resident_id('11010519491231002')}', null, 'x')",
         "resident_id in raw.service_tickets.ticket_id"),
    ],
)  # fmt: skip
def test_planted_personal_data_fails_the_gate_naming_where(clean_warehouse, statement: str, finding: str) -> None:
    query(clean_warehouse, statement)
    with pytest.raises(QualityGateFailed) as failed:
        deidentification.gate(clean_warehouse, NAMES, exemptions=[])
    message = str(failed.value)
    assert finding in message
    for value in ("13812345678", "138-0013-8000", "wang.fang@example.com", "李建国", "11010519491231002"):
        assert value not in message


def test_an_eighteen_digit_number_with_a_wrong_check_character_is_not_an_id(clean_warehouse) -> None:
    valid = _resident_id("11010519491231002")
    wrong = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    query(clean_warehouse, "insert into raw.service_tickets values (%s, null, 'x')", (wrong,))
    assert deidentification.gate(clean_warehouse, NAMES, exemptions=[]).success


def test_exemptions_need_a_reason_and_silence_only_their_column_and_kind(clean_warehouse, tmp_path) -> None:
    path = tmp_path / "exemptions.yml"
    path.write_text("exemptions:\n  - {column: marts.fct_customer_tiers.decided_by, kinds: [email]}\n")
    with pytest.raises(ValueError, match="needs a reason"):
        deidentification.load_exemptions(path)
    path.write_text(
        "exemptions:\n  - {column: marts.fct_customer_tiers.decided_by, kinds: [email], reason: a test of the mechanism}\n"
    )
    query(clean_warehouse, "insert into marts.fct_customer_tiers values ('M2', 'high', 'wang.fang@example.com 王芳')")
    with pytest.raises(QualityGateFailed) as failed:
        deidentification.gate(clean_warehouse, NAMES, exemptions=deidentification.load_exemptions(path))
    assert "name in marts.fct_customer_tiers.decided_by" in str(failed.value)
    assert "email in" not in str(failed.value)
