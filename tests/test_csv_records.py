"""The parser reads CSV records, not lines: a corpus of hard CSV, each case with its outcome.

The cases come from RFC 4180 and from what common exporters write: Excel ("CSV UTF-8" with a
BOM, Chinese-locale "CSV" in GBK, Alt+Enter line breaks in a cell, "Unicode text" in UTF-16),
WPS, tills and ERPs (CR-only or mixed line endings, every field quoted, trailing delimiters,
semicolons), and broken files (truncated mid-quote, ragged rows, a blob pasted into a cell).
Every case must reconcile: records read = loaded + quarantined, and the same for amounts.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierhouse.ingest import parsing, sources
from tierhouse.ingest.sources import CRM, FEEDBACK, ORDER_IMPORT, POS

NOW = datetime(2026, 11, 2, 12, 0)
STORES = frozenset({"SH01", "SH02", "BJ01"})
HEADER = ",".join(c.name for c in ORDER_IMPORT.columns)
CHINESE_HEADER = ",".join(c.headers[0] for c in ORDER_IMPORT.columns)


def line(order="A-1", line_no="1", ordered_at="2026-09-03 14:20:00", sku="WED-S014", quantity="1", amount="100.00") -> str:
    return f"{order},{line_no},{ordered_at},store,SH01,VIP1,,{sku},wedding,standard,{quantity},{amount}"


def rows(*lines: str, header: str = HEADER, newline: str = "\r\n", final_newline: bool = True) -> str:
    return newline.join([header, *lines]) + (newline if final_newline else "")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    loaded: list[int]  # line numbers of the loaded rows
    quarantined: list[tuple[int, str]] = ()  # type: ignore[assignment]  # (line number, reason code)
    amount_read: str | None = None
    records: int | None = None  # rows read, when a refused file stands for more records than rejections
    source: sources.CsvSource = ORDER_IMPORT
    check: Callable[[parsing.FileLoad], bool] | None = None


def sku_of(load: parsing.FileLoad, index: int = 0) -> str:
    return load.good_rows[index][[c.name for c in ORDER_IMPORT.columns].index("sku")]


CRM_HEADER = "会员编号,姓名,手机号,地址,客户类型,分级授权,分级授权时间,营销授权,营销授权时间,更新时间"
FEEDBACK_HEADER = "工单号,会员编号,订单号,创建时间,关闭时间,类别,满意度,备注"
POS_HEADER = "小票号,行号,销售时间,门店编码,会员卡号,手机号,商品编码,业务类型,定制等级,数量,单价,金额"
TWO_MB = 2 * 1000 * 1000

CASES = [
    # -- RFC 4180 and line endings ------------------------------------------------------------
    Case("rfc4180 CRLF", rows(line(), line(line_no="2")).encode(), [2, 3], amount_read="200.00"),
    Case("LF only", rows(line(), line(line_no="2"), newline="\n").encode(), [2, 3]),
    Case("CR only (classic Mac Excel)", rows(line(), line(line_no="2"), newline="\r").encode(), [2, 3]),
    Case(
        "mixed CRLF, LF and CR",
        (HEADER + "\r\n" + line() + "\n" + line(line_no="2") + "\r" + line(line_no="3")).encode(),
        [2, 3, 4],
    ),
    Case("no line break after the last record", rows(line(), final_newline=False).encode(), [2]),
    Case(
        "every field quoted (WPS, quote all)",
        rows(",".join(f'"{v}"' for v in line().split(","))).encode(),
        [2],
        check=lambda load: sku_of(load) == "WED-S014",
    ),
    Case(
        "quoted header labels",
        rows(line(), header=",".join(f'"{h}"' for h in HEADER.split(","))).encode(),
        [2],
    ),
    Case(
        "escaped quotes inside a quoted field",
        rows(line(sku='"WED ""Sunrise"" 14"')).encode(),
        [2],
        check=lambda load: sku_of(load) == 'WED "Sunrise" 14',
    ),
    Case(
        "a delimiter inside a quoted field", rows(line(sku='"WED,14"')).encode(), [2], check=lambda load: sku_of(load) == "WED,14"
    ),
    Case(
        "quoted thousands separator in the amount (Excel number format)",
        rows(line(amount='"1,234.50"')).encode(),
        [2],
        amount_read="1234.50",
    ),
    Case(
        "CRLF inside a quoted field (Excel Alt+Enter)",
        rows(line(sku='"WED\r\nS014"'), line(line_no="2")).encode(),
        [2, 4],
        amount_read="200.00",
        check=lambda load: sku_of(load) == "WED\r\nS014",
    ),
    Case(
        "LF and CR inside quoted fields of a CR-only file",
        rows(line(sku='"a\nb"'), line(line_no="2", sku='"c\rd"'), line(line_no="3"), newline="\r").encode(),
        [2, 4, 6],
        check=lambda load: [sku_of(load, 0), sku_of(load, 1)] == ["a\nb", "c\rd"],
    ),
    Case(
        "U+2028, NEL and form feed inside a quoted field",
        rows(line(sku='"a\u2028b\x85c\x0cd"'), line(line_no="2")).encode(),
        [2, 3],
        check=lambda load: sku_of(load) == "a\u2028b\x85c\x0cd",
    ),
    Case("U+2028 in an unquoted field is not a line break", rows(line(sku="a\u2028b"), line(line_no="2")).encode(), [2, 3]),
    Case(
        "a quote inside an unquoted field is kept",
        rows(line(sku='12" bouquet')).encode(),
        [2],
        check=lambda load: sku_of(load) == '12" bouquet',
    ),
    Case("empty lines between and after records", rows("", line(), "", "   ", line(line_no="2"), "", "").encode(), [3, 6]),
    Case("header only", HEADER.encode(), []),
    Case("empty file", b"", []),
    Case("a record of empty fields", rows(",,,,,,,,,,,", line()).encode(), [3], [(2, "missing_required_field")]),
    # -- encodings ----------------------------------------------------------------------------
    Case("UTF-8 with BOM (Excel CSV UTF-8)", b"\xef\xbb\xbf" + rows(line()).encode(), [2]),
    Case("two BOMs (a BOM file re-saved with a BOM)", b"\xef\xbb\xbf\xef\xbb\xbf" + rows(line()).encode(), [2]),
    Case(
        "GBK with Chinese headers (Chinese-locale Excel and WPS CSV)",
        rows(line(sku="婚礼花束"), header=CHINESE_HEADER).encode("gbk"),
        [2],
        check=lambda load: sku_of(load) == "婚礼花束",
    ),
    Case("GB18030 four-byte character", rows(line(sku="花𠀀")).encode("gb18030"), [2], check=lambda load: sku_of(load) == "花𠀀"),
    Case(
        "UTF-16 with BOM (Excel and WPS Unicode export, comma-separated)",
        rows(line(sku="婚礼"), header=CHINESE_HEADER).encode("utf-16"),
        [2],
        check=lambda load: sku_of(load) == "婚礼",
    ),
    Case(
        "one record with bytes that are not UTF-8",
        rows(line(sku="婚礼")).encode() + b"A-9,1,\xff\xfe broken\r\n" + line(line_no="3").encode(),
        [2, 4],
        [(3, "bad_encoding")],
    ),
    Case("a NUL byte", rows(line(), line(line_no="2", sku="a\x00b")).encode(), [2], [(3, "bad_encoding")]),
    # -- headers ------------------------------------------------------------------------------
    Case(
        "upper-case and padded header labels",
        rows(line(), header=", ".join(f" {h.upper()} " for h in HEADER.split(","))).encode(),
        [2],
    ),
    Case("Chinese header aliases", rows(line(), header=CHINESE_HEADER).encode(), [2]),
    Case(
        "a repeated column (amount,amount): one refusal, amount unknown",
        rows(line() + ",5.00", line(line_no="2") + ",6.00", header=HEADER + ",amount").encode(),
        [],
        [(1, "bad_header")],
        amount_read="0",
        records=2,
    ),
    Case(
        "the same column under two spellings (amount and 金额)",
        rows(line() + ",5.00", header=HEADER + ",金额").encode(),
        [],
        [(1, "bad_header")],
        records=1,
    ),
    Case(
        "an unknown extra column: one refusal, amount still read",
        rows(line() + ",hello", line(line_no="2", amount="5.00") + ",x", header=HEADER + ",note").encode(),
        [],
        [(1, "bad_header")],
        amount_read="105.00",
        records=2,
    ),
    Case(
        "a blank header column",
        rows(
            "A-1,1,2026-09-03 14:20:00,store,,SH01,VIP1,,WED,wedding,standard,1,100.00",
            header=HEADER.replace(",store_code,", ",,store_code,"),
        ).encode(),
        [],
        [(1, "bad_header")],
        records=1,
    ),
    Case(
        "a trailing delimiter on every line (some ERPs)",
        rows(line() + ",", line(line_no="2") + ",", header=HEADER + ",").encode(),
        [],
        [(1, "bad_header")],
        records=2,
        check=lambda load: "trailing delimiter" in load.rejections[0].detail,
    ),
    Case(
        "a missing required column",
        rows("A-1,1,2026-09-03 14:20:00,store,SH01,VIP1,,WED,wedding,standard,1", header=HEADER.removesuffix(",amount")).encode(),
        [],
        [(1, "missing_column")],
        amount_read="0",
        records=1,
    ),
    Case(
        "semicolon-separated (European-locale Excel)",
        rows(line().replace(",", ";"), header=HEADER.replace(",", ";")).encode(),
        [],
        [(1, "bad_header")],
        records=1,
    ),
    Case(
        "tab-separated",
        rows(line().replace(",", "\t"), header=HEADER.replace(",", "\t")).encode(),
        [],
        [(1, "bad_header")],
        records=1,
    ),
    Case(
        "an unclosed quote in the header swallows the file",
        ('"order_id,' + rows(line())).encode(),
        [],
        [(1, "bad_header")],
        records=0,
    ),
    # -- broken records -----------------------------------------------------------------------
    Case(
        "ragged rows: too few and too many fields",
        rows(line(), "A-2,1,2026-09-03 14:20:00,store", line(order="A-3") + ",extra").encode(),
        [2],
        [(3, "wrong_field_count"), (4, "wrong_field_count")],
        amount_read="200.00",  # the long row's amount is where the header says; the short row has none
    ),
    Case(
        "a trailing delimiter on data rows only",
        rows(line() + ",").encode(),
        [],
        [(2, "wrong_field_count")],
        amount_read="100.00",
    ),
    Case(
        "a file cut off inside a quoted field",
        rows(line(), line(line_no="2", sku='"WED\r\nS0'), final_newline=False).encode(),
        [2],
        [(3, "unparsable_row")],
    ),
    Case("text after a closing quote", rows(line(sku='"WED"14'), line(line_no="2")).encode(), [3], [(2, "unparsable_row")]),
    Case(
        "a 2 MB quoted field (a blob pasted into a cell)",
        rows(line(sku='"' + "x" * TWO_MB + '"'), line(line_no="2")).encode(),
        [3],
        [(2, "field_too_large")],
        check=lambda load: (
            load.rejections[0].detail.startswith("field too large")
            and len(load.rejections[0].raw_text) < sources.MAX_FIELD_CHARS + 100
        ),
    ),
    Case(
        "a 100 KB field",
        rows(line(sku="x" * 100_000), line(line_no="2")).encode(),
        [3],
        [(2, "field_too_large")],
        amount_read="200.00",
    ),
    Case("a 2 MB line without a break", rows(line(sku="x" * TWO_MB), line(line_no="2")).encode(), [3], [(2, "field_too_large")]),
    # -- values -------------------------------------------------------------------------------
    Case(
        "Arabic-Indic and full-width digits, 1e3, NaN, 1_000",
        rows(
            line(quantity="\u0661"),
            line(line_no="2", amount="\u0661\u0660\u0660.00"),
            line(line_no="3", amount="1e3"),
            line(line_no="4", amount="NaN"),
            line(line_no="5", quantity="１"),
            line(line_no="6", amount="1_000"),
            line(line_no="\u0667"),
        ).encode(),
        [],
        [
            (2, "unparsable_number"),
            (3, "unparsable_amount"),
            (4, "unparsable_amount"),
            (5, "unparsable_amount"),
            (6, "unparsable_number"),
            (7, "unparsable_amount"),
            (8, "unparsable_number"),
        ],
        amount_read="300.00",
    ),
    Case(
        "line_no -1 and 0",
        rows(line(line_no="-1"), line(line_no="0"), line(line_no="3")).encode(),
        [4],
        [(2, "invalid_value"), (3, "invalid_value")],
    ),
    Case(
        "implausible and future timestamps",
        rows(
            line(ordered_at="0001-01-01 00:00:00"),
            line(line_no="2", ordered_at="1999-12-31 23:59:59"),
            line(line_no="3", ordered_at="2000-01-01 00:00:00"),
            line(line_no="4", ordered_at="2026-11-03 11:00:00"),  # the till's clock a day ahead
            line(line_no="5", ordered_at="2026-11-04 00:00:00"),
            line(line_no="6", ordered_at="\u0662\u0660\u0662\u0666-09-03 14:20:00"),
        ).encode(),
        [4, 5],
        [(2, "implausible_date"), (3, "implausible_date"), (6, "future_date"), (7, "unparsable_date")],
    ),
    Case(
        "a locale date format (2026/9/3) is not ISO 8601",
        rows(line(ordered_at="2026/9/3 14:20"), line(line_no="2", ordered_at="2026/09/03 14:20")).encode(),
        [3],
        [(2, "unparsable_date")],
    ),
    Case("spaces around values", rows(line(amount=" 100.00 ", quantity=" 1")).encode(), [2], amount_read="100.00"),
    Case(
        "a repeated key in the file",
        rows(line(), line(amount="5.00")).encode(),
        [2],
        [(3, "duplicate_line")],
        amount_read="105.00",
    ),
    # -- other sources ------------------------------------------------------------------------
    Case(
        "CRM: an address with Alt+Enter line breaks, Excel CSV UTF-8",
        (
            "\ufeff" + CRM_HEADER + "\r\n"
            'M1,张伟,13800138000,"上海市静安区\n某路1号",individual,是,2026-09-01 10:00:00,否,,2026-09-01 10:00:00\r\n'
            "M2,李娜,13900139000,杭州市,individual,是,2026-09-02 10:00:00,否,,2026-09-02 10:00:00\r\n"
        ).encode(),
        [2, 4],
        source=CRM,
        check=lambda load: load.good_rows[0][3] == "上海市静安区\n某路1号",
    ),
    Case(
        "CRM: a 0001-01-01 blank date from the exporter",
        (CRM_HEADER + "\nM1,张伟,,,individual,是,0001-01-01 00:00:00,否,,2026-09-01 10:00:00\n").encode(),
        [],
        [(2, "implausible_date")],
        source=CRM,
    ),
    Case(
        "feedback: a staff note with CRLF and quotes, WPS GBK",
        (
            FEEDBACK_HEADER + "\r\n"
            'T1,M1,A-1,2026-09-01 10:00:00,,complaint,2,"客户说：""花束\r\n晚到两小时"""\r\n'
            "T2,M2,A-2,2026-09-02 10:00:00,,enquiry,5,\r\n"
        ).encode("gbk"),
        [2, 4],
        source=FEEDBACK,
        check=lambda load: load.good_rows[0][7] == '客户说："花束\r\n晚到两小时"',
    ),
    Case(
        "POS: Chinese headers in another order, GBK, a till not in the register",
        (
            "金额,会员卡号,小票号,行号,销售时间,门店编码,手机号,商品编码,业务类型,定制等级,数量,单价\r\n"
            "880.00,M1,SH01-1,1,2026-10-01 10:00:00,SH01,,WED-S100,wedding,standard,1,880.00\r\n"
            "120.00,M1,XX99-1,1,2026-10-01 10:00:00,XX99,,WED-S100,wedding,standard,1,120.00\r\n"
        ).encode("gbk"),
        [2],
        [(3, "unknown_store")],
        amount_read="1000.00",
        source=POS,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hard_csv_corpus(case: Case) -> None:
    load = parsing.parse_export(case.source, "corpus.csv", case.data, now=NOW, known_stores=STORES)
    load.reconcile()
    assert [row[-1] for row in load.good_rows] == case.loaded
    assert [(r.line_number, r.reason_code) for r in load.rejections] == list(case.quarantined)
    expected_records = case.records if case.records is not None else len(case.loaded) + len(case.quarantined)
    assert load.rows_read == expected_records == len(load.good_rows) + load.rows_quarantined
    if case.amount_read is not None:
        assert load.amount_read == Decimal(case.amount_read)
    assert all("\x00" not in r.raw_text and len(r.raw_text) < sources.MAX_FIELD_CHARS + 100 for r in load.rejections)
    if case.check is not None:
        assert case.check(load)


def test_a_header_problem_is_one_message_for_the_file_not_one_per_row() -> None:
    data = rows(*(line(order=f"A-{i}") for i in range(500)), header=HEADER + ",amount").encode()
    load = parsing.parse_export(ORDER_IMPORT, "f.csv", data, now=NOW)
    (refusal,) = load.rejections
    assert (refusal.reason_code, refusal.line_number, refusal.records, load.rows_read) == ("bad_header", 1, 500, 500)
    assert refusal.detail == (
        "column 13 'amount' repeats amount (column 12); amount unknown: the header names no single amount column"
    )
    load.reconcile()


# -- valid CSV is never corrupted ---------------------------------------------------------------
FIELD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(FIELD_TEXT, FIELD_TEXT), min_size=1, max_size=12),
    st.sampled_from(["\r\n", "\n", "\r"]),
    st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
)
def test_any_valid_csv_loads_every_record_intact_at_its_starting_line(
    values: list[tuple[str, str]], newline: str, quoting: int, encoding: str
) -> None:
    if quoting == csv.QUOTE_MINIMAL:
        newline = "\r\n"  # csv.writer quotes a field only for the characters of its own line terminator
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=newline, quoting=quoting)
    writer.writerow([c.name for c in ORDER_IMPORT.columns])
    starts = []
    for index, (sku, member) in enumerate(values):
        starts.append(len(list(_physical_lines(buffer.getvalue()))) + 1)
        writer.writerow([f"A-{index}", "1", "2026-09-03 14:20:00", "store", "SH01", member, "", sku, "", "", "1", f"{index}.50"])
    load = parsing.parse_export(ORDER_IMPORT, "f.csv", buffer.getvalue().encode(encoding), now=NOW)
    assert load.rejections == []
    assert [row[-1] for row in load.good_rows] == starts
    names = [c.name for c in ORDER_IMPORT.columns]
    assert [(row[names.index("sku")], row[names.index("member_id")]) for row in load.good_rows] == [
        (sku.strip() or None, member.strip() or None) for sku, member in values
    ]
    assert load.amount_read == sum(Decimal(f"{i}.50") for i in range(len(values)))


def _physical_lines(text: str) -> list[str]:
    """Lines as a file reader sees them: CRLF, LF or CR ends one, nothing else does."""
    return io.StringIO(text, newline="").readlines() if text else []


# -- streaming ----------------------------------------------------------------------------------
def test_batches_each_reconcile_and_add_up_to_the_whole_file() -> None:
    data = rows(*(line(order=f"A-{i}", amount=f"{i}.00") for i in range(25)), line(order="A-3"), "x,y").encode()
    whole = parsing.parse_export(ORDER_IMPORT, "f.csv", data, now=NOW)
    encoding = parsing.detect_encoding(data)
    batches = list(parsing.read_export(ORDER_IMPORT, "f.csv", io.BytesIO(data), encoding, NOW, batch_rows=10))
    assert [b.rows_read for b in batches] == [10, 10, 7]
    total = parsing.Tally()
    for batch in batches:
        batch.reconcile()
        total.add(batch.tally())
    assert total == parsing.Tally(27, 26, 1, Decimal("400.00"), Decimal("400.00"), Decimal("0"))
    assert (whole.rows_read, whole.amount_read) == (27, Decimal("400.00"))
    assert [row[-1] for b in batches for row in b.good_rows] == [row[-1] for row in whole.good_rows] + [27]
    # a key repeated in a later batch is left to the loader, which sees the rows already copied
    assert [(r.line_number, r.reason_code) for b in batches for r in b.rejections] == [(28, "wrong_field_count")]


def _streaming_peak(records: int) -> tuple[int, int]:
    """Peak Python memory of streaming a file of ``records`` rows in batches of 100, and its size."""
    data = rows(*(line(order=f"A-{i}", sku=f"WED-{i % 97}") for i in range(records))).encode()
    encoding, _ = parsing.inspect_export(io.BytesIO(data))
    tracemalloc.start()
    try:
        read = sum(
            b.rows_read for b in parsing.read_export(ORDER_IMPORT, "f.csv", io.BytesIO(data), encoding, NOW, batch_rows=100)
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read == records
    return peak, len(data)


def test_memory_stays_bounded_by_a_batch_not_the_file() -> None:
    small, _ = _streaming_peak(3_000)
    large, size = _streaming_peak(15_000)
    assert large < 1.25 * small, f"peak grew from {small:,} to {large:,} bytes with the file"
    assert large < size / 2, f"peak {large:,} bytes for a {size:,}-byte file"
