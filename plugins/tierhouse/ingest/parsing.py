"""Reading one exported CSV file into rows to load and rows to quarantine. Pure: no database.

Whatever the bytes, the result reconciles: every data line is either loaded or rejected with a
reason code, and the amounts of both add up to the amount read.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from tierhouse.errors import TierhouseError
from tierhouse.ingest import sources as s
from tierhouse.privacy.crypto import normalise_phone

_MAX_AMOUNT = Decimal("1e10")  # numeric(12, 2)
_MAX_INT = 2**31
_TRUE = {"1", "true", "t", "yes", "y", "是"}
_FALSE = {"0", "false", "f", "no", "n", "否"}


class ReconciliationError(TierhouseError, RuntimeError):
    """Counts or sums of a load do not add up: something was lost or invented."""


@dataclass
class Rejection:
    line_number: int | None
    reason_code: str
    detail: str
    raw_text: str = ""
    amount: Decimal = Decimal("0")


@dataclass
class FileLoad:
    source: str
    file_name: str
    sha256: str
    rows_read: int = 0
    amount_read: Decimal = Decimal("0")
    good_rows: list[tuple] = field(default_factory=list)
    good_amounts: list[Decimal] = field(default_factory=list)
    good_lines: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def amount_loaded(self) -> Decimal:
        return sum(self.good_amounts, Decimal("0"))

    @property
    def amount_quarantined(self) -> Decimal:
        return sum((r.amount for r in self.rejections), Decimal("0"))

    def reject_loaded_row(self, index: int, reason_code: str, detail: str) -> None:
        """Move an already accepted row to quarantine (a check that needs the database failed)."""
        row, amount, raw_text = self.good_rows.pop(index), self.good_amounts.pop(index), self.good_lines.pop(index)
        self.rejections.append(Rejection(row[-1], reason_code, detail, raw_text, amount))

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
    """Exports come as UTF-8, UTF-8 with BOM or GBK; return the text and the encoding found."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


def parse_amount(text: str) -> Decimal | None:
    """A money value with at most two decimals (thousands separators allowed), else None."""
    try:
        value = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value.as_tuple().exponent < -2 or abs(value) >= _MAX_AMOUNT:  # type: ignore[operator]
        return None
    return value


def _parse_value(kind: str, text: str) -> object:
    """The typed value, or raises ValueError."""
    if kind == "text":
        return text
    if kind == "int":
        value = int(text)
        if abs(value) >= _MAX_INT:
            raise ValueError("out of range")
        return value
    if kind == "amount":
        amount = parse_amount(text)
        if amount is None:
            raise ValueError("not an amount")
        return amount
    if kind == "timestamp":
        stamp = datetime.fromisoformat(text.replace("/", "-"))
        if stamp.tzinfo is not None:
            raise ValueError("local time expected")
        return stamp
    if kind == "date":
        return date.fromisoformat(text.replace("/", "-"))
    if kind == "phone":
        return normalise_phone(text)
    if kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError("not a yes/no value")
    raise AssertionError(f"unknown column kind {kind}")


def storable(raw_text: str) -> str:
    """PostgreSQL text cannot hold NUL; keep the line readable and visibly marked instead."""
    return raw_text.replace("\x00", "\\x00")


def _split_csv_line(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def parse_export(
    source: s.CsvSource,
    file_name: str,
    data: bytes,
    now: datetime | None = None,
    known_stores: frozenset[str] | None = None,
) -> FileLoad:
    """Split one export into typed rows (in ``source.columns`` order, then file name and line)
    and rejections. Never raises on bad content."""
    load = FileLoad(source=source.name, file_name=file_name, sha256=hashlib.sha256(data).hexdigest())
    now = now or datetime.now()
    try:
        text, _encoding = decode_export(data)
    except UnicodeDecodeError as exc:
        for number, line in enumerate(data.splitlines()[1:], start=2):
            if line.strip():
                load.rows_read += 1
                load.rejections.append(Rejection(number, s.BAD_ENCODING, str(exc), storable(line.decode("latin-1"))))
        return load
    lines = text.splitlines()
    if not lines:
        return load
    header_map = source.header_map
    header = _split_csv_line(lines[0]) or []
    columns = [header_map.get(h.strip().lstrip("\ufeff")) for h in header]
    missing = [c.name for c in source.columns if c.required and c.name not in columns]
    seen_keys: set[tuple] = set()
    # One physical line is one row: exporters never write multi-line fields, and reading line by
    # line means a broken line can only take itself to quarantine, never its neighbours.
    for line_number, raw_text in enumerate(lines[1:], start=2):
        if not raw_text.strip():
            continue  # blank lines are formatting, not data
        load.rows_read += 1
        values = _split_csv_line(raw_text)
        fields = {name: value.strip() for name, value in zip(columns, values or [], strict=False) if name}
        amount = parse_amount(fields.get(source.amount_column, "")) if source.amount_column else None
        amount = amount or Decimal("0")
        load.amount_read += amount
        if "\x00" in raw_text:
            verdict: tuple | Rejection = Rejection(line_number, s.BAD_ENCODING, "NUL byte in line")
        elif values is None:
            verdict = Rejection(line_number, s.UNPARSABLE_ROW, "not a CSV line")
        elif missing:
            verdict = Rejection(line_number, s.MISSING_COLUMN, f"header lacks {', '.join(missing)}")
        elif len(values) != len(header):
            verdict = Rejection(line_number, s.WRONG_FIELD_COUNT, f"{len(values)} fields, header has {len(header)}")
        else:
            verdict = _check_row(source, fields, now, known_stores, seen_keys)
        if isinstance(verdict, Rejection):
            verdict.line_number, verdict.raw_text, verdict.amount = line_number, storable(raw_text), amount
            load.rejections.append(verdict)
            continue
        load.good_rows.append((*verdict, file_name, line_number))
        load.good_amounts.append(amount)
        load.good_lines.append(storable(raw_text))
    return load


def _check_row(
    source: s.CsvSource,
    fields: dict[str, str],
    now: datetime,
    known_stores: frozenset[str] | None,
    seen_keys: set[tuple],
) -> tuple | Rejection:
    """The typed row to load, or why it must be quarantined."""
    empty = [c.name for c in source.columns if c.required and not fields.get(c.name)]
    if empty:
        return Rejection(None, s.MISSING_REQUIRED_FIELD, ", ".join(empty))
    typed: dict[str, object] = {}
    for column in source.columns:
        text = fields.get(column.name, "")
        if not text:
            typed[column.name] = None
            continue
        try:
            typed[column.name] = _parse_value(column.kind, text)
        except ValueError as exc:
            return Rejection(None, s.KIND_REASON[column.kind] or s.INVALID_VALUE, f"{column.name}={text!r}: {exc}")
        if column.allowed is not None and text not in column.allowed:
            return Rejection(None, s.INVALID_VALUE, f"{column.name}={text!r} is not one of {sorted(column.allowed)}")
        # A timestamp records something that happened; a date may be a due or event date ahead.
        if column.kind == "timestamp" and typed[column.name] > now + timedelta(days=1):  # type: ignore[operator]
            return Rejection(None, s.FUTURE_DATE, f"{column.name}={text}")
    if source.signed_pair:
        quantity, amount = (typed[name] for name in source.signed_pair)
        if quantity == 0 or (quantity < 0) != (amount < 0):  # type: ignore[operator]
            # A refund is negative in both quantity and amount; anything else is a keying error.
            code = s.NEGATIVE_QUANTITY if quantity < 0 else s.SIGN_MISMATCH  # type: ignore[operator]
            return Rejection(None, code, f"quantity={quantity} amount={amount}")
    if source.store_column and known_stores is not None and typed[source.store_column] not in known_stores:
        return Rejection(None, s.UNKNOWN_STORE, f"{source.store_column}={typed[source.store_column]!r}")
    key = tuple(typed[name] for name in source.unique_key)
    if key in seen_keys:
        return Rejection(None, s.DUPLICATE_LINE, f"{'/'.join(source.unique_key)}={'/'.join(map(str, key))} repeated in the file")
    seen_keys.add(key)
    return tuple(typed[c.name] for c in source.columns)
