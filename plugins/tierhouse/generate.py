"""Deterministic synthetic data for a high-end custom-flower retailer.

Customers are drawn from latent behaviour segments (so every P1 tier is populated) and buy
through four stores and three online channels. Store sales are written as the tills export
them: one CSV per store per business day with Chinese headers; the stores differ in encoding
and column order, as real POS systems do. Online orders are written as the shop database's
two tables, which :mod:`tierhouse.shop` loads into the ``shop`` schema.

Same ``seed`` and arguments, same bytes: the generator uses its own ``random.Random`` and
never the clock.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from tierhouse.sources import POS

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


SEGMENTS = (
    Segment("top", 0.04, 1.7, 6500, 0.75, 0.15, 0.3),
    Segment("high", 0.10, 0.9, 3800, 0.45, 0.05, 0.4),
    Segment("potential", 0.18, 0.35, 2200, 0.55, 0.08, 0.5),
    Segment("regular", 0.68, 0.18, 520, 0.08, 0.005, 0.5),
)


@dataclass(frozen=True)
class GeneratedCounts:
    customers: int
    pos_files: int
    pos_lines: int
    online_orders: int
    online_lines: int


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


def generate(out_dir: Path, customers: int, months: int, seed: int, end: date | None = None) -> GeneratedCounts:
    """Write ``months`` full months of sales ending with the month before ``end``."""
    if customers < 1 or months < 1:
        raise ValueError("customers and months must be positive")
    end = end or date(2026, 11, 1)
    last_day = end - timedelta(days=1)
    rng = random.Random(seed)

    pos_rows: dict[tuple[str, date], list[dict[str, str]]] = {}
    online_orders: list[dict[str, str]] = []
    online_lines: list[dict[str, str]] = []
    receipt_seq = 0
    for index in range(1, customers + 1):
        member_id = f"M{index:06d}"
        segment = rng.choices(SEGMENTS, weights=[s.share for s in SEGMENTS])[0]
        # Better customers tend to have been around longer; some start mid-window.
        start_offset = 0 if segment.name == "top" else rng.randrange(0, max(1, months * 2 // 3))
        home_store = rng.choice(STORES)
        preferred_line = rng.choice(list(BUSINESS_LINES))
        for month_index in range(start_offset, months):
            month_first = _month_start(end, months - month_index)
            days_in_month = (_month_start(end, months - month_index - 1) - month_first).days
            for _ in range(_poisson(rng, segment.orders_per_month)):
                receipt_seq += 1
                sold_at = datetime.combine(
                    month_first + timedelta(days=rng.randrange(days_in_month)),
                    time(rng.randrange(9, 21), rng.randrange(60), rng.randrange(60)),
                )
                big = rng.random() < segment.big_order_probability
                order_total = rng.lognormvariate(math.log(segment.median_order), 0.45) * (4.0 if big else 1.0)
                line_count = 1 + _poisson(rng, 0.8)
                line = preferred_line if rng.random() < 0.7 else rng.choice(list(BUSINESS_LINES))
                level = "standard"
                if rng.random() < segment.custom_probability:
                    level = "bespoke" if big or rng.random() < 0.4 else "semi_custom"
                lines = []
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
                    order_id = f"W{receipt_seq:08d}"
                    refunded_at = sold_at + timedelta(days=rng.randrange(1, 20)) if refund else None
                    online_orders.append(
                        {
                            "order_id": order_id,
                            "member_id": member_id,
                            "channel": rng.choice(ONLINE_CHANNELS),
                            "status": "refunded" if refunded_at else "completed",
                            "ordered_at": sold_at.isoformat(sep=" "),
                            "updated_at": (refunded_at or sold_at + timedelta(minutes=5)).isoformat(sep=" "),
                        }
                    )
                    for line_row in lines:
                        online_lines.append({"order_id": order_id, **line_row})
                else:
                    store = home_store if rng.random() < 0.85 else rng.choice(STORES)
                    receipt_no = f"{store.code}-{receipt_seq:08d}"
                    day_rows = pos_rows.setdefault((store.code, sold_at.date()), [])
                    for line_row in lines:
                        day_rows.append(
                            {
                                "receipt_no": receipt_no,
                                "sold_at": sold_at.isoformat(sep=" "),
                                "store_code": store.code,
                                "member_id": member_id,
                                **line_row,
                            }
                        )
                    if refund:
                        # A refund is a negative line on the day it happens, same receipt number.
                        refund_day = min(sold_at + timedelta(days=rng.randrange(1, 10)), datetime.combine(last_day, time(20)))
                        first = lines[0]
                        pos_rows.setdefault((store.code, refund_day.date()), []).append(
                            {
                                "receipt_no": receipt_no,
                                "sold_at": refund_day.isoformat(sep=" "),
                                "store_code": store.code,
                                "member_id": member_id,
                                **first,
                                "line_no": str(900 + int(first["line_no"])),
                                "quantity": "-" + first["quantity"],
                                "amount": "-" + first["amount"],
                            }
                        )

    stores_by_code = {s.code: s for s in STORES}
    pos_lines = 0
    for (store_code, day), rows in sorted(pos_rows.items()):
        store = stores_by_code[store_code]
        rows.sort(key=lambda r: (r["sold_at"], r["receipt_no"], int(r["line_no"])))
        path = out_dir / "pos" / store.code / f"{store.code}_{day:%Y%m%d}.csv"
        _write_pos_file(path, store, rows)
        pos_lines += len(rows)

    shop_dir = out_dir / "shop"
    _write_csv(shop_dir / "orders.csv", ["order_id", "member_id", "channel", "status", "ordered_at", "updated_at"], online_orders)
    _write_csv(
        shop_dir / "order_lines.csv",
        ["order_id", "line_no", "sku", "business_line", "customization_level", "quantity", "unit_price", "amount"],
        online_lines,
    )
    return GeneratedCounts(customers, len(pos_rows), pos_lines, len(online_orders), len(online_lines))


def _write_pos_file(path: Path, store: Store, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(store.column_order)
    for row in rows:
        writer.writerow([row[POS_COLUMNS[header]] for header in store.column_order])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(store.encoding))


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
