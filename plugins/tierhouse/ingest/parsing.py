"""Reading one exported CSV file into rows to load and rows to quarantine. Pure: no database.

An export is read as RFC 4180 records, not lines: a quoted field may hold line breaks (CRLF, LF
or CR) and any other character (U+2028, NEL, form feed), and a row's line number is the physical
line its record starts on. The file is streamed: :func:`read_export` yields batches, so memory
does not grow with the file. Whatever the bytes, every batch reconciles: each record read is
either loaded or quarantined with a reason code, and the amounts of both add up to the amount read.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO, TextIO

from tierhouse.errors import TierhouseError
from tierhouse.ingest import sources as s
from tierhouse.privacy.crypto import normalise_phone
from tierhouse.privacy.deidentification import KIND_LABELS
from tierhouse.privacy.free_text import kinds_found

#: Records per batch, which is what one COPY sends; and the raw text a batch may hold.
BATCH_ROWS = 20_000
BATCH_CHARS = 8 * 1024 * 1024
_CHUNK = 1024 * 1024

_MAX_AMOUNT = Decimal("1e10")  # numeric(12, 2)
_MAX_INT = 2**31
# ASCII digits only: int() and Decimal() also take Arabic-Indic digits, '1_000' and '1e3'.
_INT = re.compile(r"[+-]?[0-9]+")
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]{0,2})?|\.[0-9]{1,2})")
# Bytes the file's encoding cannot decode are read as these (errors="surrogateescape").
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_TRUE = {"1", "true", "t", "yes", "y", "是"}
_FALSE = {"0", "false", "f", "no", "n", "否"}


class IngestError(TierhouseError):
    """A file cannot be landed or loaded as it stands; nothing of it was committed."""


class ReconciliationError(IngestError):
    """Counts or sums of a load do not add up: something was lost or invented."""


@dataclass
class Rejection:
    line_number: int | None
    reason_code: str
    detail: str
    raw_text: str = ""
    amount: Decimal = Decimal("0")
    #: The records it stands for: one, or every record of a file refused at its header.
    records: int = 1


@dataclass
class Tally:
    """What was read, loaded and quarantined: of a batch, or summed over a file's batches."""

    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    amount_read: Decimal = Decimal("0")
    amount_loaded: Decimal = Decimal("0")
    amount_quarantined: Decimal = Decimal("0")

    def add(self, other: Tally) -> None:
        self.rows_read += other.rows_read
        self.rows_loaded += other.rows_loaded
        self.rows_quarantined += other.rows_quarantined
        self.amount_read += other.amount_read
        self.amount_loaded += other.amount_loaded
        self.amount_quarantined += other.amount_quarantined

    def reconcile(self, file_name: str) -> None:
        if self.rows_loaded + self.rows_quarantined != self.rows_read:
            raise ReconciliationError(
                f"{file_name}: read {self.rows_read} rows, loaded {self.rows_loaded} + quarantined {self.rows_quarantined}"
            )
        if self.amount_loaded + self.amount_quarantined != self.amount_read:
            raise ReconciliationError(
                f"{file_name}: amount read {self.amount_read} != loaded {self.amount_loaded}"
                f" + quarantined {self.amount_quarantined}"
            )


@dataclass
class FileLoad:
    """A file's records, or one batch of them: typed rows to load and rejections.

    A file refused at its header (``bad_header``, ``missing_column``, or a header that does not
    decode) has one rejection standing for all its records. Its amount is read from the amount
    column when the header names that column exactly once; when it names it twice or not at all
    the amount cannot be attributed, and the file counts 0 as read and 0 as quarantined — the
    refusal's detail says so, and the rows still reconcile (read = quarantined).
    """

    source: str
    file_name: str
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

    @property
    def rows_quarantined(self) -> int:
        return sum(r.records for r in self.rejections)

    def tally(self) -> Tally:
        return Tally(
            self.rows_read,
            len(self.good_rows),
            self.rows_quarantined,
            self.amount_read,
            self.amount_loaded,
            self.amount_quarantined,
        )

    def reject_loaded_row(self, index: int, reason_code: str, detail: str) -> None:
        """Move an already accepted row to quarantine (a check that needs the database failed)."""
        row, amount, raw_text = self.good_rows.pop(index), self.good_amounts.pop(index), self.good_lines.pop(index)
        self.rejections.append(Rejection(row[-1], reason_code, detail, raw_text, amount))

    def reconcile(self) -> None:
        self.tally().reconcile(self.file_name)


def inspect_export(stream: BinaryIO) -> tuple[str, str]:
    """The encoding and SHA-256 of an export, read once in chunks.

    A byte-order mark names the encoding (UTF-8; UTF-16 as Excel's and WPS' "Unicode" exports
    write it). Without one: UTF-8 when every byte decodes as UTF-8, else GB18030 (a superset of
    GBK, what older Chinese tills write) when every byte decodes as that, else UTF-8 — and each
    record with bytes that do not decode is quarantined as ``bad_encoding``.
    """
    digest = hashlib.sha256()
    head = b""
    candidates = {"utf-8": codecs.getincrementaldecoder("utf-8")(), "gb18030": codecs.getincrementaldecoder("gb18030")()}
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        head = head or chunk[:3]
        for name, decoder in list(candidates.items()):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                del candidates[name]
    for name, decoder in list(candidates.items()):
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            del candidates[name]
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = next(iter(candidates), "utf-8")
    return encoding, digest.hexdigest()


def detect_encoding(data: bytes) -> str:
    return inspect_export(io.BytesIO(data))[0]


def parse_amount(text: str) -> Decimal | None:
    """A money value in ASCII digits with at most two decimals (thousands separators allowed), else None."""
    plain = text.replace(",", "").strip()
    if not _AMOUNT.fullmatch(plain):
        return None
    value = Decimal(plain)
    return value if abs(value) < _MAX_AMOUNT else None


def _parse_value(kind: str, text: str) -> object:
    """The typed value, or raises ValueError."""
    if kind == "text":
        return text
    if kind == "int":
        if not _INT.fullmatch(text):
            raise ValueError("not a whole number in ASCII digits")
        value = int(text)
        if abs(value) >= _MAX_INT:
            raise ValueError("out of range")
        return value
    if kind == "amount":
        amount = parse_amount(text)
        if amount is None:
            raise ValueError("not an amount")
        return amount
    if kind in ("timestamp", "date") and not text.isascii():
        raise ValueError("not in ASCII digits")
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
    """Raw text as PostgreSQL can keep it: NUL and undecodable bytes visibly marked (text holds
    neither), at most a field's size (a huge record is evidence enough by its start)."""
    kept = raw_text[: s.MAX_FIELD_CHARS]
    kept = _UNDECODABLE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", kept.replace("\x00", "\\x00"))
    if len(raw_text) > s.MAX_FIELD_CHARS:
        kept += f" … [{len(raw_text) - s.MAX_FIELD_CHARS:,} more characters]"
    return kept


class _RecordTooLarge(Exception):
    """A record ran past MAX_RECORD_CHARS; the rest of its physical line was skipped."""


class _PhysicalLines:
    """The physical lines of an export for csv.reader — CRLF, LF or CR ends one; U+2028, NEL and
    form feed do not — counting them and keeping the raw text of the record being read."""

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self.lines_read = 0
        self._record: list[str] = []
        self._record_chars = 0
        self._cut_after_cr = False

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        room = s.MAX_RECORD_CHARS - self._record_chars
        line = self._readline(room + 1)
        if not line:
            raise StopIteration
        self.lines_read += 1
        self._record.append(line)
        self._record_chars += len(line)
        if self._record_chars > s.MAX_RECORD_CHARS:
            while line and not line.endswith(("\n", "\r")):  # never hold more of an endless line
                line = self._readline(_CHUNK)
            raise _RecordTooLarge
        return line

    def _readline(self, limit: int) -> str:
        line = self._text.readline(limit)
        if self._cut_after_cr and line == "\n":
            line = self._text.readline(limit)  # the LF of a CRLF that the read limit cut in two
        self._cut_after_cr = len(line) == limit and line.endswith("\r")
        return line

    def take_record(self) -> str:
        """The raw text of the record just read, without its final line break."""
        raw = "".join(self._record)
        self._record, self._record_chars = [], 0
        return raw.removesuffix("\n").removesuffix("\r")


def _records(text: TextIO) -> Iterator[tuple[int, str, list[str] | Rejection]]:
    """Each non-blank record: the line it starts on, its raw text, and its fields or why it is
    not a CSV record."""
    lines = _PhysicalLines(text)
    reader = csv.reader(lines, strict=True)
    while True:
        line_number = lines.lines_read + 1
        fields: list[str] | Rejection
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _RecordTooLarge:
            fields = Rejection(
                line_number, s.FIELD_TOO_LARGE, f"field too large: record longer than {s.MAX_RECORD_CHARS:,} characters"
            )
        except csv.Error as exc:
            # csv.reader resets on its next call, so reading goes on at the next physical line
            if "field limit" in str(exc):
                fields = Rejection(line_number, s.FIELD_TOO_LARGE, f"field too large: more than {s.MAX_FIELD_CHARS:,} characters")
            else:
                fields = Rejection(line_number, s.UNPARSABLE_ROW, f"not a CSV record: {exc}")
        raw_text = lines.take_record()
        if isinstance(fields, list) and not raw_text.strip():
            continue  # blank lines are formatting, not data
        yield line_number, raw_text, fields


def _problem(fields: list[str] | Rejection, raw_text: str, encoding: str) -> Rejection | None:
    """Why a record cannot even be split into its fields."""
    if isinstance(fields, Rejection) and fields.reason_code == s.FIELD_TOO_LARGE:
        return fields
    if not raw_text.isascii() and _UNDECODABLE.search(raw_text):
        return Rejection(None, s.BAD_ENCODING, f"bytes that are not {encoding}")
    if "\x00" in raw_text:
        return Rejection(None, s.BAD_ENCODING, "NUL byte in record")
    if isinstance(fields, Rejection):
        return fields
    if len(raw_text) > s.MAX_FIELD_CHARS:  # no field is longer than its record
        largest = max(map(len, fields), default=0)
        if largest > s.MAX_FIELD_CHARS:
            return Rejection(None, s.FIELD_TOO_LARGE, f"field too large: {largest:,} characters, at most {s.MAX_FIELD_CHARS:,}")
    return None


@dataclass(frozen=True)
class _Header:
    columns: list[str | None]  # the source column of each position
    amount_position: int | None  # where the amount is, when the header says so unambiguously
    refusal: Rejection | None  # why the whole file is refused


def _read_header(source: s.CsvSource, line_number: int, raw_text: str, cells: list[str] | Rejection, encoding: str) -> _Header:
    """Match the header's labels (ignoring case and surrounding space) to the source's columns.
    A blank, unknown or repeated label, or a missing required column, refuses the file."""
    problem = _problem(cells, raw_text, encoding)
    if problem is not None or isinstance(cells, Rejection):
        code = s.BAD_ENCODING if problem and problem.reason_code == s.BAD_ENCODING else s.BAD_HEADER
        detail = problem.detail if problem else "not a CSV record"
        return _Header([], None, Rejection(line_number, code, f"header: {detail}", storable(raw_text)))
    header_map = source.header_map
    columns: list[str | None] = []
    problems = []
    for position, cell in enumerate(cells, start=1):
        label = cell.strip().lstrip("\ufeff").strip()  # a second BOM: an editor re-saved a BOM file
        name = header_map.get(label.casefold())
        if not label:
            problems.append(f"column {position} is blank" + (" (a trailing delimiter?)" if position == len(cells) else ""))
        elif name is None:
            problems.append(f"column {position} {label!r} is not a column of {source.name}")
        elif name in columns:
            problems.append(f"column {position} {label!r} repeats {name} (column {columns.index(name) + 1})")
        columns.append(name)
    amount_position = columns.index(source.amount_column) if source.amount_column in columns else None
    if source.amount_column and columns.count(source.amount_column) > 1:
        amount_position = None
    missing = [c.name for c in source.columns if c.required and c.name not in columns]
    if problems:
        refusal = Rejection(line_number, s.BAD_HEADER, "; ".join(problems), storable(raw_text))
    elif missing:
        refusal = Rejection(line_number, s.MISSING_COLUMN, f"header lacks {', '.join(missing)}", storable(raw_text))
    else:
        return _Header(columns, amount_position, None)
    return _Header(columns, amount_position, refusal)


def _amount_at(fields: list[str] | Rejection, position: int | None) -> Decimal:
    """The record's amount when it can be read, else 0: a broken record still carries its amount
    into quarantine whenever its amount field is where the header says."""
    if position is None or isinstance(fields, Rejection) or position >= len(fields):
        return Decimal("0")
    return parse_amount(fields[position]) or Decimal("0")


def read_export(
    source: s.CsvSource,
    file_name: str,
    stream: BinaryIO,
    encoding: str,
    now: datetime | None = None,
    known_stores: frozenset[str] | None = None,
    batch_rows: int | None = BATCH_ROWS,
) -> Iterator[FileLoad]:
    """Stream one export as batches of typed rows (in ``source.columns`` order, then file name
    and line) and rejections; ``batch_rows=None`` reads it as one batch. Repeated keys are found
    within a batch; across batches the loader finds them among the rows already copied. Never
    raises on bad content."""
    now = now or datetime.now()
    text = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")
    records = _records(text)
    first = next(records, None)
    if first is None:
        return
    header = _read_header(source, *first, encoding)
    if header.refusal is not None:
        refused = FileLoad(source=source.name, file_name=file_name)
        for _line_number, _raw_text, fields in records:
            refused.rows_read += 1
            refused.amount_read += _amount_at(fields, header.amount_position)
        header.refusal.records, header.refusal.amount = refused.rows_read, refused.amount_read
        if source.amount_column and header.amount_position is None:
            header.refusal.detail += f"; amount unknown: the header names no single {source.amount_column} column"
        refused.rejections.append(header.refusal)
        yield refused
        return
    seen_keys: dict[tuple, int] = {}
    batch, kept_chars = FileLoad(source=source.name, file_name=file_name), 0
    for line_number, raw_text, fields in records:
        amount = _amount_at(fields, header.amount_position)
        batch.rows_read += 1
        batch.amount_read += amount
        verdict = _problem(fields, raw_text, encoding)
        if verdict is None and isinstance(fields, list):
            if len(fields) != len(header.columns):
                verdict = Rejection(None, s.WRONG_FIELD_COUNT, f"{len(fields)} fields, header has {len(header.columns)}")
            else:
                values = {name: value.strip() for name, value in zip(header.columns, fields, strict=True) if name}
                checked = _check_row(source, values, now, known_stores, seen_keys, line_number)
                if isinstance(checked, Rejection):
                    verdict = checked
                else:
                    batch.good_rows.append((*checked, file_name, line_number))
                    batch.good_amounts.append(amount)
                    batch.good_lines.append(raw_text if len(raw_text) <= s.MAX_FIELD_CHARS else storable(raw_text))
                    kept_chars += len(batch.good_lines[-1])
        if verdict is not None:
            verdict.line_number, verdict.raw_text, verdict.amount = line_number, storable(raw_text), amount
            batch.rejections.append(verdict)
            kept_chars += len(verdict.raw_text)
        if batch_rows is not None and (batch.rows_read >= batch_rows or kept_chars >= BATCH_CHARS):
            yield batch
            batch, kept_chars, seen_keys = FileLoad(source=source.name, file_name=file_name), 0, {}
    if batch.rows_read:
        yield batch


def parse_export(
    source: s.CsvSource,
    file_name: str,
    data: bytes,
    now: datetime | None = None,
    known_stores: frozenset[str] | None = None,
) -> FileLoad:
    """A whole export in one batch (for files that fit in memory, and for tests)."""
    encoding = detect_encoding(data)
    batches = read_export(source, file_name, io.BytesIO(data), encoding, now, known_stores, batch_rows=None)
    return next(batches, FileLoad(source=source.name, file_name=file_name))


def _check_row(
    source: s.CsvSource,
    fields: dict[str, str],
    now: datetime,
    known_stores: frozenset[str] | None,
    seen_keys: dict[tuple, int],
    line_number: int,
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
        # raw.quarantine.detail is outside pii: a personal column's value is never quoted in it
        quoted = column.name if column.personal else f"{column.name}={text!r}"
        try:
            value = typed[column.name] = _parse_value(column.kind, text)
        except ValueError as exc:
            return Rejection(None, s.KIND_REASON[column.kind] or s.INVALID_VALUE, f"{quoted}: {exc}")
        if column.code:
            found = kinds_found(text)
            if found:
                kinds = " and ".join(KIND_LABELS[kind] for kind in found)
                return Rejection(None, s.INVALID_VALUE, f"{column.name}: holds personal data ({kinds}), not a code")
        if column.allowed is not None and text not in column.allowed:
            return Rejection(None, s.INVALID_VALUE, f"{quoted} is not one of {sorted(column.allowed)}")
        if column.minimum is not None and value < column.minimum:  # type: ignore[operator]
            return Rejection(None, s.INVALID_VALUE, f"{quoted} is below {column.minimum}")
        if isinstance(value, date):
            implausible = _implausible_date(source, column, value, text, now)
            if implausible is not None:
                return implausible
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
        return Rejection(None, s.DUPLICATE_LINE, repeated_key_detail(source, key, seen_keys[key]))
    seen_keys[key] = line_number
    return tuple(typed[c.name] for c in source.columns)


def repeated_key_detail(source: s.CsvSource, key: tuple, first_line: int) -> str:
    return f"{'/'.join(source.unique_key)}={'/'.join(map(str, key))} repeated in the file (first on line {first_line})"


def _implausible_date(source: s.CsvSource, column: s.Column, value: date, text: str, now: datetime) -> Rejection | None:
    """A date outside what the source can hold: before its earliest day, or too far ahead — a
    timestamp records something that happened, a date may be a due or event date ahead."""
    day = value.date() if isinstance(value, datetime) else value
    if day < source.earliest:
        return Rejection(None, s.IMPLAUSIBLE_DATE, f"{column.name}={text}: before {source.earliest}")
    if isinstance(value, datetime):
        if value > now + s.TIMESTAMP_LEEWAY:
            return Rejection(None, s.FUTURE_DATE, f"{column.name}={text}")
    elif value > now.date() + source.dates_ahead:
        return Rejection(None, s.FUTURE_DATE, f"{column.name}={text}: more than {source.dates_ahead.days} days ahead")
    return None
