"""Loaders from the sources into the ``raw`` schema.

Every load is one transaction per file (exports) or batch (shop database), with COPY rather
than row inserts, and ends with a reconciliation: rows read = rows loaded + rows quarantined,
and the same for amounts. A file already loaded with the same checksum is skipped; a changed
file replaces its own rows. A rejected row goes to ``raw.quarantine`` with a reason code and
its raw text. Files are streamed in batches, never held whole in memory; loads of one source
take turns (an advisory lock), so no two of them commit the same key. A record of a person
whose data was erased (``audit.erasure_ledger``) is never loaded: it is counted in quarantine as
``erased_subject``, without its text.

A file a person hands over (``tierhouse import``) is first landed: copied atomically into
the landing area, then loaded — that file only, and only if its bytes are still the ones landed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import logging
import os
import re
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from tierhouse import settings
from tierhouse.ingest import sources as s
from tierhouse.ingest.parsing import (
    FileLoad,
    IngestError,
    ReconciliationError,
    Tally,
    inspect_export,
    read_export,
    repeated_key_detail,
)
from tierhouse.privacy.crypto import encrypt, normalise_phone, pseudonymise, record_subject_keys, subject_keys
from tierhouse.warehouse.connection import WarehouseUrl, connect, session
from tierhouse.warehouse.migrate import require_migrated

log = logging.getLogger(__name__)

SHOP_SOURCE = "shop"
#: A landing copy is written under a hidden name ending in this, never ``*.csv``: a copy cut
#: short by a kill or a full disk is never picked up as an export.
PARTIAL_SUFFIX = ".partial"
_CHUNK = 1024 * 1024
_Read = TypeVar("_Read")


class LandingError(IngestError):
    """A file could not be copied into the landing area complete."""


class FileChangedError(IngestError):
    """A file's bytes are not the ones landed, or changed while they were loaded."""


class DuplicateKeyError(IngestError):
    """The database refused a key already in the source's table (its unique index)."""


class WarehouseLostError(IngestError):
    """The warehouse connection failed during a load (lost, restarted, disk full)."""


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


def _quarantine(cur, source: s.CsvSource, file_name: str, rejections: list) -> None:
    """Rejected records with their raw text; a source with personal data (names, phone numbers,
    notes) keeps that text encrypted, readable by the steward only."""
    personal = any(c.personal for c in source.columns)
    # an erased person's record is counted, never kept: no text, no detail (erased_subject)
    _copy_rows(
        cur,
        "raw.quarantine",
        ("source", "file_name", "line_number", "reason_code", "detail", "raw_text"),
        [
            (source.name, file_name, r.line_number, r.reason_code, r.detail,
             encrypt(r.raw_text, "raw.quarantine.raw_text") if personal else r.raw_text)
            if r.reason_code != s.ERASED_SUBJECT else (source.name, file_name, r.line_number, r.reason_code, None, None)
            for r in rejections
        ],
    )  # fmt: skip


def _record_load(cur, source: str, file_name: str, sha256: str, tally: Tally) -> None:
    """The file's manifest row: what was read, loaded and quarantined."""
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
            file_name,
            sha256,
            tally.rows_read,
            tally.rows_loaded,
            tally.rows_quarantined,
            tally.amount_read,
            tally.amount_loaded,
            tally.amount_quarantined,
        ),  # fmt: skip
    )


@dataclass(frozen=True)
class LoadSummary:
    files_seen: int
    files_loaded: int
    rows_loaded: int
    rows_quarantined: int


def load_exports(
    url: WarehouseUrl,
    source: s.CsvSource,
    root: Path,
    now: datetime | None = None,
    known_stores: frozenset[str] | None = None,
    landed: Mapping[Path, str] | None = None,
) -> LoadSummary:
    """Load the exports of ``source`` under ``root``: every ``*.csv`` there, or only the ``landed``
    files (each with the SHA-256 it had when landed). Files already loaded unchanged are skipped."""
    import psycopg2.errors

    files = sorted(landed) if landed is not None else sorted(root.rglob("*.csv"))
    if source.store_column and known_stores is None:
        known_stores = known_store_codes()
    loaded = rows = quarantined = 0
    name = None
    try:
        with connect(url) as conn, conn.cursor() as cur:
            require_migrated(cur)
            cur.execute("select file_name, sha256 from raw.load_manifest where source = %s", (source.name,))
            known = dict(cur.fetchall())
        with session(url) as conn:
            for path in files:
                name = path.relative_to(root).as_posix()
                encoding, sha256 = _read_file(path, name, inspect_export)
                if landed is not None and landed[path] != sha256:
                    raise FileChangedError(
                        f"{name} changed after it was landed (SHA-256 {landed[path][:12]}… then, {sha256[:12]}… now);"
                        " land it again"
                    )
                if known.get(name) == sha256:
                    continue
                with conn, conn.cursor() as cur:  # one transaction per file
                    tally = _load_file(cur, source, path, name, encoding, sha256, now, known_stores)
                loaded += 1
                rows += tally.rows_loaded
                quarantined += tally.rows_quarantined
    except psycopg2.errors.UniqueViolation as exc:
        # only a writer that bypasses the loaders' lock gets here: it committed a key this file
        # also holds while the file was loading
        detail = (exc.diag.message_detail or str(exc)).strip().splitlines()[0]
        raise DuplicateKeyError(
            f"{source.name}: {name} holds a key another writer committed while it loaded ({detail}); rolled back,"
            " load it again to quarantine the duplicates"
        ) from exc
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        # a lost connection fails again on the rollback: the first failure says why
        cause = (
            exc.__context__ if isinstance(exc, psycopg2.InterfaceError) and isinstance(exc.__context__, psycopg2.Error) else exc
        )
        during = f"while loading {name} (rolled back; files before it are loaded)" if name else "before loading"
        reason = (str(cause).strip() or type(cause).__name__).splitlines()[0]
        raise WarehouseLostError(f"{source.name}: the warehouse failed {during}: {reason}") from exc
    return LoadSummary(len(files), loaded, rows, quarantined)


def _load_file(
    cur,
    source: s.CsvSource,
    path: Path,
    name: str,
    encoding: str,
    sha256: str,
    now: datetime | None,
    known_stores: frozenset[str] | None,
) -> Tally:
    """Replace one file's rows, batch by batch, inside the caller's transaction."""
    # Loads of one source take turns until commit, so the duplicate check below sees every row
    # committed before it and two loads can never both commit a key.
    cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.load.' || %s))", (source.name,))
    erased = erased_subjects(cur)
    cur.execute(f"delete from raw.{source.table} where _source_file = %s", (name,))
    if source.restricted_columns:
        cur.execute(f"delete from pii.{source.table} where _source_file = %s", (name,))
    cur.execute("delete from raw.quarantine where source = %s and file_name = %s", (source.name, name))

    def load_batches(handle: io.BufferedReader) -> tuple[Tally, str]:
        total, hashed = Tally(), _HashingReader(handle)
        for batch in read_export(source, name, io.BufferedReader(hashed), encoding, now, known_stores):
            _drop_erased_subjects(source, batch, erased)
            _quarantine_duplicates(cur, source, batch)
            batch.reconcile()
            raw_rows, restricted_rows = _split_personal_data(source, batch.good_rows)
            _copy_rows(cur, f"raw.{source.table}", source.raw_columns, raw_rows)
            if source.restricted_columns:
                _copy_rows(cur, f"pii.{source.table}", source.restricted_columns, restricted_rows)
            _quarantine(cur, source, name, batch.rejections)
            total.add(batch.tally())
        return total, hashed.sha256.hexdigest()

    total, parsed_sha256 = _read_file(path, name, load_batches)
    if parsed_sha256 != sha256:
        raise FileChangedError(f"{name} changed while it was being loaded; load it again once it is complete")
    total.reconcile(name)
    _record_load(cur, source.name, name, sha256, total)
    _check_manifest_against_table(cur, source, name)
    return total


def erased_subjects(cur) -> frozenset[str]:
    """The erasure ledger's keys (keyed member ids and phone numbers; a few per erased person)."""
    cur.execute("select subject_key from audit.erasure_ledger")
    return frozenset(key for (key,) in cur.fetchall())


def _identifiers(source: s.CsvSource) -> list[int]:
    """Positions of the columns that identify a person: the member id and keyed phone numbers."""
    return [i for i, c in enumerate(source.columns) if c.name == "member_id" or c.pseudonymise]


def _erased_positions(source: s.CsvSource, batch: FileLoad, erased: frozenset[str]) -> tuple[list[int], list[int]]:
    """Indexes of the batch's good rows and rejections that belong to an erased person. A
    rejection is matched on every field of its text: it may not have parsed into columns."""
    if not erased:
        return [], []
    positions = _identifiers(source)
    rows = [
        index
        for index, row in enumerate(batch.good_rows)
        if any(row[i] is not None and subject_keys(str(row[i])) & erased for i in positions)
    ]
    rejections = [
        index
        for index, rejection in enumerate(batch.rejections)
        if rejection.raw_text and record_subject_keys(rejection.raw_text) & erased
    ]
    return rows, rejections


def _drop_erased_subjects(source: s.CsvSource, batch: FileLoad, erased: frozenset[str]) -> None:
    """Move an erased person's records to quarantine as ``erased_subject`` without their text,
    so the file still reconciles and nothing of theirs is kept."""
    rows, rejections = _erased_positions(source, batch, erased)
    for index in rejections:
        batch.rejections[index] = dataclasses.replace(batch.rejections[index], reason_code=s.ERASED_SUBJECT)
    for index in reversed(rows):
        batch.reject_loaded_row(index, s.ERASED_SUBJECT, "")


def _read_file(path: Path, name: str, read: Callable[[io.BufferedReader], _Read]) -> _Read:
    """``read(handle)`` of the opened file; a file that cannot be read is one clear error."""
    try:
        with path.open("rb") as handle:
            return read(handle)
    except OSError as exc:
        raise IngestError(f"cannot read {name}: {exc.strerror or exc}") from exc


class _HashingReader(io.RawIOBase):
    """A file read through this is hashed byte for byte: the load proves what it parsed."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._handle.readinto(buffer)
        self.sha256.update(memoryview(buffer)[:count])
        return count


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


def _quarantine_duplicates(cur, source: s.CsvSource, batch: FileLoad) -> None:
    """A key the table already holds is a duplicate: from another file it is a re-export, not a
    second sale (duplicate_order_id); from an earlier batch of this file, a repeated line."""
    if not batch.good_rows:
        return
    positions = [[c.name for c in source.columns].index(k) for k in source.unique_key]
    keys = [tuple(row[i] for i in positions) for row in batch.good_rows]
    key_list = ", ".join(source.unique_key)
    arrays = ", ".join(f"%s::{s.SQL_TYPES[source.column(k).kind]}[]" for k in source.unique_key)
    cur.execute(
        f"""
        select {key_list},
               min(_source_line) filter (where _source_file = %s),
               min(_source_file) filter (where _source_file <> %s)
        from raw.{source.table}
        where ({key_list}) in (select * from unnest({arrays}))
        group by {key_list}
        """,
        [batch.file_name, batch.file_name, *([key[i] for key in keys] for i in range(len(positions)))],
    )
    taken = {tuple(row[:-2]): row[-2:] for row in cur.fetchall()}
    for index in reversed(range(len(keys))):
        if keys[index] not in taken:
            continue
        first_line, other_file = taken[keys[index]]
        if other_file:
            detail = f"{'/'.join(map(str, keys[index]))} already loaded from {other_file}"
            batch.reject_loaded_row(index, s.DUPLICATE_ORDER_ID, detail)
        else:
            batch.reject_loaded_row(index, s.DUPLICATE_LINE, repeated_key_detail(source, keys[index], first_line))


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
        erased = erased_subjects(cur)
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
    # an erased person's orders are counted as quarantined, never copied (guests by their phone)
    watermark_reached = max(o[6] for o in orders)  # erased orders included: they are dealt with
    erased_orders = {o[0] for o in orders if erased and any(value and subject_keys(value) & erased for value in (o[1], o[2]))}
    orders = [o for o in orders if o[0] not in erased_orders]
    erased_lines = [line for line in lines if line[0] in erased_orders]
    lines = [line for line in lines if line[0] not in erased_orders]
    erased_amount = sum((line[7] for line in erased_lines), Decimal("0"))

    with connect(url) as conn, conn.cursor() as cur:
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
        if (loaded_lines, loaded_amount + erased_amount) != (len(lines), source_amount):
            raise ReconciliationError(
                f"shop batch {batch_id}: source {len(lines) + len(erased_lines)} lines / {source_amount},"
                f" loaded {loaded_lines} / {loaded_amount}, erased subjects' {len(erased_lines)} / {erased_amount}"
            )
        cur.execute(
            """
            insert into raw.extract_watermarks (source, watermark) values (%s, %s)
            on conflict (source) do update set watermark = excluded.watermark, updated_at = now()
            """,
            (SHOP_SOURCE, watermark_reached),
        )
        cur.execute(
            """
            insert into raw.load_manifest (source, file_name, sha256, rows_read, rows_loaded, rows_quarantined,
                                           amount_read, amount_loaded, amount_quarantined)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                SHOP_SOURCE,
                f"batch-{batch_id}",
                batch_id,
                len(lines) + len(erased_lines),
                loaded_lines,
                len(erased_lines),
                source_amount,
                loaded_amount,
                erased_amount,
            ),  # fmt: skip
        )
        if erased_lines:
            _copy_rows(
                cur,
                "raw.quarantine",
                ("source", "file_name", "line_number", "reason_code"),
                [(SHOP_SOURCE, f"batch-{batch_id}", None, s.ERASED_SUBJECT)] * len(erased_lines),
            )
    return LoadSummary(len(orders), 1, len(lines), len(erased_lines))


def purge_erased_subjects(url: WarehouseUrl, data_dir: Path, now: datetime | None = None) -> dict[str, int]:
    """After an erasure: rewrite every landing file that holds a record of an erased person
    without those records (each record's lines dropped, the rest byte for byte), then load the
    rewritten files again, which replaces their rows in raw and pii. Returns the records removed
    per file (by name only)."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        erased = erased_subjects(cur)
    removed: dict[str, int] = {}
    if not erased:
        return removed
    for source in s.SOURCES.values():
        root = data_dir / source.subdir
        if not root.is_dir():
            continue
        known_stores = known_store_codes() if source.store_column else None
        rewritten = False
        for path in sorted(root.rglob("*.csv")):
            name = path.relative_to(root).as_posix()
            lines = _erased_record_lines(source, path, name, erased, now, known_stores)
            if lines:
                _rewrite_without_lines(path, lines, _read_file(path, name, inspect_export)[0])
                removed[f"{source.subdir}/{name}"] = len(lines)
                rewritten = True
        if rewritten:
            load_exports(url, source, root, now=now, known_stores=known_stores)
    return removed


def _erased_record_lines(
    source: s.CsvSource, path: Path, name: str, erased: frozenset[str], now: datetime | None, known_stores: frozenset[str] | None
) -> set[int]:
    """The physical line numbers (1-based) of the file's records of erased people."""

    def scan(handle: io.BufferedReader) -> set[int]:
        encoding, _ = inspect_export(handle)
        handle.seek(0)
        found: set[int] = set()
        for batch in read_export(source, name, handle, encoding, now, known_stores):
            rows, rejections = _erased_positions(source, batch, erased)
            records = [(batch.good_rows[i][-1], batch.good_lines[i]) for i in rows]
            records += [(batch.rejections[i].line_number, batch.rejections[i].raw_text) for i in rejections]
            for first, text in records:
                found.update(range(first, first + len(io.StringIO(text, newline="").readlines() or [""])))
        return found

    return _read_file(path, name, scan)


def _rewrite_without_lines(path: Path, doomed: set[int], encoding: str) -> None:
    """Atomically replace the file by itself without the ``doomed`` physical lines."""
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    try:
        with (
            path.open(encoding=encoding, errors="surrogateescape", newline="") as original,
            temp.open("x", encoding=encoding, errors="surrogateescape", newline="") as copy,
        ):
            for number, line in enumerate(original, start=1):
                if number not in doomed:
                    copy.write(line)
            copy.flush()
            os.fsync(copy.fileno())
        temp.chmod(path.stat().st_mode & 0o777)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


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


@dataclass(frozen=True)
class LandedFile:
    path: Path
    size: int
    sha256: str


def land_file(path: Path, landing_dir: Path) -> LandedFile:
    """Copy a file into the landing area atomically: written under a temporary name in the same
    folder, flushed to disk, read back (size and SHA-256), then renamed into place — so the
    landed name only ever holds a complete copy, whatever kills the copy half-way."""
    target = landing_dir / path.name
    temp = landing_dir / f".{path.name}.{os.getpid()}@{socket.gethostname()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    try:
        landing_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned_partials(landing_dir)
        if target.exists() and target.samefile(path):
            return LandedFile(target, *size_and_sha256(target))  # already in the landing area
        expected_size = path.stat().st_size if path.is_file() else None
        digest, size = hashlib.sha256(), 0
        try:
            with path.open("rb") as original, temp.open("xb") as copy:
                while chunk := original.read(_CHUNK):
                    copy.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                copy.flush()
                os.fsync(copy.fileno())
            if expected_size is not None and size != expected_size:
                raise LandingError(f"{path.name} changed while it was copied: {expected_size} bytes at the start, {size} copied")
            if size_and_sha256(temp) != (size, digest.hexdigest()):
                raise LandingError(f"the copy of {path.name} in {landing_dir} does not read back as written")
            os.replace(temp, target)
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        _fsync_directory(landing_dir)  # the rename itself survives a crash
    except OSError as exc:
        raise LandingError(f"cannot land {path.name} in {landing_dir}: {exc.strerror or exc}") from exc
    return LandedFile(target, size, digest.hexdigest())


_PARTIAL_NAME = re.compile(r"\.(?P<pid>\d+)(?:@(?P<host>.+))?-[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX) + "$")


def remove_abandoned_partials(landing_dir: Path) -> list[str]:
    """Delete the partial copies left in ``landing_dir`` by landings that were killed: those
    written on this machine by a process that no longer runs. A copy still being written, or one
    from another machine sharing the folder, is left alone. Returns the names removed."""
    removed = []
    for partial in sorted(landing_dir.glob(f".*{PARTIAL_SUFFIX}")):
        match = _PARTIAL_NAME.search(partial.name)
        if not match or match["host"] not in (None, socket.gethostname()) or _process_runs(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):  # another landing removed it first
            partial.unlink()
            removed.append(partial.name)
            log.warning("removed %s: a partial copy left by a landing that was killed", partial.name)
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def size_and_sha256(path: Path) -> tuple[int, str]:
    """A file's size and SHA-256, read in chunks (any size, bounded memory)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def import_files(url: WarehouseUrl, source: s.CsvSource, paths: list[Path], landing_dir: Path) -> LoadSummary:
    """Land files a person hands over in ``landing_dir`` (the source's landing folder), then load
    exactly those files, each only if its bytes are still the ones landed."""
    names = [path.name for path in paths]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise LandingError(f"two files named {repeated[0]}: each lands as its name in {landing_dir}; rename one")
    landed = [land_file(path, landing_dir) for path in paths]
    return load_exports(url, source, landing_dir, landed={file.path: file.sha256 for file in landed})


def import_order_file(url: WarehouseUrl, path: Path, landing: Path | None = None) -> LoadSummary:
    """Land an order-history file in the generic layout, then load exactly that file."""
    return import_files(url, s.ORDER_IMPORT, [path], (landing or settings.DATA_DIR) / s.ORDER_IMPORT.subdir)


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
