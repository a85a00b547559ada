"""The file sources: what each export looks like and where its rows land.

A source is described, not coded: its columns (with every header spelling the exporting
system uses), their types, which are required, the key that must be unique, the amount that
must reconcile and the dates that are plausible. :mod:`tierhouse.ingest.loaders` reads any of
them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# Reason codes of raw.quarantine, in one place so tests, docs and GE suites agree.
BAD_ENCODING = "bad_encoding"
BAD_HEADER = "bad_header"
FIELD_TOO_LARGE = "field_too_large"
UNPARSABLE_ROW = "unparsable_row"
MISSING_COLUMN = "missing_column"
WRONG_FIELD_COUNT = "wrong_field_count"
MISSING_REQUIRED_FIELD = "missing_required_field"
UNPARSABLE_AMOUNT = "unparsable_amount"
UNPARSABLE_DATE = "unparsable_date"
UNPARSABLE_NUMBER = "unparsable_number"
INVALID_VALUE = "invalid_value"
FUTURE_DATE = "future_date"
IMPLAUSIBLE_DATE = "implausible_date"
NEGATIVE_QUANTITY = "negative_quantity"
SIGN_MISMATCH = "sign_mismatch"
UNKNOWN_STORE = "unknown_store"
DUPLICATE_LINE = "duplicate_line"
DUPLICATE_ORDER_ID = "duplicate_order_id"
#: A record of a person whose data was erased (audit.erasure_ledger): counted, never kept.
ERASED_SUBJECT = "erased_subject"

REASON_CODES = (
    BAD_ENCODING, BAD_HEADER, FIELD_TOO_LARGE, UNPARSABLE_ROW, MISSING_COLUMN, WRONG_FIELD_COUNT, MISSING_REQUIRED_FIELD,
    UNPARSABLE_AMOUNT, UNPARSABLE_DATE, UNPARSABLE_NUMBER, INVALID_VALUE, FUTURE_DATE, IMPLAUSIBLE_DATE, NEGATIVE_QUANTITY,
    SIGN_MISMATCH, UNKNOWN_STORE, DUPLICATE_LINE, DUPLICATE_ORDER_ID, ERASED_SUBJECT,
)  # fmt: skip

#: The largest field a record may hold; a larger one is a broken export (an unclosed quote
#: swallowing the rest of the file, a blob pasted into a cell), quarantined as field_too_large.
MAX_FIELD_CHARS = 64 * 1024
#: The largest record: no valid record of any source comes near it (12 fields at the field
#: limit), and reading stops there, so one endless line cannot exhaust memory.
MAX_RECORD_CHARS = 1024 * 1024

#: Plausible dates, unless a source says otherwise: none before 2000 (0001-01-01 is a blank
#: date field in some exporters, not history), and no timestamp — something that happened —
#: more than a day ahead of the load (a till's clock may run fast).
EARLIEST_DATE = date(2000, 1, 1)
TIMESTAMP_LEEWAY = timedelta(days=1)

#: Column kinds and the reason a value of that kind is rejected for.
KIND_REASON = {
    "text": None,
    "int": UNPARSABLE_NUMBER,
    "amount": UNPARSABLE_AMOUNT,
    "timestamp": UNPARSABLE_DATE,
    "date": UNPARSABLE_DATE,
    "bool": INVALID_VALUE,
    "phone": INVALID_VALUE,
}
SQL_TYPES = {
    "text": "text",
    "int": "integer",
    "amount": "numeric(12, 2)",
    "timestamp": "timestamp",
    "date": "date",
    "bool": "boolean",
    "phone": "text",
}


@dataclass(frozen=True)
class Column:
    name: str
    headers: tuple[str, ...]
    kind: str = "text"
    required: bool = False
    allowed: frozenset[str] | None = None
    #: The smallest value an ``int`` column takes (a line number starts at 1).
    minimum: int | None = None
    #: Personal identifier: raw keeps only ``<name>_key``, a keyed hash (tierhouse.privacy.crypto).
    pseudonymise: bool = False
    #: Personal data: kept only in the restricted ``pii`` schema, never in raw.
    restricted: bool = False
    #: An identifier or a product code, kept in raw as it is: a value holding personal data
    #: (a phone number typed as a member id) is quarantined as ``invalid_value`` instead.
    code: bool = False

    @property
    def personal(self) -> bool:
        """Whether a value of this column is personal data, never to be quoted outside ``pii``."""
        return self.pseudonymise or self.restricted

    @property
    def raw_name(self) -> str | None:
        """The column's name in the raw table, or None when it must not appear there."""
        if self.pseudonymise:
            return f"{self.name}_key"
        return None if self.restricted else self.name


@dataclass(frozen=True)
class CsvSource:
    name: str
    subdir: str  # under the landing directory
    table: str  # raw.<table>
    columns: tuple[Column, ...]
    #: Unique within a file and across every file of the source (a till re-exporting yesterday's
    #: line is a duplicate, not a second sale).
    unique_key: tuple[str, ...]
    amount_column: str | None = None
    store_column: str | None = None
    #: (quantity, amount): both negative for a refund, both positive for a sale.
    signed_pair: tuple[str, str] | None = None
    #: No date or timestamp of the source lies before this day.
    earliest: date = EARLIEST_DATE
    #: How far ahead of the load a ``date`` column (a due date, an event date) may lie.
    dates_ahead: timedelta = timedelta(0)

    @property
    def header_map(self) -> dict[str, str]:
        """Every header spelling, case-folded (headers are matched ignoring case and surrounding space)."""
        return {header.casefold(): column.name for column in self.columns for header in (column.name, *column.headers)}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        return (*(c.raw_name for c in self.columns if c.raw_name), "_source_file", "_source_line")

    @property
    def restricted_columns(self) -> tuple[str, ...]:
        """Columns of ``pii.<table>``: the row's key, then its personal data in clear."""
        personal = tuple(c.name for c in self.columns if c.restricted)
        return (*self.unique_key, *personal, "_source_file", "_source_line") if personal else ()


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
        Column("line_no", ("行号",), "int", required=True, minimum=1),
        Column("sold_at", ("销售时间",), "timestamp", required=True),
        Column("store_code", ("门店编码",), required=True),
        Column("member_id", ("会员卡号",)),
        # Walk-in customers without a card may give a phone number at the till.
        Column("phone", ("手机号",), "phone", pseudonymise=True),
        Column("sku", ("商品编码",), required=True),
        Column("business_line", ("业务类型",), allowed=BUSINESS_LINES),
        Column("customization_level", ("定制等级",), allowed=CUSTOMIZATION_LEVELS),
        Column("quantity", ("数量",), "int", required=True),
        Column("unit_price", ("单价",), "amount"),
        Column("amount", ("金额",), "amount", required=True),
    ),
    unique_key=("receipt_no", "line_no"),
    amount_column="amount",
    store_column="store_code",
    signed_pair=("quantity", "amount"),
)

CRM = CsvSource(
    name="crm",
    subdir="crm",
    table="crm_members",
    columns=(
        Column("member_id", ("会员编号",), required=True),
        Column("name", ("姓名",), restricted=True),
        Column("phone", ("手机号",), "phone", pseudonymise=True, restricted=True),
        Column("address", ("地址",), restricted=True),
        Column("customer_type", ("客户类型",), required=True, allowed=frozenset({"individual", "enterprise"})),
        Column("grading_consent", ("分级授权",), "bool", required=True),
        Column("grading_consent_at", ("分级授权时间",), "timestamp"),
        Column("marketing_consent", ("营销授权",), "bool"),
        Column("marketing_consent_at", ("营销授权时间",), "timestamp"),
        Column("updated_at", ("更新时间",), "timestamp", required=True),
    ),
    unique_key=("member_id", "updated_at"),
)

PAYMENTS = CsvSource(
    name="payments",
    subdir="payments",
    table="payments",
    columns=(
        Column("payment_id", ("付款单号",), required=True),
        Column("order_ref", ("订单号",), required=True),
        Column("member_id", ("会员编号",)),
        Column("amount", ("金额",), "amount", required=True),
        Column("due_date", ("应付日期",), "date", required=True),
        Column("paid_at", ("付款时间",), "timestamp"),
        Column("method", ("付款方式",), allowed=frozenset({"wechat_pay", "alipay", "card", "bank_transfer", "cash"})),
    ),
    unique_key=("payment_id",),
    amount_column="amount",
    dates_ahead=timedelta(days=366),  # instalments fall due within a year
)

CUSTOM_ORDERS = CsvSource(
    name="custom_orders",
    subdir="custom_orders",
    table="custom_orders",
    columns=(
        Column("custom_order_id", ("定制单号",), required=True),
        Column("order_ref", ("订单号",), required=True),
        Column("member_id", ("会员编号",)),
        Column("business_line", ("业务类型",), required=True, allowed=BUSINESS_LINES),
        Column("customization_level", ("定制等级",), required=True, allowed=CUSTOMIZATION_LEVELS),
        Column("rare_flowers", ("稀有花材",), "bool"),
        Column("imported_flowers", ("进口花材",), "bool"),
        Column("event_date", ("活动日期",), "date"),
    ),
    unique_key=("custom_order_id",),
    dates_ahead=timedelta(days=2 * 366),  # weddings are booked up to two years ahead
)

FEEDBACK = CsvSource(
    name="feedback",
    subdir="feedback",
    table="service_tickets",
    columns=(
        Column("ticket_id", ("工单号",), required=True),
        Column("member_id", ("会员编号",)),
        Column("order_ref", ("订单号",)),
        Column("opened_at", ("创建时间",), "timestamp", required=True),
        Column("closed_at", ("关闭时间",), "timestamp"),
        Column(
            "category",
            ("类别",),
            required=True,
            allowed=frozenset({"delivery_delay", "quality", "design_change", "enquiry", "complaint"}),
        ),
        Column("satisfaction", ("满意度",), "int", allowed=frozenset({"1", "2", "3", "4", "5"})),
        # Free text written by staff: it may name or quote the customer, so it is personal data.
        Column("note", ("备注",), restricted=True),
    ),
    unique_key=("ticket_id",),
)

#: The generic order-history layout (README, "Grading your own customers"): what a retailer
#: exports from any till or shop system to get graded without writing a generator.
ORDER_IMPORT = CsvSource(
    name="imports",
    subdir="imports",
    table="imported_order_lines",
    columns=(
        Column("order_id", ("订单号",), required=True),
        Column("line_no", ("行号",), "int", required=True, minimum=1),
        Column("ordered_at", ("下单时间",), "timestamp", required=True),
        Column("channel", ("渠道",), required=True, allowed=frozenset({"store", "website", "wechat", "ecommerce"})),
        Column("store_code", ("门店编码",)),
        # typed by hand in whatever system exported them: a phone number in the member id field
        # would otherwise land in raw in clear
        Column("member_id", ("会员编号",), code=True),
        Column("phone", ("手机号",), "phone", pseudonymise=True),
        Column("sku", ("商品编码",), code=True),
        Column("business_line", ("业务类型",), allowed=BUSINESS_LINES),
        Column("customization_level", ("定制等级",), allowed=CUSTOMIZATION_LEVELS),
        Column("quantity", ("数量",), "int", required=True),
        Column("amount", ("金额",), "amount", required=True),
    ),
    unique_key=("order_id", "line_no"),
    amount_column="amount",
    signed_pair=("quantity", "amount"),
)

SOURCES = {source.name: source for source in (POS, CRM, PAYMENTS, CUSTOM_ORDERS, FEEDBACK, ORDER_IMPORT)}
