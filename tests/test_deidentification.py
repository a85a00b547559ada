"""The de-identification gate passes a clean warehouse and fails on each kind of planted leak,
naming the column and kind but never the value; personal data in ``pii`` is no finding."""

from __future__ import annotations

import random
import secrets

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import query
from tierhouse.grading import quality
from tierhouse.privacy import deidentification
from tierhouse.privacy.deidentification import ExemptionError, Leak
from tierhouse.settings import EXPECTATIONS_DIR
from tierhouse.warehouse import migrate
from tierhouse.warehouse.connection import WarehouseUrl, connect

CUSTOMER_NAMES = ["张伟", "欧阳娜娜", "Wang Fang", "王"]  # "王" alone is too short to mean anyone


def resident_id(first_17: str) -> str:
    """An ID number with its ISO 7064 MOD 11-2 check character, computed here independently."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return first_17 + "10X98765432"[sum(int(d) * w for d, w in zip(first_17, weights, strict=True)) % 11]


def hmac_key() -> str:
    return f"v1:{secrets.token_hex(16)}"


WAREHOUSE_DDL = """
create schema raw;
create schema staging;
create schema marts;
create schema history;
create schema pii;
create schema shop;

create table raw.pos_sales_lines (
    receipt_no text, line_no integer, sold_at timestamp, store_code text, member_id text, phone_key text,
    sku text, quantity integer, amount numeric(12, 2), _source_file text, _source_line integer
);
create table raw.service_tickets (ticket_id text, member_id text, order_ref text, category text, detail text);
create table raw.policy_versions (policy text, version integer, document jsonb);
create view staging.stg_pos__sales_lines as
    select receipt_no || '/' || line_no as sales_line_id, member_id, phone_key, store_code, amount from raw.pos_sales_lines;

create table marts.fct_customer_tiers (
    customer_period_id text, customer_key text, tier text, tier_label text, decided_by text,
    spend numeric, composite_score numeric, order_count bigint, contact text
);
create materialized view marts.tier_counts as
    select tier_label, count(*) as customers from marts.fct_customer_tiers group by tier_label;

create table history.tier_snapshots (run_id uuid, customer_key text, tier text, details jsonb, tags text[]);

create table pii.crm_members (member_id text, name text, phone text, address text);
create table shop.orders (order_id text, member_id text, phone text);
"""


CLEAN_ROWS = """
-- md5() hex stands in for the keyed hashes: the same alphabet and length
insert into raw.pos_sales_lines
select 'SH01-' || lpad(mod(n * 7919, 100000000)::text, 8, '0'), 1, timestamp '2026-10-01 13:45:12' + n * interval '1 hour',
       'SH01', 'M' || lpad(n::text, 6, '0'), 'v1:' || md5('phone' || n), 'BUS-S533', 2, mod(n * 104729, 10000000) / 100.0,
       'SH01/SH01_20261001.csv', n
from generate_series(1, 200) as n;

insert into marts.fct_customer_tiers
select 'highend_flower@1/2026-10/M' || lpad(n::text, 6, '0'), 'M' || lpad(n::text, 6, '0'), 'top', '顶级高端',
       'top: all conditions met', mod(n * 7919, 100000000) / 100.0, n / 7.0, n * 1013, null
from generate_series(1, 200) as n;

insert into history.tier_snapshots
select ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'v1:' || md5('member' || n), 'top',
       '{"reviewer": "客服主管", "reason": "核对消费记录后维持等级"}', array['顶级', 'store:SH01']
from generate_series(1, 200) as n;

insert into raw.service_tickets
values ('T000000001', 'M000001', 'store:SH02-00007327', 'delivery_delay', '配送延迟，已致歉并补送贺卡；王府井店跟进');
insert into raw.policy_versions
values ('highend_flower', 1, '{"tiers": {"top": {"label": "顶级高端", "all": ["spend >= 100000"]}}, "effective_from": "2026-01-01"}');

-- decimal fractions holding a mobile-shaped run of digits
insert into marts.fct_customer_tiers (customer_key, composite_score) values ('M000999', 0.13812345678);
insert into marts.fct_customer_tiers (customer_key, contact) values ('M000998', 'score 0.13812345678');
refresh materialized view marts.tier_counts;

-- where personal data belongs, or lives by design: never a finding
insert into pii.crm_members values ('M000001', '张伟', '13812345678', '上海市静安区');
insert into shop.orders values ('W00000001', null, '13912345678');
"""


@pytest.fixture
def warehouse(empty_db):
    """A clean warehouse-like database: keyed hashes, member ids, receipts, amounts, Chinese text;
    with the gate's detectors as their migration creates them, and none of the real tables."""
    query(empty_db, WAREHOUSE_DDL + CLEAN_ROWS)
    detectors = [m for m in migrate.migrations() if m.name in ("deidentification_detectors", "free_text_detectors")]
    with connect(empty_db) as conn, conn.cursor() as cur:
        for migration in detectors:
            cur.execute(migration.sql)
    return empty_db


def scan(url, **kwargs) -> list[Leak]:
    outcome = deidentification.scan(url, CUSTOMER_NAMES, exemptions=kwargs.pop("exemptions", ()), **kwargs)
    assert all("kind" in f.kwargs for f in outcome.failures), outcome.failures
    return deidentification.leaks(outcome)


def test_a_clean_warehouse_passes(warehouse) -> None:
    outcome = deidentification.gate(warehouse, CUSTOMER_NAMES)
    assert outcome.success and not outcome.failures
    # every relation outside pii and shop, views and materialized views included
    assert outcome.evaluated == 7


def test_a_phone_number_in_a_free_text_note_fails_the_gate_without_showing_it(warehouse) -> None:
    query(warehouse, "update raw.service_tickets set detail = '客户说请打13812345678联系'")
    with pytest.raises(quality.QualityGateFailed) as raised:
        deidentification.gate(warehouse, CUSTOMER_NAMES)
    message = str(raised.value)
    assert "raw.service_tickets.detail: mobile number in 1 row" in message
    assert "13812345678" not in message and "客户说" not in message


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",
        "手机:138-1234-5678",
        "电话 138 1234 5678 (白天)",
        "+86 138 1234 5678",
        "+8613812345678",
        "8613812345678",
        "0086-13812345678",
        "请回电１３８１２３４５６７８",  # full-width digits, as Chinese input methods type them
        "tel.13812345678.",
    ],
)
def test_mobile_numbers_are_found_however_they_are_written(warehouse, text) -> None:
    query(warehouse, "update raw.service_tickets set detail = %s", (text,))
    assert scan(warehouse) == [Leak("raw.service_tickets.detail", "mobile", 1)]


def test_a_mobile_number_stored_as_a_number_is_found(warehouse) -> None:
    query(warehouse, "update marts.fct_customer_tiers set order_count = 15912345678 where customer_key = 'M000001'")
    assert scan(warehouse) == [Leak("marts.fct_customer_tiers.order_count", "mobile", 1)]


@pytest.mark.parametrize(
    "text",
    [
        "SH01-00012345",  # a receipt
        "store:SH02-13812345",
        "20261001138123456789",  # a longer number
        "M13812345678",  # glued to a letter
        "v1:13812345678abcdef0123456789abcd",
        "1381234567",  # ten digits
        "12812345678",  # 12x is no mobile prefix
        "0.13812345678",
        "13812345678.50",
        "2026-10-01 13:45:12",
    ],
)
def test_numbers_that_only_look_like_mobile_numbers_pass(warehouse, text) -> None:
    query(warehouse, "update raw.service_tickets set detail = %s", (text,))
    assert scan(warehouse) == []


def test_keyed_hashes_and_receipts_never_look_like_personal_data(warehouse) -> None:
    rng = random.Random(11)
    keys = [hmac_key() for _ in range(5000)]
    receipts = [f"{rng.choice(['SH01', 'SH02', 'BJ01', 'HZ01'])}-{rng.randrange(10**8):08d}" for _ in range(2000)]
    ownership = [f"{key}/M{rng.randrange(10**6):06d}/{rng.randrange(1, 9)}" for key in keys[:1000]]
    query(warehouse, "create table raw.keys (value text)")
    query(warehouse, "insert into raw.keys select unnest(%s::text[])", (keys + receipts + ownership,))
    assert scan(warehouse) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digests=st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=50))
def test_no_keyed_hash_is_a_mobile_or_id_number(scratch_db, digests) -> None:
    keys = [f"v1:{digest.hex()}" for digest in digests]
    [(found,)] = query(
        scratch_db,
        "select count(*) from unnest(%s::text[]) as k where audit.has_mobile(k) or audit.has_resident_id(k)",
        (keys,),
    )
    assert found == 0


def test_resident_id_numbers_are_found_only_with_a_valid_check_character(warehouse) -> None:
    valid = resident_id("11010519491231002")
    assert valid == "11010519491231002X"  # the published example
    also_valid = resident_id("44030619880512347")
    wrong = also_valid[:-1] + ("0" if also_valid[-1] != "0" else "1")
    query(warehouse, "update raw.service_tickets set detail = %s", (f"身份证 {wrong}",))
    assert scan(warehouse) == []

    query(warehouse, "update raw.service_tickets set detail = %s", (f"身份证 {valid.lower()}",))
    assert scan(warehouse) == [Leak("raw.service_tickets.detail", "resident_id", 1)]
    query(warehouse, "update raw.service_tickets set detail = %s", (f"{also_valid[:6]} {also_valid[6:14]} {also_valid[14:]}",))
    assert scan(warehouse) == [Leak("raw.service_tickets.detail", "resident_id", 1)]
    query(warehouse, "update raw.service_tickets set detail = null")
    query(warehouse, "update marts.fct_customer_tiers set spend = %s where customer_key = 'M000002'", (also_valid,))
    assert scan(warehouse) == [Leak("marts.fct_customer_tiers.spend", "resident_id", 1)]


def test_an_email_address_in_a_mart_fails(warehouse) -> None:
    query(warehouse, "update marts.fct_customer_tiers set contact = 'zhang.wei+flowers@example.com.cn' where tier = 'top'")
    with pytest.raises(quality.QualityGateFailed) as raised:
        deidentification.gate(warehouse, CUSTOMER_NAMES)
    assert "marts.fct_customer_tiers.contact: e-mail address in 200 rows" in str(raised.value)
    assert "zhang.wei" not in str(raised.value)
    # the materialized view is read too
    query(warehouse, "create materialized view marts.contacts as select contact from marts.fct_customer_tiers")
    assert Leak("marts.contacts.contact", "email", 200) in scan(warehouse)


def test_a_customer_name_inside_jsonb_in_history_fails(warehouse) -> None:
    query(
        warehouse,
        "update history.tier_snapshots set details = jsonb_set(details, '{reason}', to_jsonb('客户欧阳娜娜要求复核'::text))"
        " where customer_key in (select customer_key from history.tier_snapshots limit 3)",
    )
    with pytest.raises(quality.QualityGateFailed) as raised:
        deidentification.gate(warehouse, CUSTOMER_NAMES)
    message = str(raised.value)
    assert "history.tier_snapshots.details: customer name in 3 rows" in message
    assert "欧阳娜娜" not in message


def test_names_are_matched_inside_chinese_text_and_as_latin_words(warehouse) -> None:
    query(warehouse, "update raw.service_tickets set detail = '张伟来电'")
    query(warehouse, "update marts.fct_customer_tiers set decided_by = 'review by Wang Fang' where customer_key = 'M000003'")
    query(warehouse, "update history.tier_snapshots set tags = array['VIP', '张伟'] where run_id::text like '%%001'")
    assert scan(warehouse) == [
        Leak("history.tier_snapshots.tags", "name", 1),
        Leak("marts.fct_customer_tiers.decided_by", "name", 1),
        Leak("raw.service_tickets.detail", "name", 1),
    ]
    # a Latin name is a word, not a part of one; a one-character name means nobody
    query(warehouse, "update raw.service_tickets set detail = '王府井店 Wang Fangs'")
    query(warehouse, "update marts.fct_customer_tiers set decided_by = 'top' where customer_key = 'M000003'")
    query(warehouse, "update history.tier_snapshots set tags = null")
    assert scan(warehouse) == []


def test_names_with_regex_characters_are_matched_literally(warehouse) -> None:
    query(warehouse, "update raw.service_tickets set detail = 'A.B (Chen)'")
    outcome = deidentification.scan(warehouse, ["A.B (Chen)", "x|y", "[abc]"], exemptions=())
    assert deidentification.leaks(outcome) == [Leak("raw.service_tickets.detail", "name", 1)]
    query(warehouse, "update raw.service_tickets set detail = 'AxB (Chen)'")
    assert deidentification.scan(warehouse, ["A.B (Chen)", "x|y"], exemptions=()).success


def test_personal_data_in_pii_and_in_the_shop_system_is_not_a_finding(warehouse) -> None:
    query(warehouse, "create table pii.notes (note text)")
    query(warehouse, "insert into pii.notes values ('张伟 13812345678 zhang@example.com 11010519491231002X')")
    assert deidentification.gate(warehouse, CUSTOMER_NAMES).success
    with pytest.raises(ValueError, match="never scanned"):
        deidentification.scan(warehouse, CUSTOMER_NAMES, schemas=("marts", "pii"))


def test_every_other_schema_is_scanned_and_can_be_narrowed(warehouse) -> None:
    query(warehouse, "create schema scratchpad")
    query(warehouse, "create table scratchpad.export (line text)")
    query(warehouse, "insert into scratchpad.export values ('M000001,13812345678')")
    assert scan(warehouse) == [Leak("scratchpad.export.line", "mobile", 1)]
    assert scan(warehouse, schemas=("raw", "marts")) == []
    with pytest.raises(ValueError, match="no schema"):
        scan(warehouse, schemas=("mart",))


def test_odd_identifiers_are_quoted(warehouse) -> None:
    query(warehouse, 'create table raw."Odd:Table {1}" ("Note: %%s {x}" text, "a""b" varchar(40))')
    query(warehouse, """insert into raw."Odd:Table {1}" values ('call 13812345678', 'x@example.org')""")
    assert scan(warehouse) == [
        Leak("raw.Odd:Table {1}.Note: %s {x}", "mobile", 1),
        Leak('raw.Odd:Table {1}.a"b', "email", 1),
    ]


def test_a_relation_that_cannot_be_read_fails_the_gate(warehouse) -> None:
    query(warehouse, "create view marts.broken as select ('13812345678'::text || (1 / (random() * 0)::integer)) as label")
    with pytest.raises(quality.QualityGateFailed) as raised:
        deidentification.gate(warehouse, CUSTOMER_NAMES)
    message = str(raised.value)
    assert "marts.broken: not scanned (error:" in message and "division by zero" in message
    assert "13812345678" not in message


def test_exemptions_need_a_reason_and_cover_only_their_kinds(warehouse) -> None:
    for entry in (
        {"column": "raw.policy_versions.document", "kinds": ["name"]},
        {"column": "raw.policy_versions.document", "kinds": ["name"], "reason": "  "},
    ):
        with pytest.raises(ExemptionError, match="needs a reason"):
            deidentification.parse_exemptions([entry])
    for entry, problem in (
        ({"column": "policy_versions.document", "kinds": ["name"], "reason": "r"}, "schema.table.column"),
        ({"column": "raw.policy_versions.document", "kinds": ["phone"], "reason": "r"}, "kinds"),
        ({"column": "raw.policy_versions.document", "kinds": ["name"], "reason": "r", "until": 2027}, "unknown keys"),
    ):
        with pytest.raises(ExemptionError, match=problem):
            deidentification.parse_exemptions([entry])

    query(warehouse, """update raw.policy_versions set document = '{"example": "张伟 13812345678"}'""")
    exemption = deidentification.parse_exemptions(
        [{"column": "raw.policy_versions.document", "kinds": ["name"], "reason": "public example text from the policy file"}]
    )
    assert scan(warehouse, exemptions=exemption) == [Leak("raw.policy_versions.document", "mobile", 1)]


def test_the_reviewed_exemptions_file_is_valid_and_every_entry_has_a_reason() -> None:
    exemptions = deidentification.load_exemptions()
    assert all(e.reason for e in exemptions)


def test_the_checkpoint_description_agrees_with_the_code() -> None:
    spec = yaml.safe_load((EXPECTATIONS_DIR / "checkpoints" / "deidentification.yml").read_text())
    assert set(spec["not_scanned"]) == set(deidentification.UNSCANNED_SCHEMAS)
    assert set(spec["kinds"]) == set(deidentification.KINDS)
    # it needs the customers' names, so the generic checkpoint runner refuses it
    with pytest.raises(ValueError, match="deidentification.gate"):
        quality.run_checkpoint(WarehouseUrl.parse("postgresql://nobody@127.0.0.1:1/none"), "deidentification")


def test_without_names_the_other_kinds_are_still_searched(warehouse) -> None:
    query(warehouse, "update raw.service_tickets set detail = '张伟 13812345678'")
    outcome = deidentification.scan(warehouse, [], exemptions=())
    assert deidentification.leaks(outcome) == [Leak("raw.service_tickets.detail", "mobile", 1)]
