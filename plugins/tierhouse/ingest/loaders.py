"""Loaders from the sources into the ``raw`` schema.

Every load is one transaction per file (exports) or batch (shop database), with COPY rather
than row inserts, and ends with a reconciliation: rows read = rows loaded + rows quarantined,
and the same for amounts. A file already loaded with the same checksum is skipped; a changed
file replaces its own rows. A rejected row goes to ``raw.quarantine`` with a reason code and
its raw text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tierhouse import settings
from tierhouse.ingest import sources as s
from tierhouse.ingest.parsing import FileLoad, ReconciliationError, parse_export
from tierhouse.privacy import access
from tierhouse.privacy.crypto import encrypt, normalise_phone, pseudonymise
from tierhouse.warehouse.connection import WarehouseUrl, connect, session
from tierhouse.warehouse.migrate import require_migrated

SHOP_SOURCE = "shop"


def known_store_codes(path: Path | None = None) -> frozenset[str]:
    """Store master data, shared with dbt as the ``ref_stores`` seed."""
    path = path or settings.DBT_PROJECT_DIR / "seeds" / "ref_stores.csv"
    with path.open(encoding="utf-8") as handle:
        return frozenset(row["store_code"] for row in csv.DictReader(handle))


def _copy_rows(cur, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buffer.seek(0)
    cur.copy_expert(f"copy {table} ({', '.join(columns)}) from stdin with (format csv, null '\\N')", buffer)


def _record_load(cur, source: str, load: FileLoad, personal: bool) -> None:
    """The file's manifest row and its quarantined lines; a line of a source with personal data
    (names, phone numbers, notes) keeps its raw text encrypted, readable by the steward only."""
    cur.execute("delete from raw.quarantine where source = %s and file_name = %s", (source, load.file_name))
    _copy_rows(
        cur,
        "raw.quarantine",
        ("source", "file_name", "line_number", "reason_code", "detail", "raw_text"),
        [
            (source, load.file_name, r.line_number, r.reason_code, r.detail,
             encrypt(r.raw_text, "raw.quarantine.raw_text") if personal else r.raw_text)
            for r in load.rejections
        ],
    )  # fmt: skip
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


def load_exports(
    url: WarehouseUrl, source: s.CsvSource, root: Path, now: datetime | None = None, known_stores: frozenset[str] | None = None
) -> LoadSummary:
    """Load every export of ``source`` under ``root``; files already loaded unchanged are skipped."""
    files = sorted(root.rglob("*.csv"))
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select file_name, sha256 from raw.load_manifest where source = %s", (source.name,))
        known = dict(cur.fetchall())
    if source.store_column and known_stores is None:
        known_stores = known_store_codes()
    loaded = rows = quarantined = 0
    with session(url) as conn:
        for path in files:
            name = path.relative_to(root).as_posix()
            data = path.read_bytes()
            if known.get(name) == hashlib.sha256(data).hexdigest():
                continue
            load = parse_export(source, name, data, now=now, known_stores=known_stores)
            with conn, conn.cursor() as cur:  # one transaction per file
                access.act_as(cur, "loader")
                cur.execute(f"delete from raw.{source.table} where _source_file = %s", (name,))
                if source.restricted_columns:
                    cur.execute(f"delete from pii.{source.table} where _source_file = %s", (name,))
                _quarantine_cross_file_duplicates(cur, source, load)
                load.reconcile()
                raw_rows, restricted_rows = _split_personal_data(source, load.good_rows)
                _copy_rows(cur, f"raw.{source.table}", source.raw_columns, raw_rows)
                if source.restricted_columns:
                    _copy_rows(cur, f"pii.{source.table}", source.restricted_columns, restricted_rows)
                _record_load(cur, source.name, load, any(c.pseudonymise or c.restricted for c in source.columns))
                _check_manifest_against_table(cur, source, name)
            loaded += 1
            rows += len(load.good_rows)
            quarantined += len(load.rejections)
    return LoadSummary(len(files), loaded, rows, quarantined)


def load_pos_exports(url: WarehouseUrl, pos_dir: Path, now: datetime | None = None) -> LoadSummary:
    return load_exports(url, s.POS, pos_dir, now=now)


def _split_personal_data(source: s.CsvSource, rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Rows for raw (identifiers replaced by keyed hashes, personal data left out) and rows for
    the restricted pii table (the row's key and its personal data)."""
    names = [c.name for c in source.columns]
    restricted = source.restricted_columns[:-2]
    raw_rows, restricted_rows = [], []
    for row in rows:
        values = dict(zip(names, row, strict=False))
        raw_values = [
            pseudonymise(c.name, values[c.name]) if c.pseudonymise and values[c.name] is not None else values[c.name]
            for c in source.columns
            if c.raw_name
        ]
        raw_rows.append((*raw_values, *row[-2:]))
        if restricted:
            # the row's key stays readable (to join on); its personal data is encrypted at rest
            restricted_rows.append(
                (
                    *(values[name] for name in source.unique_key),
                    *(encrypt(values[name], f"pii.{source.table}.{name}") for name in restricted[len(source.unique_key) :]),
                    *row[-2:],
                )
            )
    return raw_rows, restricted_rows


def _quarantine_cross_file_duplicates(cur, source: s.CsvSource, load: FileLoad) -> None:
    """A key another file already delivered is a duplicate, not a second sale."""
    if not source.cross_file_key or not load.good_rows:
        return
    positions = [[c.name for c in source.columns].index(k) for k in source.cross_file_key]
    keys = [[str(row[i]) for i in positions] for row in load.good_rows]
    key_sql = ", ".join(f"{k}::text" for k in source.cross_file_key)
    cur.execute(
        f"select {key_sql}, min(_source_file) from raw.{source.table}"
        f" where ({key_sql}) in (select * from unnest({', '.join(['%s'] * len(positions))}))"
        f" group by {key_sql}",
        [[key[i] for key in keys] for i in range(len(positions))],
    )
    taken = {tuple(row[:-1]): row[-1] for row in cur.fetchall()}
    for index in reversed(range(len(keys))):
        other = taken.get(tuple(keys[index]))
        if other:
            load.reject_loaded_row(index, s.DUPLICATE_ORDER_ID, f"{'/'.join(keys[index])} already loaded from {other}")


def _check_manifest_against_table(cur, source: s.CsvSource, file_name: str) -> None:
    """Reconcile what the manifest claims with what the table now holds, inside the load's transaction."""
    amount_sql = f"coalesce(sum(l.{source.amount_column}), 0)" if source.amount_column else "0"
    cur.execute(
        f"""
        select m.rows_loaded, m.amount_loaded, count(l.*), {amount_sql}
        from raw.load_manifest as m
        left join raw.{source.table} as l on l._source_file = m.file_name
        where m.source = %s and m.file_name = %s
        group by m.rows_loaded, m.amount_loaded
        """,
        (source.name, file_name),
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
        require_migrated(cur)
        cur.execute("select watermark from raw.extract_watermarks where source = %s", (SHOP_SOURCE,))
        found = cur.fetchone()
    watermark = found[0] if found else datetime(1900, 1, 1)

    with connect(shop_url) as shop, shop.cursor() as cur:
        # Repeatable read: orders and lines come from one consistent snapshot of the shop.
        cur.execute("set transaction isolation level repeatable read")
        cur.execute(
            "select order_id, member_id, phone, channel, status, ordered_at, updated_at from shop.orders"
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
        access.act_as(cur, "loader")
        cur.execute("create temp table incoming_orders (like raw.shop_orders including defaults) on commit drop")
        _copy_rows(
            cur,
            "incoming_orders",
            ("order_id", "member_id", "phone_key", "channel", "status", "ordered_at", "updated_at", "_batch_id"),
            [(o[0], o[1], _phone_key(o[2]), *o[3:], batch_id) for o in orders],
        )
        cur.execute(
            """
            insert into raw.shop_orders as t select * from incoming_orders
            on conflict (order_id) do update set
                member_id = excluded.member_id, phone_key = excluded.phone_key, channel = excluded.channel, status = excluded.status,
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
            (SHOP_SOURCE, max(o[6] for o in orders)),
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


@dataclass(frozen=True)
class SourceReport:
    source: str
    files: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    amount_read: Decimal
    amount_loaded: Decimal
    amount_quarantined: Decimal
    reasons: dict[str, int]

    @property
    def reconciled(self) -> bool:
        return (
            self.rows_read == self.rows_loaded + self.rows_quarantined
            and self.amount_read == self.amount_loaded + self.amount_quarantined
        )


def load_report(url: WarehouseUrl) -> list[SourceReport]:
    """Per source: what the manifest says was read, loaded and quarantined, and why."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            select m.source, count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined),
                   sum(amount_read), sum(amount_loaded), sum(amount_quarantined),
                   (select coalesce(jsonb_object_agg(reason_code, n), '{}') from (
                        select reason_code, count(*) as n from raw.quarantine as q
                        where q.source = m.source group by reason_code) as r)
            from raw.load_manifest as m
            group by m.source
            order by m.source
            """
        )
        return [SourceReport(*row) for row in cur.fetchall()]


def format_load_report(reports: list[SourceReport]) -> str:
    header = f"{'source':<14} {'files':>6} {'read':>7} {'loaded':>7} {'quarant.':>8} {'reconciled':>10}  quarantine reasons"
    lines = ["Loads — raw.load_manifest and raw.quarantine", header, "-" * len(header)]
    for r in reports:
        reasons = ", ".join(f"{code} {n}" for code, n in sorted(r.reasons.items())) or "-"
        lines.append(
            f"{r.source:<14} {r.files:>6} {r.rows_read:>7} {r.rows_loaded:>7} {r.rows_quarantined:>8}"
            f" {'yes' if r.reconciled else 'NO':>10}  {reasons}"
        )
    return "\n".join(lines)


def import_order_file(url: WarehouseUrl, path: Path, landing: Path | None = None) -> LoadSummary:
    """Copy an order-history file in the generic layout to the landing area and load it."""
    target_dir = (landing or settings.DATA_DIR) / s.ORDER_IMPORT.subdir
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if path.resolve() != target.resolve():
        target.write_bytes(path.read_bytes())
    return load_exports(url, s.ORDER_IMPORT, target_dir)


def _phone_key(phone: str | None) -> str | None:
    """Guest checkouts carry a phone; a malformed one identifies nobody, so it keys nothing."""
    if not phone:
        return None
    try:
        return pseudonymise("phone", normalise_phone(phone))
    except ValueError:
        return None


def seed_shop_database(shop_url: WarehouseUrl, shop_dir: Path) -> int:
    """Stand in for the online shop: (re)write its tables (warehouse migration ``0002_shop_stand_in``)
    from the generator's files."""
    with connect(shop_url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("truncate shop.order_lines, shop.orders")
        for table in ("orders", "order_lines"):
            with (shop_dir / f"{table}.csv").open("r", encoding="utf-8") as handle:
                columns = handle.readline().strip()
                cur.copy_expert(f"copy shop.{table} ({columns}) from stdin with (format csv)", handle)
        cur.execute("select count(*) from shop.orders")
        return int(cur.fetchone()[0])
