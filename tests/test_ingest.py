"""Store POS parsing and loading, shop extraction: clear outcomes for bad input, nothing lost."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import query
from tierhouse.devtools.generate import POS_COLUMNS
from tierhouse.ingest import loaders, parsing, sources
from tierhouse.ingest.sources import POS
from tierhouse.privacy import crypto
from tierhouse.settings import PROJECT_ROOT

HEADER = ",".join(POS_COLUMNS)
NOW = datetime(2026, 11, 2, 12, 0)


def pos_line(
    receipt="SH01-1", line_no="1", sold_at="2026-10-01 10:00:00", member="M000001", quantity="1", amount="880.00", phone=""
) -> str:
    return f"{receipt},{line_no},{sold_at},SH01,{member},{phone},WED-S100,wedding,standard,{quantity},{amount},{amount}"


def parse_pos(file_name: str, data: bytes) -> parsing.FileLoad:
    return parsing.parse_export(POS, file_name, data, now=NOW, known_stores=frozenset({"SH01", "SH02"}))


def parse(*lines: str, encoding: str = "utf-8", newline: str = "\r\n") -> parsing.FileLoad:
    return parse_pos("SH01/x.csv", newline.join([HEADER, *lines]).encode(encoding))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_exports_in_every_till_encoding_and_line_ending_load(encoding: str, newline: str) -> None:
    load = parse(pos_line(), pos_line(line_no="2", amount="120.50"), encoding=encoding, newline=newline)
    assert (len(load.good_rows), load.rejections) == (2, [])
    assert load.amount_loaded == Decimal("1000.50")


def test_a_quoted_line_break_stays_inside_its_field_and_rows_keep_their_starting_line() -> None:
    note = '"SH01-1\r\nrefund"'
    load = parse(pos_line(receipt=note), pos_line(receipt="SH01-2"))
    assert load.rejections == [] and [(row[0], row[-1]) for row in load.good_rows] == [("SH01-1\r\nrefund", 2), ("SH01-2", 4)]


def test_mixed_line_endings_in_one_file_load() -> None:
    data = (HEADER + "\r\n" + pos_line() + "\n" + pos_line(line_no="2") + "\r\n").encode()
    load = parse_pos("f.csv", data)
    assert len(load.good_rows) == 2


def test_columns_may_come_in_any_order() -> None:
    columns = list(POS_COLUMNS)
    reordered = [columns[4], columns[11], *columns[:4], *columns[5:11]]
    values = dict(zip(columns, pos_line().split(","), strict=True))
    data = (",".join(reordered) + "\n" + ",".join(values[c] for c in reordered)).encode()
    load = parse_pos("f.csv", data)
    assert load.rejections == [] and load.good_rows[0][4] == "M000001"


def test_a_refund_is_a_negative_line_and_loads() -> None:
    load = parse(pos_line(line_no="901", quantity="-1", amount="-880.00"))
    assert load.rejections == [] and load.amount_loaded == Decimal("-880.00")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (pos_line(receipt=""), "missing_required_field"),
        (pos_line(amount="eight hundred"), "unparsable_amount"),
        (pos_line(amount="1.005"), "unparsable_amount"),
        (pos_line(sold_at="2026-13-45 10:00"), "unparsable_date"),
        (pos_line(sold_at="2027-01-01 10:00:00"), "future_date"),
        (pos_line(quantity="-2"), "negative_quantity"),
        (pos_line(quantity="2", amount="-10.00"), "sign_mismatch"),
        (pos_line(quantity="two"), "unparsable_number"),
        (pos_line(line_no="99999999999"), "unparsable_number"),
        (pos_line(amount="99999999999.00", quantity="1"), "unparsable_amount"),
        (pos_line().replace(",SH01,", ",XX99,"), "unknown_store"),
        (pos_line().replace(",standard,", ",gold-plated,"), "invalid_value"),
        (pos_line() + ",extra", "wrong_field_count"),
        ("SH01-9,1,\x00", "bad_encoding"),
        (pos_line(line_no="-1"), "invalid_value"),
        (pos_line(quantity="\u0662"), "unparsable_number"),
        (pos_line(amount="1e3"), "unparsable_amount"),
        (pos_line(sold_at="0001-01-01 00:00:00"), "implausible_date"),
        (pos_line(receipt='"SH01-9'), "unparsable_row"),  # a file cut off inside a quoted field
        (pos_line(member="x" * 70_000), "field_too_large"),
    ],
)
def test_each_bad_row_is_quarantined_with_its_reason(line: str, reason: str) -> None:
    load = parse(pos_line(receipt="SH01-OK"), line)
    assert len(load.good_rows) == 1
    assert [r.reason_code for r in load.rejections] == [reason]
    assert load.rejections[0].line_number == 3
    load.reconcile()


def test_a_repeated_receipt_line_is_quarantined_as_duplicate() -> None:
    load = parse(pos_line(), pos_line())
    assert [r.reason_code for r in load.rejections] == ["duplicate_line"]


def test_a_header_without_required_columns_quarantines_every_row_with_one_message() -> None:
    data = ("会员卡号,金额\nM1,10\nM2,20\n").encode()
    load = parse_pos("f.csv", data)
    assert load.rows_read == 2 and {r.reason_code for r in load.rejections} == {"missing_column"}
    assert load.amount_read == load.amount_quarantined == Decimal("30")
    (refusal,) = load.rejections
    assert (refusal.line_number, refusal.records, load.rows_quarantined) == (1, 2, 2)
    assert refusal.detail.startswith("header lacks receipt_no, line_no, sold_at")
    load.reconcile()


def test_undecodable_bytes_quarantine_the_file_as_bad_encoding() -> None:
    data = HEADER.encode() + b"\n" + b"\xff\xfe\xfa\x81\x30 broken\n"
    load = parse_pos("f.csv", data)
    assert load.rows_read == 1 and load.rejections[0].reason_code == "bad_encoding"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=120),
            st.builds(lambda a, q: pos_line(amount=a, quantity=q), st.text(max_size=12), st.text(max_size=4)),
            st.just(pos_line()),
        ),
        max_size=25,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "latin-1"]),
)
def test_malformed_csv_never_crashes_the_parser_nor_loses_a_row(lines: list[str], newline: str, encoding: str) -> None:
    text = newline.join([HEADER, *lines])
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="replace")
    load = parse_pos("fuzz.csv", data)
    load.reconcile()  # read == loaded + quarantined, rows and amounts
    assert load.rows_read == len(load.good_rows) + len(load.rejections)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser_nor_lose_a_row(body: bytes) -> None:
    load = parse_pos("fuzz.csv", HEADER.encode() + b"\n" + body)
    load.reconcile()


# -- loading into PostgreSQL --------------------------------------------------------------------
def write_export(root: Path, name: str, *lines: str) -> Path:
    path = root / "SH01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join([HEADER, *lines]).encode("utf-8"))
    return path


def test_loading_the_same_file_twice_is_a_no_op(scratch_db, tmp_path: Path) -> None:
    write_export(tmp_path, "SH01_20261001.csv", pos_line(), pos_line(line_no="2", amount="oops"))
    first = loaders.load_pos_exports(scratch_db, tmp_path)
    assert (first.files_loaded, first.rows_loaded, first.rows_quarantined) == (1, 1, 1)
    stamp = query(scratch_db, "select loaded_at from raw.load_manifest")
    second = loaders.load_pos_exports(scratch_db, tmp_path)
    assert second.files_loaded == 0
    assert query(scratch_db, "select loaded_at from raw.load_manifest") == stamp
    assert query(scratch_db, "select count(*) from raw.pos_sales_lines") == [(1,)]
    assert query(scratch_db, "select reason_code, line_number from raw.quarantine") == [("unparsable_amount", 3)]


def test_a_changed_file_replaces_its_own_rows(scratch_db, tmp_path: Path) -> None:
    write_export(tmp_path, "SH01_20261001.csv", pos_line(), pos_line(line_no="2", amount="oops"))
    write_export(tmp_path, "SH01_20261002.csv", pos_line(receipt="SH01-2", sold_at="2026-10-02 10:00:00"))
    loaders.load_pos_exports(scratch_db, tmp_path)
    write_export(tmp_path, "SH01_20261001.csv", pos_line(amount="900.00"), pos_line(line_no="2"), pos_line(line_no="3"))
    summary = loaders.load_pos_exports(scratch_db, tmp_path)
    assert summary.files_loaded == 1
    assert query(scratch_db, "select _source_file, count(*), sum(amount) from raw.pos_sales_lines group by 1 order by 1") == [
        ("SH01/SH01_20261001.csv", 3, Decimal("2660.00")),
        ("SH01/SH01_20261002.csv", 1, Decimal("880.00")),
    ]
    assert query(scratch_db, "select count(*) from raw.quarantine") == [(0,)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600))
def test_loading_garbage_files_never_crashes_and_reconciles(scratch_db, tmp_path_factory, body: bytes) -> None:
    root = tmp_path_factory.mktemp("garbage")
    (root / "SH01").mkdir()
    (root / "SH01" / "g.csv").write_bytes(HEADER.encode() + b"\n" + pos_line().encode() + b"\n" + body)
    loaders.load_pos_exports(scratch_db, root)
    (row,) = query(
        scratch_db,
        "select rows_read, rows_loaded + rows_quarantined, (select count(*) from raw.quarantine where file_name = 'SH01/g.csv')"
        " + (select count(*) from raw.pos_sales_lines where _source_file = 'SH01/g.csv')"
        " from raw.load_manifest where file_name = 'SH01/g.csv'",
    )
    assert row[0] == row[1] == row[2]


def test_a_line_already_delivered_by_another_file_is_quarantined_as_duplicate(scratch_db, tmp_path: Path) -> None:
    write_export(tmp_path, "SH01_20261001.csv", pos_line())
    write_export(tmp_path, "SH01_20261002.csv", pos_line(), pos_line(receipt="SH01-2"))
    summary = loaders.load_pos_exports(scratch_db, tmp_path)
    assert (summary.rows_loaded, summary.rows_quarantined) == (2, 1)
    assert query(scratch_db, "select file_name, reason_code, detail from raw.quarantine") == [
        ("SH01/SH01_20261002.csv", "duplicate_order_id", "SH01-1/1 already loaded from SH01/SH01_20261001.csv")
    ]
    assert query(
        scratch_db, "select rows_read, rows_loaded, rows_quarantined, amount_quarantined from raw.load_manifest order by 1"
    ) == [
        (1, 1, 0, Decimal("0")),
        (2, 1, 1, Decimal("880.00")),
    ]


def test_shop_extraction_is_incremental_and_picks_up_late_refunds(scratch_db, tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "orders.csv").write_text(
        "order_id,member_id,channel,status,ordered_at,updated_at\n"
        "W1,M1,website,completed,2026-10-01 10:00:00,2026-10-01 10:05:00\n"
        "W2,M2,wechat,completed,2026-10-02 10:00:00,2026-10-02 10:05:00\n"
    )
    (shop / "order_lines.csv").write_text(
        "order_id,line_no,sku,business_line,customization_level,quantity,unit_price,amount\n"
        "W1,1,A,wedding,bespoke,1,5000.00,5000.00\nW2,1,B,anniversary,standard,2,300.00,600.00\n"
    )
    loaders.seed_shop_database(scratch_db, shop)
    assert loaders.extract_shop_orders(scratch_db).rows_loaded == 2
    assert loaders.extract_shop_orders(scratch_db).files_seen == 0  # nothing new
    query(scratch_db, "update shop.orders set status = 'refunded', updated_at = '2026-10-20 09:00' where order_id = 'W1'")
    late = loaders.extract_shop_orders(scratch_db)
    assert (late.files_seen, late.rows_loaded) == (1, 1)
    assert query(scratch_db, "select order_id, status from raw.shop_orders order by 1") == [
        ("W1", "refunded"),
        ("W2", "completed"),
    ]
    assert query(scratch_db, "select count(*), sum(amount) from raw.shop_order_lines") == [(2, Decimal("5600.00"))]


# -- personal data and the other sources ------------------------------------------------------
CRM_HEADER = "会员编号,姓名,手机号,地址,客户类型,分级授权,分级授权时间,营销授权,营销授权时间,更新时间"


def test_crm_personal_data_lands_only_in_pii_and_phones_as_keys(scratch_db, tmp_path: Path) -> None:
    (tmp_path / "members_202609.csv").write_bytes(
        (
            CRM_HEADER + "\r\n"
            "M1,张伟,+86 138-0013-8000,上海市静安区某路1号,individual,是,2026-09-01 10:00:00,否,,2026-09-01 10:00:00\r\n"
            "M2,某某花艺有限公司,13900139000,北京市朝阳区某街2号,enterprise,否,,是,2026-09-02 10:00:00,2026-09-02 10:00:00\r\n"
            "M3,李娜,12345,杭州市,individual,是,2026-09-03 10:00:00,否,,2026-09-03 10:00:00\r\n"
        ).encode("utf-8-sig")
    )
    summary = loaders.load_exports(scratch_db, sources.CRM, tmp_path)
    assert (summary.rows_loaded, summary.rows_quarantined) == (2, 1)
    raw_columns = {
        c
        for (c,) in query(
            scratch_db,
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = 'crm_members'",
        )
    }
    assert not raw_columns & {"name", "phone", "address"}
    raw_text = str(query(scratch_db, "select * from raw.crm_members"))
    for personal in ("张伟", "13800138000", "138-0013", "静安区", "某某花艺"):
        assert personal not in raw_text
    # the restricted copy is encrypted at rest; with the key it reads back as loaded
    stored = query(scratch_db, "select member_id, name, phone from pii.crm_members order by 1")
    assert all(crypto.is_encrypted(name) and crypto.is_encrypted(phone) for _, name, phone in stored)
    assert [
        (member, crypto.decrypt(name, "pii.crm_members.name"), crypto.decrypt(phone, "pii.crm_members.phone"))
        for member, name, phone in stored
    ] == [("M1", "张伟", "13800138000"), ("M2", "某某花艺有限公司", "13900139000")]
    (key,) = query(scratch_db, "select phone_key from raw.crm_members where member_id = 'M1'")
    assert key[0] == crypto.pseudonymise("phone", "13800138000")
    assert query(scratch_db, "select reason_code from raw.quarantine") == [("invalid_value",)]


def test_the_documented_import_example_loads_cleanly_and_only_once(scratch_db, tmp_path: Path) -> None:
    example = PROJECT_ROOT / "docs" / "examples" / "orders_import_example.csv"
    first = loaders.import_order_file(scratch_db, example, landing=tmp_path)
    assert (first.rows_loaded, first.rows_quarantined) == (5, 0)
    assert loaders.import_order_file(scratch_db, example, landing=tmp_path).files_loaded == 0
    assert query(scratch_db, "select count(*), sum(amount), count(phone_key) from raw.imported_order_lines") == [
        (5, Decimal("31080.00"), 2)
    ]
    (report,) = loaders.load_report(scratch_db)
    assert report.reconciled and report.source == "imports"


def test_a_load_killed_mid_file_leaves_nothing_and_a_rerun_completes_it(
    scratch_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_export(tmp_path, "SH01_20261001.csv", pos_line(), pos_line(line_no="2"))
    write_export(tmp_path, "SH01_20261002.csv", pos_line(receipt="SH01-2"), pos_line(receipt="SH01-2", amount="x"))
    real_record = loaders._record_load

    def dies_on_second_file(cur, source, file_name, sha256, tally):
        if file_name.endswith("20261002.csv"):
            raise KeyboardInterrupt("worker killed")  # after the rows were copied, before the manifest
        real_record(cur, source, file_name, sha256, tally)

    monkeypatch.setattr(loaders, "_record_load", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        loaders.load_pos_exports(scratch_db, tmp_path)
    assert query(scratch_db, "select distinct _source_file from raw.pos_sales_lines") == [("SH01/SH01_20261001.csv",)]
    assert query(scratch_db, "select count(*) from raw.quarantine") == [(0,)]
    monkeypatch.setattr(loaders, "_record_load", real_record)
    rerun = loaders.load_pos_exports(scratch_db, tmp_path)
    assert (rerun.files_loaded, rerun.rows_loaded, rerun.rows_quarantined) == (1, 1, 1)
    assert query(scratch_db, "select count(*) from raw.pos_sales_lines") == [(3,)]
