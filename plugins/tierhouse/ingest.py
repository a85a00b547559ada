"""Loaders from the sources into the ``raw`` schema.

Every load is one transaction per file (POS) or batch (shop), with COPY rather than row inserts,
and ends with a reconciliation: rows read = rows loaded + rows quarantined, and the same for
amounts. A file already loaded with the same checksum is skipped; a changed file replaces its
own rows. A rejected row goes to ``raw.quarantine`` with a reason code and its raw text.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tierhouse import raw_schema
from tierhouse.generate import POS_COLUMNS
from tierhouse.warehouse import WarehouseUrl, connect, session

POS_SOURCE = "pos"
_MAX_AMOUNT = Decimal("1e10")  # numeric(12, 2)
_MAX_INT = 2**31
SHOP_SOURCE = "shop"
REQUIRED_POS_FIELDS = ("receipt_no", "line_no", "sold_at", "store_code", "sku", "quantity", "amount")
POS_RAW_COLUMNS = (
    "receipt_no", "line_no", "sold_at", "store_code", "member_id", "sku", "business_line",
    "customization_level", "quantity", "unit_price", "amount", "_source_file", "_source_line",
)  # fmt: skip


class ReconciliationError(RuntimeError):
    """Counts or sums of a load do not add up: something was lost or invented."""


@dataclass
class Rejection:
    line_number: int | None
    reason_code: str
    detail: str
    raw_text: str
    amount: Decimal = Decimal("0")


@dataclass
class FileLoad:
    file_name: str
    sha256: str
    rows_read: int = 0
    amount_read: Decimal = Decimal("0")
    good_rows: list[tuple] = field(default_factory=list)
    amount_loaded: Decimal = Decimal("0")
    rejections: list[Rejection] = field(default_factory=list)
    skipped: bool = False

    @property
    def amount_quarantined(self) -> Decimal:
        return sum((r.amount for r in self.rejections), Decimal("0"))

    def reconcile(self) -> None:
        loaded, rejected = len(self.good_rows), len(self.rejections)
        if loaded + rejected != self.rows_read:
            raise ReconciliationError(f"{self.file_name}: read {self.rows_read} rows, loaded {loaded} + quarantined {rejected}")
        if self.amount_loaded + self.amount_quarantined != self.amount_read:
            raise ReconciliationError(
                f"{self.file_name}: amount read {self.amount_read} != loaded {self.amount_loaded}"
                f" + quarantined {self.amount_quarantined}"
            )


def decode_export(data: bytes) -> tuple[str, str]:
    """Tills write UTF-8, UTF-8 with BOM or GBK; return the text and the encoding found."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


def _parse_amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def parse_pos_export(file_name: str, data: bytes, now: datetime | None = None) -> FileLoad:
    """Split one POS export into rows to load and rejections; never raises on bad content."""
    load = FileLoad(file_name=file_name, sha256=hashlib.sha256(data).hexdigest())
    now = now or datetime.now()
    try:
        text, _encoding = decode_export(data)
    except UnicodeDecodeError as exc:
        lines = data.splitlines()
        load.rows_read = max(len(lines) - 1, 0)
        load.rejections = [
            Rejection(n, "bad_encoding", str(exc), _storable(line.decode("latin-1"))) for n, line in enumerate(lines[1:], start=2)
        ]
        return load
    lines = text.splitlines()
    if not lines:
        return load
    header = _split_csv_line(lines[0]) or []
    columns = [POS_COLUMNS.get(h.strip()) for h in header]
    missing = [f for f in REQUIRED_POS_FIELDS if f not in columns]
    seen_lines: set[tuple[str, str]] = set()
    # One physical line is one row: a till never writes multi-line fields, and reading line by
    # line means a broken line can only take itself to quarantine, never its neighbours.
    for line_number, raw_text in enumerate(lines[1:], start=2):
        if not raw_text.strip():
            continue  # blank lines are formatting, not data
        load.rows_read += 1
        values = _split_csv_line(raw_text)
        row = {name: value.strip() for name, value in zip(columns, values or [], strict=False) if name}
        amount = _parse_amount(row.get("amount", ""))
        load.amount_read += amount or 0
        if "\x00" in raw_text:
            verdict: tuple | Rejection = Rejection(line_number, "bad_encoding", "NUL byte in line", raw_text)
        elif values is None:
            verdict = Rejection(line_number, "unparsable_row", "not a CSV line", raw_text)
        elif missing:
            verdict = Rejection(line_number, "missing_column", f"header lacks {', '.join(missing)}", raw_text)
        elif len(values) != len(header):
            verdict = Rejection(line_number, "wrong_field_count", f"{len(values)} fields, header has {len(header)}", raw_text)
        else:
            verdict = _check_pos_row(row, amount, now, seen_lines)
        if isinstance(verdict, Rejection):
            stored = Rejection(line_number, verdict.reason_code, verdict.detail, _storable(raw_text), amount or Decimal("0"))
            load.rejections.append(stored)
            continue
        load.good_rows.append((*verdict, file_name, line_number))
        load.amount_loaded += amount or 0
    return load


def _storable(raw_text: str) -> str:
    """PostgreSQL text cannot hold NUL; keep the line readable and visibly marked instead."""
    return raw_text.replace("\x00", "\\x00")


def _split_csv_line(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def _check_pos_row(
    row: dict[str, str], amount: Decimal | None, now: datetime, seen_lines: set[tuple[str, str]]
) -> tuple | Rejection:
    """The typed row to load, or why it must be quarantined."""

    def reject(code: str, detail: str) -> Rejection:
        return Rejection(None, code, detail, "")

    empty = [f for f in REQUIRED_POS_FIELDS if not row.get(f)]
    if empty:
        return reject("missing_required_field", ", ".join(empty))
    if amount is None or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        return reject("unparsable_amount", row["amount"])
    try:
        sold_at = datetime.fromisoformat(row["sold_at"].replace("/", "-"))
    except ValueError:
        return reject("unparsable_date", row["sold_at"])
    if sold_at.tzinfo is not None or sold_at > now + timedelta(days=1):
        return reject("future_date" if sold_at.tzinfo is None else "unparsable_date", row["sold_at"])
    try:
        quantity, line_no = int(row["quantity"]), int(row["line_no"])
    except ValueError:
        return reject("unparsable_quantity", f"quantity={row['quantity']!r} line_no={row['line_no']!r}")
    if quantity == 0 or (quantity < 0) != (amount < 0):
        # A refund line is negative in both quantity and amount; anything else is a keying error.
        return reject("negative_quantity" if quantity < 0 else "sign_mismatch", f"quantity={quantity} amount={amount}")
    unit_price = _parse_amount(row.get("unit_price", ""))
    if abs(amount) >= _MAX_AMOUNT or (unit_price is not None and abs(unit_price) >= _MAX_AMOUNT):
        return reject("unparsable_amount", f"amount {amount} or unit price {unit_price} out of range")
    if not (abs(quantity) < _MAX_INT and 0 <= line_no < _MAX_INT):
        return reject("unparsable_quantity", f"quantity={quantity} line_no={line_no} out of range")
    key = (row["receipt_no"], row["line_no"])
    if key in seen_lines:
        return reject("duplicate_line", f"receipt {key[0]} line {key[1]} repeated")
    seen_lines.add(key)
    return (
        row["receipt_no"],
        line_no,
        sold_at.isoformat(sep=" "),
        row["store_code"],
        row.get("member_id") or None,
        row["sku"],
        row.get("business_line") or None,
        row.get("customization_level") or None,
        quantity,
        unit_price,
        amount,
    )


def _copy_rows(cur, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buffer.seek(0)
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin with (format csv, null '\\N')", buffer)


def _record_load(cur, source: str, load: FileLoad) -> None:
    cur.execute("delete from raw.quarantine where source = %s and file_name = %s", (source, load.file_name))
    _copy_rows(
        cur,
        "raw.quarantine",
        ("source", "file_name", "line_number", "reason_code", "detail", "raw_text"),
        [(source, load.file_name, r.line_number, r.reason_code, r.detail, r.raw_text) for r in load.rejections],
    )
    cur.execute(
        """
        insert into raw.load_manifest as m (source, file_name, sha256, rows_read, rows_loaded, rows_quarantined,
                                            amount_read, amount_loaded, amount_quarantined)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (source, file_name) do update set
            sha256 = excluded.sha256, rows_read = excluded.rows_read, rows_loaded = excluded.rows_loaded,
            rows_quarantined = excluded.rows_quarantined, amount_read = excluded.amount_read,
            amount_loaded = excluded.amount_loaded, amount_quarantined = excluded.amount_quarantined,
            loaded_at = now()
        """,
        (
            source,
            load.file_name,
            load.sha256,
            load.rows_read,
            len(load.good_rows),
            len(load.rejections),
            load.amount_read,
            load.amount_loaded,
            load.amount_quarantined,
        ),  # fmt: skip
    )


@dataclass(frozen=True)
class LoadSummary:
    files_seen: int
    files_loaded: int
    rows_loaded: int
    rows_quarantined: int


def load_pos_exports(url: WarehouseUrl, pos_dir: Path) -> LoadSummary:
    """Load every POS export under ``pos_dir``; files already loaded unchanged are skipped."""
    files = sorted(pos_dir.rglob("*.csv"))
    with connect(url) as conn:
        raw_schema.apply(conn, raw_schema.RAW_DDL)
        with conn.cursor() as cur:
            cur.execute("select file_name, sha256 from raw.load_manifest where source = %s", (POS_SOURCE,))
            known = dict(cur.fetchall())
    loaded = rows = quarantined = 0
    with session(url) as conn:
        for path in files:
            name = path.relative_to(pos_dir).as_posix()
            data = path.read_bytes()
            if known.get(name) == hashlib.sha256(data).hexdigest():
                continue
            load = parse_pos_export(name, data)
            load.reconcile()
            with conn, conn.cursor() as cur:  # one transaction per file
                cur.execute("delete from raw.pos_sales_lines where _source_file = %s", (name,))
                _copy_rows(cur, "raw.pos_sales_lines", POS_RAW_COLUMNS, load.good_rows)
                _record_load(cur, POS_SOURCE, load)
                _check_manifest_against_table(cur, name)
            loaded += 1
            rows += len(load.good_rows)
            quarantined += len(load.rejections)
    return LoadSummary(len(files), loaded, rows, quarantined)


def _check_manifest_against_table(cur, file_name: str) -> None:
    """Reconcile what the manifest claims with what the table now holds, inside the load's transaction."""
    cur.execute(
        """
        select m.rows_loaded, m.amount_loaded, count(l.*), coalesce(sum(l.amount), 0)
        from raw.load_manifest as m
        left join raw.pos_sales_lines as l on l._source_file = m.file_name
        where m.source = %s and m.file_name = %s
        group by m.rows_loaded, m.amount_loaded
        """,
        (POS_SOURCE, file_name),
    )
    claimed_rows, claimed_amount, rows, amount = cur.fetchone()
    if (claimed_rows, claimed_amount) != (rows, amount):
        raise ReconciliationError(
            f"{file_name}: manifest says {claimed_rows} rows / {claimed_amount}, table has {rows} / {amount}"
        )


def extract_shop_orders(url: WarehouseUrl, shop_url: WarehouseUrl | None = None) -> LoadSummary:
    """Pull orders changed since the watermark from the shop database (late updates included)."""
    shop_url = shop_url or url
    batch_id = uuid.uuid4().hex
    with connect(url) as conn, conn.cursor() as cur:
        raw_schema.apply(conn, raw_schema.RAW_DDL)
        cur.execute("select watermark from raw.extract_watermarks where source = %s", (SHOP_SOURCE,))
        found = cur.fetchone()
    watermark = found[0] if found else datetime(1900, 1, 1)

    with connect(shop_url) as shop, shop.cursor() as cur:
        # Repeatable read: orders and lines come from one consistent snapshot of the shop.
        cur.execute("set transaction isolation level repeatable read")
        cur.execute(
            "select order_id, member_id, channel, status, ordered_at, updated_at from shop.orders"
            " where updated_at > %s order by updated_at",
            (watermark,),
        )
        orders = cur.fetchall()
        order_ids = [o[0] for o in orders]
        cur.execute(
            "select order_id, line_no, sku, business_line, customization_level, quantity, unit_price, amount"
            " from shop.order_lines where order_id = any(%s)",
            (order_ids,),
        )
        lines = cur.fetchall()
    if not orders:
        return LoadSummary(0, 0, 0, 0)
    source_amount = sum((line[7] for line in lines), Decimal("0"))

    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("create temp table incoming_orders (like raw.shop_orders including defaults) on commit drop")
        _copy_rows(cur, "incoming_orders", ("order_id", "member_id", "channel", "status", "ordered_at", "updated_at", "_batch_id"),
                   [(*o, batch_id) for o in orders])  # fmt: skip
        cur.execute(
            """
            insert into raw.shop_orders as t select * from incoming_orders
            on conflict (order_id) do update set
                member_id = excluded.member_id, channel = excluded.channel, status = excluded.status,
                ordered_at = excluded.ordered_at, updated_at = excluded.updated_at,
                _batch_id = excluded._batch_id, _loaded_at = excluded._loaded_at
            """
        )
        cur.execute("delete from raw.shop_order_lines where order_id = any(%s)", (order_ids,))
        _copy_rows(
            cur,
            "raw.shop_order_lines",
            (
                "order_id",
                "line_no",
                "sku",
                "business_line",
                "customization_level",
                "quantity",
                "unit_price",
                "amount",
                "_batch_id",
            ),
            [(*line, batch_id) for line in lines],
        )
        cur.execute("select count(*), coalesce(sum(amount), 0) from raw.shop_order_lines where _batch_id = %s", (batch_id,))
        loaded_lines, loaded_amount = cur.fetchone()
        if (loaded_lines, loaded_amount) != (len(lines), source_amount):
            raise ReconciliationError(
                f"shop batch {batch_id}: source {len(lines)} lines / {source_amount}, loaded {loaded_lines} / {loaded_amount}"
            )
        cur.execute(
            """
            insert into raw.extract_watermarks (source, watermark) values (%s, %s)
            on conflict (source) do update set watermark = excluded.watermark, updated_at = now()
            """,
            (SHOP_SOURCE, max(o[5] for o in orders)),
        )
        cur.execute(
            """
            insert into raw.load_manifest (source, file_name, sha256, rows_read, rows_loaded, rows_quarantined,
                                           amount_read, amount_loaded, amount_quarantined)
            values (%s, %s, %s, %s, %s, 0, %s, %s, 0)
            """,
            (SHOP_SOURCE, f"batch-{batch_id}", batch_id, len(lines), loaded_lines, source_amount, loaded_amount),
        )
    return LoadSummary(len(orders), 1, len(lines), 0)


def seed_shop_database(shop_url: WarehouseUrl, shop_dir: Path) -> int:
    """Stand in for the online shop: (re)write its tables from the generator's files."""
    with connect(shop_url) as conn, conn.cursor() as cur:
        raw_schema.apply(conn, raw_schema.SHOP_DDL)
        cur.execute("truncate shop.order_lines, shop.orders")
        for table in ("orders", "order_lines"):
            with (shop_dir / f"{table}.csv").open("r", encoding="utf-8") as handle:
                columns = handle.readline().strip()
                cur.copy_expert(f"copy shop.{table} ({columns}) from stdin with (format csv)", handle)
        cur.execute("select count(*) from shop.orders")
        return int(cur.fetchone()[0])
