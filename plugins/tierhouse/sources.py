"""The file sources: what each export looks like and where its rows land.

A source is described, not coded: its columns (with every header spelling the exporting
system uses), their types, which are required, the key that must be unique, and the amount
that must reconcile. :mod:`tierhouse.ingest` reads any of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reason codes of raw.quarantine, in one place so tests, docs and GE suites agree.
BAD_ENCODING = "bad_encoding"
UNPARSABLE_ROW = "unparsable_row"
MISSING_COLUMN = "missing_column"
WRONG_FIELD_COUNT = "wrong_field_count"
MISSING_REQUIRED_FIELD = "missing_required_field"
UNPARSABLE_AMOUNT = "unparsable_amount"
UNPARSABLE_DATE = "unparsable_date"
UNPARSABLE_NUMBER = "unparsable_number"
INVALID_VALUE = "invalid_value"
FUTURE_DATE = "future_date"
NEGATIVE_QUANTITY = "negative_quantity"
SIGN_MISMATCH = "sign_mismatch"
UNKNOWN_STORE = "unknown_store"
DUPLICATE_LINE = "duplicate_line"
DUPLICATE_ORDER_ID = "duplicate_order_id"

REASON_CODES = (
    BAD_ENCODING, UNPARSABLE_ROW, MISSING_COLUMN, WRONG_FIELD_COUNT, MISSING_REQUIRED_FIELD, UNPARSABLE_AMOUNT,
    UNPARSABLE_DATE, UNPARSABLE_NUMBER, INVALID_VALUE, FUTURE_DATE, NEGATIVE_QUANTITY, SIGN_MISMATCH, UNKNOWN_STORE,
    DUPLICATE_LINE, DUPLICATE_ORDER_ID,
)  # fmt: skip

#: Column kinds and the reason a value of that kind is rejected for.
KIND_REASON = {
    "text": None,
    "int": UNPARSABLE_NUMBER,
    "amount": UNPARSABLE_AMOUNT,
    "timestamp": UNPARSABLE_DATE,
    "date": UNPARSABLE_DATE,
    "bool": INVALID_VALUE,
}


@dataclass(frozen=True)
class Column:
    name: str
    headers: tuple[str, ...]
    kind: str = "text"
    required: bool = False
    allowed: frozenset[str] | None = None


@dataclass(frozen=True)
class CsvSource:
    name: str
    subdir: str  # under the landing directory
    table: str  # raw.<table>
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...]
    amount_column: str | None = None
    #: Columns whose value must also be unique across files (e.g. an order id reused by a till).
    cross_file_key: tuple[str, ...] = ()
    store_column: str | None = None
    #: (quantity, amount): both negative for a refund, both positive for a sale.
    signed_pair: tuple[str, str] | None = None

    @property
    def header_map(self) -> dict[str, str]:
        return {header: column.name for column in self.columns for header in (column.name, *column.headers)}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


CUSTOMIZATION_LEVELS = frozenset({"standard", "semi_custom", "bespoke"})
BUSINESS_LINES = frozenset(
    {"wedding", "anniversary", "everyday_premium", "private_banquet", "business_event", "corporate_gift", "office_scene"}
)

POS = CsvSource(
    name="pos",
    subdir="pos",
    table="pos_sales_lines",
    columns=(
        Column("receipt_no", ("小票号",), required=True),
        Column("line_no", ("行号",), "int", required=True),
        Column("sold_at", ("销售时间",), "timestamp", required=True),
        Column("store_code", ("门店编码",), required=True),
        Column("member_id", ("会员卡号",)),
        Column("sku", ("商品编码",), required=True),
        Column("business_line", ("业务类型",), allowed=BUSINESS_LINES),
        Column("customization_level", ("定制等级",), allowed=CUSTOMIZATION_LEVELS),
        Column("quantity", ("数量",), "int", required=True),
        Column("unit_price", ("单价",), "amount"),
        Column("amount", ("金额",), "amount", required=True),
    ),
    unique_key=("receipt_no", "line_no"),
    amount_column="amount",
    cross_file_key=("receipt_no", "line_no"),
    store_column="store_code",
    signed_pair=("quantity", "amount"),
)

SOURCES = {source.name: source for source in (POS,)}
