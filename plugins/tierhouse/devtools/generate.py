"""Deterministic synthetic data for a high-end custom-flower retailer: all six sources.

Customers are drawn from latent behaviour segments (so every P1 tier is populated) and buy
through four stores and three online channels. Written as the source systems produce them:

* ``pos/<store>/<store>_<YYYYMMDD>.csv`` — one till export per store per business day, Chinese
  headers, CRLF; the stores differ in encoding (UTF-8, UTF-8 with BOM, GBK) and column order.
  Refunds are negative lines; some walk-ins give a phone number instead of a member card.
* ``shop/orders.csv``, ``shop/order_lines.csv`` — the online shop database's tables (loaded
  into the ``shop`` schema by ``tierhouse seed-shop``), with cancellations, late refunds and
  guest checkouts identified by phone only.
* ``crm/members_<YYYYMM>.csv`` — member records created or changed that month (phone and
  address changes, consent flags with timestamps).
* ``payments/payments_<YYYYMM>.csv`` — payments with due and paid dates (enterprise credit terms).
* ``custom_orders/custom_orders_<YYYYMM>.csv`` — customisation details of custom orders.
* ``feedback/tickets_<YYYYMM>.csv`` — after-sales tickets with satisfaction scores and staff notes.

With ``plant_bad_rows`` a fixed handful of bad rows is written too (each kind the loaders must
quarantine), so the demo shows quarantine at work. Same seed and arguments, same bytes: the
generator uses its own random generators and never the clock.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from tierhouse.errors import DevToolMissing, TierhouseError
from tierhouse.ingest.sources import CRM, CUSTOM_ORDERS, FEEDBACK, PAYMENTS, POS, CsvSource

#: POS export header as the till prints it (the first, Chinese, spelling) -> column name.
POS_COLUMNS = {column.headers[0]: column.name for column in POS.columns}


@dataclass(frozen=True)
class Store:
    code: str
    city: str
    encoding: str  # what the store's till writes
    column_order: tuple[str, ...]


_DEFAULT_ORDER = tuple(POS_COLUMNS)
STORES = (
    Store("SH01", "上海", "utf-8", _DEFAULT_ORDER),
    Store("SH02", "上海", "utf-8-sig", _DEFAULT_ORDER),
    Store("BJ01", "北京", "gbk", _DEFAULT_ORDER),
    # An older till that puts the member and amount first.
    Store("HZ01", "杭州", "utf-8", ("会员卡号", "金额", *[c for c in _DEFAULT_ORDER if c not in ("会员卡号", "金额")])),
)
ONLINE_CHANNELS = ("website", "wechat", "ecommerce")

#: (business line, consumer kind) — Art. 5's individual vs enterprise split follows the line.
BUSINESS_LINES = {
    "wedding": "individual",
    "anniversary": "individual",
    "everyday_premium": "individual",
    "private_banquet": "individual",
    "business_event": "enterprise",
    "corporate_gift": "enterprise",
    "office_scene": "enterprise",
}
CUSTOMIZATION_LEVELS = ("standard", "semi_custom", "bespoke")


@dataclass(frozen=True)
class Segment:
    name: str
    share: float
    orders_per_month: float
    median_order: float
    custom_probability: float
    big_order_probability: float  # chance an order is a one-off big-ticket event
    online_share: float

    enterprise_share: float


SEGMENTS = (
    Segment("top", 0.04, 1.7, 6500, 0.75, 0.15, 0.3, 0.45),
    Segment("high", 0.10, 0.9, 3800, 0.45, 0.05, 0.4, 0.35),
    Segment("potential", 0.18, 0.35, 2200, 0.55, 0.08, 0.5, 0.25),
    Segment("regular", 0.68, 0.18, 520, 0.08, 0.005, 0.5, 0.10),
)
TICKET_CATEGORIES = ("delivery_delay", "quality", "design_change", "enquiry", "complaint")
TICKET_NOTES = (
    "客户希望下次提前一天确认配送时间",
    "花材颜色与设计稿略有出入，已补送",
    "客户对婚礼现场布置非常满意",
    "请回电 {phone} 确认新的配送地址",  # staff paste phone numbers into notes: personal data
    "企业客户需要开具增值税专用发票",
    "客户联系人{name}要求更换为白色系花材",
)


@dataclass
class GeneratedCounts:
    customers: int
    pos_files: int = 0
    pos_lines: int = 0
    online_orders: int = 0
    online_lines: int = 0
    crm_rows: int = 0
    payments: int = 0
    custom_orders: int = 0
    tickets: int = 0
    #: source -> bad rows planted on purpose (what quarantine must hold after loading)
    planted_bad_rows: dict[str, int] = field(default_factory=dict)


@dataclass
class _Customer:
    member_id: str
    segment: Segment
    customer_type: str
    lines: tuple[str, ...]
    home_store: Store
    name: str
    phone: str
    address: str
    joined: datetime
    phone_history: list[tuple[datetime, str]] = field(default_factory=list)


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _month_start(day: date, months_back: int) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small rates used here and reproducible across platforms.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def _ts(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


class SampleDataError(TierhouseError, ValueError):
    """The generator cannot make data as asked."""


class _Generator:
    def __init__(self, customers: int, months: int, seed: int, end: date) -> None:
        try:  # a dev-only tool: the runtime image does without it
            from faker import Faker
        except ModuleNotFoundError as exc:
            raise DevToolMissing("faker", "the sample-data generator") from exc
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.customers, self.months, self.end = customers, months, end
        self.first_day = _month_start(end, months)
        self.last_moment = datetime.combine(end - timedelta(days=1), time(20))
        self.pos_rows: dict[tuple[str, date], list[dict[str, str]]] = defaultdict(list)
        self.online_orders: list[dict[str, str]] = []
        self.online_lines: list[dict[str, str]] = []
        self.crm: list[dict[str, str]] = []
        self.payments: list[dict[str, str]] = []
        self.custom_orders: list[dict[str, str]] = []
        self.tickets: list[dict[str, str]] = []
        self.sequence = 0

    def next_id(self) -> int:
        self.sequence += 1
        return self.sequence

    # -- customers ------------------------------------------------------------------------------
    def make_customer(self, index: int) -> tuple[_Customer, int]:
        rng = self.rng
        segment = rng.choices(SEGMENTS, weights=[s.share for s in SEGMENTS])[0]
        kind = "enterprise" if rng.random() < segment.enterprise_share else "individual"
        lines = tuple(line for line, owner in BUSINESS_LINES.items() if owner == kind)
        # Better customers tend to have been around longer; some start mid-window.
        start_offset = 0 if segment.name == "top" else rng.randrange(0, max(1, self.months * 2 // 3))
        joined = datetime.combine(_month_start(self.end, self.months - start_offset), time(10))
        joined -= timedelta(days=rng.randrange(0, 40))
        if start_offset == 0 and segment.name in ("top", "high") and rng.random() < 0.6:
            # long-standing members registered years before the exported history begins
            joined -= timedelta(days=rng.randrange(0, 6 * 365))
        customer = _Customer(
            member_id=f"M{index:06d}",
            segment=segment,
            customer_type=kind,
            lines=lines,
            home_store=rng.choice(STORES),
            name=self.fake.company() if kind == "enterprise" else self.fake.name(),
            phone=_phone(rng),
            address=self.fake.address(),
            joined=joined,
        )
        customer.phone_history.append((joined, customer.phone))
        consent = rng.random() < 0.93
        self.crm_version(customer, joined, consent, rng.random() < 0.6)
        # Some members change phone or address later: a new CRM version each time.
        if rng.random() < 0.15:
            changed_at = joined + timedelta(days=rng.randrange(30, 700))
            if changed_at < self.last_moment:
                if rng.random() < 0.5:
                    customer.phone = _phone(rng)
                    customer.phone_history.append((changed_at, customer.phone))
                else:
                    customer.address = self.fake.address()
                self.crm_version(customer, changed_at, consent, rng.random() < 0.6)
        return customer, start_offset

    def crm_version(self, customer: _Customer, at: datetime, grading: bool, marketing: bool) -> None:
        self.crm.append(
            {
                "member_id": customer.member_id,
                "name": customer.name,
                # the CRM keeps whatever format staff typed
                "phone": self.rng.choice(
                    (customer.phone, f"+86 {customer.phone[:3]}-{customer.phone[3:7]}-{customer.phone[7:]}")
                ),
                "address": customer.address,
                "customer_type": customer.customer_type,
                "grading_consent": "是" if grading else "否",
                "grading_consent_at": _ts(at) if grading else "",
                "marketing_consent": "是" if marketing else "否",
                "marketing_consent_at": _ts(at) if marketing else "",
                "updated_at": _ts(at),
            }
        )

    def phone_at(self, customer: _Customer, moment: datetime) -> str:
        return [phone for since, phone in customer.phone_history if since <= moment][-1]

    # -- orders ---------------------------------------------------------------------------------
    def make_orders(self, customer: _Customer, start_offset: int) -> None:
        rng, segment = self.rng, customer.segment
        for month_index in range(start_offset, self.months):
            month_first = _month_start(self.end, self.months - month_index)
            days_in_month = (_month_start(self.end, self.months - month_index - 1) - month_first).days
            for _ in range(_poisson(rng, segment.orders_per_month)):
                sold_at = datetime.combine(
                    month_first + timedelta(days=rng.randrange(days_in_month)),
                    time(rng.randrange(9, 21), rng.randrange(60), rng.randrange(60)),
                )
                if sold_at < customer.joined:
                    sold_at = customer.joined + timedelta(hours=1)
                self.make_order(customer, sold_at)

    def make_order(self, customer: _Customer, sold_at: datetime) -> None:
        rng, segment = self.rng, customer.segment
        number = self.next_id()
        big = rng.random() < segment.big_order_probability
        order_total = rng.lognormvariate(math.log(segment.median_order), 0.45) * (4.0 if big else 1.0)
        line = rng.choice(customer.lines[:1] * 3 + customer.lines)
        level = "standard"
        if rng.random() < segment.custom_probability:
            level = "bespoke" if big or rng.random() < 0.4 else "semi_custom"
        lines = []
        line_count = 1 + _poisson(rng, 0.8)
        for line_no in range(1, line_count + 1):
            amount = _money(order_total / line_count)
            quantity = 1 + _poisson(rng, 0.5)
            lines.append(
                {
                    "line_no": str(line_no),
                    "sku": f"{line[:3].upper()}-{level[:1].upper()}{rng.randrange(100, 999)}",
                    "business_line": line,
                    "customization_level": level if line_no == 1 else rng.choice((level, "standard")),
                    "quantity": str(quantity),
                    "unit_price": str(_money(float(amount) / quantity)),
                    "amount": str(amount),
                }
            )
        refund = rng.random() < 0.02
        if rng.random() < segment.online_share:
            order_ref = self.online_order(customer, number, sold_at, lines, refund)
        else:
            order_ref = self.store_order(customer, number, sold_at, lines, refund)
        if order_ref is None:
            return
        total = sum((Decimal(r["amount"]) for r in lines), Decimal("0"))
        self.payment(customer, order_ref, sold_at, total)
        if level != "standard":
            self.custom_order(customer, order_ref, sold_at, line, level, big)
        if rng.random() < 0.06:
            self.ticket(customer, order_ref, sold_at)

    def online_order(self, customer, number, sold_at, lines, refund) -> str | None:
        rng = self.rng
        order_id = f"W{number:08d}"
        status, updated_at = "completed", sold_at + timedelta(minutes=5)
        if refund:
            status, updated_at = "refunded", sold_at + timedelta(days=rng.randrange(1, 20))
        elif rng.random() < 0.03:
            status, updated_at = "cancelled", sold_at + timedelta(hours=rng.randrange(1, 48))
        guest = rng.random() < 0.05  # checked out as a guest: phone, no member id
        self.online_orders.append(
            {
                "order_id": order_id,
                "member_id": "" if guest else customer.member_id,
                "phone": self.phone_at(customer, sold_at) if guest or rng.random() < 0.5 else "",
                "channel": rng.choice(ONLINE_CHANNELS),
                "status": status,
                "ordered_at": _ts(sold_at),
                # clamped to the end of the data, but never before the order: a sale after the
                # last day's 20:00 keeps its own time (the raw gate checks updated_at >= ordered_at)
                "updated_at": _ts(max(sold_at, min(updated_at, self.last_moment))),
            }
        )
        self.online_lines.extend({"order_id": order_id, **line} for line in lines)
        return None if status == "cancelled" else f"online:{order_id}"

    def store_order(self, customer, number, sold_at, lines, refund) -> str:
        rng = self.rng
        store = customer.home_store if rng.random() < 0.85 else rng.choice(STORES)
        receipt_no = f"{store.code}-{number:08d}"
        walk_in = rng.random() < 0.08  # forgot the card: the cashier keys the phone number instead
        identity = {
            "member_id": "" if walk_in else customer.member_id,
            "phone": self.phone_at(customer, sold_at) if walk_in else "",
        }
        for line in lines:
            self.pos_rows[(store.code, sold_at.date())].append(
                {"receipt_no": receipt_no, "sold_at": _ts(sold_at), "store_code": store.code, **identity, **line}
            )
        if refund:
            # A refund is a negative line on the day it happens, same receipt number.
            refund_at = min(sold_at + timedelta(days=rng.randrange(1, 10)), self.last_moment)
            first = lines[0]
            self.pos_rows[(store.code, refund_at.date())].append(
                {
                    "receipt_no": receipt_no,
                    "sold_at": _ts(refund_at),
                    "store_code": store.code,
                    **identity,
                    **first,
                    "line_no": str(900 + int(first["line_no"])),
                    "quantity": "-" + first["quantity"],
                    "amount": "-" + first["amount"],
                }
            )
        return f"store:{receipt_no}"

    def payment(self, customer: _Customer, order_ref: str, sold_at: datetime, total: Decimal) -> None:
        rng = self.rng
        if customer.customer_type == "enterprise":
            # Enterprise customers buy on 30-day terms; most pay on time, some late, a few not yet.
            due = sold_at.date() + timedelta(days=30)
            roll = rng.random()
            paid_at: datetime | None = datetime.combine(due - timedelta(days=rng.randrange(0, 25)), time(15))
            if roll < 0.12:
                paid_at = datetime.combine(due + timedelta(days=rng.randrange(3, 60)), time(15))
            if roll > 0.98 or (paid_at and paid_at > self.last_moment):
                paid_at = None
            method = "bank_transfer"
        else:
            due, paid_at, method = sold_at.date(), sold_at, rng.choice(("wechat_pay", "alipay", "card", "cash"))
        self.payments.append(
            {
                "payment_id": f"P{self.next_id():09d}",
                "order_ref": order_ref,
                "member_id": customer.member_id,
                "amount": str(total),
                "due_date": due.isoformat(),
                "paid_at": _ts(paid_at) if paid_at else "",
                "method": method,
            }
        )

    def custom_order(self, customer: _Customer, order_ref: str, sold_at: datetime, line: str, level: str, big: bool) -> None:
        rng = self.rng
        self.custom_orders.append(
            {
                "custom_order_id": f"C{self.next_id():09d}",
                "order_ref": order_ref,
                "member_id": customer.member_id,
                "business_line": line,
                "customization_level": level,
                "rare_flowers": "是" if rng.random() < (0.5 if level == "bespoke" else 0.15) else "否",
                "imported_flowers": "是" if rng.random() < (0.6 if big else 0.2) else "否",
                "event_date": (sold_at.date() + timedelta(days=rng.randrange(2, 30))).isoformat(),
            }
        )

    def ticket(self, customer: _Customer, order_ref: str, sold_at: datetime) -> None:
        rng = self.rng
        opened = min(sold_at + timedelta(days=rng.randrange(0, 5), hours=rng.randrange(1, 8)), self.last_moment)
        closed = opened + timedelta(hours=rng.randrange(1, 96))
        note = rng.choice(TICKET_NOTES).format(phone=self.phone_at(customer, sold_at), name=customer.name)
        self.tickets.append(
            {
                "ticket_id": f"T{self.next_id():09d}",
                "member_id": customer.member_id,
                "order_ref": order_ref,
                "opened_at": _ts(opened),
                "closed_at": _ts(closed) if closed <= self.last_moment else "",
                "category": rng.choice(TICKET_CATEGORIES),
                "satisfaction": str(rng.choices((5, 4, 3, 2, 1), weights=(50, 30, 12, 5, 3))[0]),
                "note": note,
            }
        )

    def anonymous_walk_ins(self) -> None:
        """Cash sales to nobody we know: they count in the store totals but grade no one."""
        rng = self.rng
        day = self.first_day
        while day <= self.last_moment.date():
            if rng.random() < 0.3:
                store = rng.choice(STORES)
                amount = _money(rng.lognormvariate(math.log(300), 0.4))
                self.pos_rows[(store.code, day)].append(
                    {
                        "receipt_no": f"{store.code}-{self.next_id():08d}",
                        "line_no": "1",
                        "sold_at": _ts(datetime.combine(day, time(rng.randrange(9, 21), rng.randrange(60)))),
                        "store_code": store.code,
                        "member_id": "",
                        "phone": "",
                        "sku": f"EVE-S{rng.randrange(100, 999)}",
                        "business_line": "everyday_premium",
                        "customization_level": "standard",
                        "quantity": "1",
                        "unit_price": str(amount),
                        "amount": str(amount),
                    }
                )
            day += timedelta(days=1)

    # -- planted bad rows -----------------------------------------------------------------------
    def plant_bad_rows(self) -> dict[str, int]:
        """One of each kind of bad row the loaders must quarantine, in fixed places. A bad row is
        a copy of a good one, so a tiny data set (a few customers, two months) without, say, a
        payment or a second till day plants only the kinds it has a good row for."""
        planted: Counter[str] = Counter()
        if self.pos_rows:
            first_key = sorted(self.pos_rows)[0]
            day_rows = self.pos_rows[first_key]
            good = dict(day_rows[0])
            bad_pos = [
                {**good, "line_no": "801", "receipt_no": ""},  # missing_required_field
                {**good, "line_no": "802", "amount": "12,3a"},  # unparsable_amount
                {**good, "line_no": "803", "sold_at": "2030-01-01 10:00:00"},  # future_date
                {**good, "line_no": "804", "quantity": "-1"},  # negative_quantity
                {**good, "line_no": "805", "sold_at": "31/02/2026 10:00"},  # unparsable_date
                {**good, "line_no": "806", "customization_level": "gold_leaf"},  # invalid_value
                dict(good),  # duplicate_line (same receipt line twice in one file)
            ]
            day_rows.extend(bad_pos)
            planted["pos"] += len(bad_pos)
            # duplicate_order_id: a till re-exports yesterday's line in today's file
            second_key = next((k for k in sorted(self.pos_rows) if k[0] == first_key[0] and k != first_key), None)
            if second_key is not None:
                self.pos_rows[second_key].append(dict(good))
                planted["pos"] += 1
            # unknown_store: a file from a till that is not in the store register
            self.pos_rows[("XX99", first_key[1])].append({**good, "store_code": "XX99", "receipt_no": "XX99-00000001"})
            planted["pos"] += 1
        if len(self.crm) >= 2:
            self.crm.append({**self.crm[0], "updated_at": "2026-02-30 10:00:00"})  # unparsable_date
            self.crm.append({**self.crm[1], "customer_type": "vip", "updated_at": _ts(self.last_moment)})  # invalid_value
            planted["crm"] += 2
        if self.payments:
            self.payments.append({**self.payments[0], "payment_id": "P-BAD-1", "amount": "N/A"})  # unparsable_amount
            planted["payments"] += 1
        if self.custom_orders:
            self.custom_orders.append({**self.custom_orders[0], "custom_order_id": "C-BAD-1", "customization_level": "ultra"})
            planted["custom_orders"] += 1
        if self.tickets:
            self.tickets.append({**self.tickets[0], "ticket_id": "T-BAD-1", "satisfaction": "9"})  # invalid_value
            planted["feedback"] += 1
        return dict(planted)

    # -- writing --------------------------------------------------------------------------------
    def write(self, out_dir: Path, counts: GeneratedCounts) -> None:
        stores_by_code = {store.code: store for store in STORES}
        for (store_code, day), rows in sorted(self.pos_rows.items()):
            store = stores_by_code.get(store_code, STORES[0])
            rows.sort(key=lambda r: (r["sold_at"], r["receipt_no"], r["line_no"]))
            _write_pos_file(out_dir / "pos" / store_code / f"{store_code}_{day:%Y%m%d}.csv", store, rows)
            counts.pos_lines += len(rows)
        counts.pos_files = len(self.pos_rows)
        shop = out_dir / "shop"
        _write_csv(
            shop / "orders.csv",
            ["order_id", "member_id", "phone", "channel", "status", "ordered_at", "updated_at"],
            self.online_orders,
        )
        _write_csv(
            shop / "order_lines.csv",
            ["order_id", "line_no", "sku", "business_line", "customization_level", "quantity", "unit_price", "amount"],
            self.online_lines,
        )
        counts.online_orders, counts.online_lines = len(self.online_orders), len(self.online_lines)
        monthly = (
            (CRM, self.crm, "members", "updated_at"),
            (PAYMENTS, self.payments, "payments", "due_date"),
            (CUSTOM_ORDERS, self.custom_orders, "custom_orders", "event_date"),
            (FEEDBACK, self.tickets, "tickets", "opened_at"),
        )
        for source, rows, stem, month_column in monthly:
            by_month: dict[str, list[dict[str, str]]] = defaultdict(list)
            for row in rows:
                by_month[row[month_column][:7].replace("-", "")].append(row)
            for month, month_rows in sorted(by_month.items()):
                _write_export(out_dir / source.subdir / f"{stem}_{month}.csv", source, month_rows)
        counts.crm_rows, counts.payments = len(self.crm), len(self.payments)
        counts.custom_orders, counts.tickets = len(self.custom_orders), len(self.tickets)


def generate(
    out_dir: Path, customers: int, months: int, seed: int, end: date | None = None, plant_bad_rows: bool = True
) -> GeneratedCounts:
    """Write ``months`` full months of data for ``customers`` members, ending the day before ``end``."""
    if customers < 2 or months < 2:
        raise SampleDataError("customers and months must be at least 2")
    generator = _Generator(customers, months, seed, end or date(2026, 11, 1))
    for index in range(1, customers + 1):
        customer, start_offset = generator.make_customer(index)
        generator.make_orders(customer, start_offset)
    generator.anonymous_walk_ins()
    counts = GeneratedCounts(customers)
    if plant_bad_rows:
        counts.planted_bad_rows = generator.plant_bad_rows()
    generator.write(out_dir, counts)
    return counts


def _write_pos_file(path: Path, store: Store, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(store.column_order)
    for row in rows:
        writer.writerow([row[POS_COLUMNS[header]] for header in store.column_order])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(store.encoding))


def _write_export(path: Path, source: CsvSource, rows: list[dict[str, str]]) -> None:
    """A CRM/ERP style export: UTF-8 with BOM (what Excel-friendly systems write), Chinese headers."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.headers[0] for column in source.columns])
    for row in rows:
        writer.writerow([row[column.name] for column in source.columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
