"""Staff free text checked at entry: review reasons, appeal requests and answers, data-subject
request reasons, who handled them, every free-text CLI argument. The functions that record them
call :func:`check_entry` (``lifecycle.review``, ``lifecycle.appeals``); data-subject requests are
checked where they enter, ``orchestration.pipeline.data_subject_request`` (the CLI and the DAG).

Free text is written to ``history`` and ``audit``, which are append-only and which the
de-identification gate scans: a phone number typed into a reason would fail every later gate
run and could never be removed. So the text is refused before anything is written, with a
message naming the field and the kind of personal data, never the value.

The detectors are the gate's (warehouse migration ``0200_free_text_detectors``
creates ``audit.has_mobile``, ``audit.has_resident_id``, ``audit.has_email``): the patterns
below are the same strings, run by Python's ``re`` so that a command can refuse its arguments
before it connects; tests/test_free_text.py runs both engines on every spelling and checks they
agree. Names are looked for as the gate's name patterns find them.

Customer names are read once per process through the steward's logged path
(:func:`tierhouse.privacy.dsr.customer_names`, one access-log row) and kept in memory for the
rest of it: decrypting every name costs what the gate's own read costs (about 3 s for 100,000
customers, measured at 0.5 s for 20,000), paid once by each process that takes text; each check
then looks for every name with a substring test (milliseconds). A name corrected later in the same
process is not seen by that process; the gate, which reads the names afresh, still sees it.
"""

from __future__ import annotations

import re
from functools import cache

from tierhouse.errors import TierhouseError
from tierhouse.privacy.deidentification import _TO_ASCII, KIND_LABELS, searchable_names
from tierhouse.warehouse.connection import WarehouseUrl

# Exactly the strings of audit.has_mobile, audit.has_resident_id and audit.has_email: a number
# stands on its own or behind a label of two letters or more that are not all hex digits (tel,
# ID); see the migration for what each part keeps out.
_BEFORE = r"(?:^|[^0-9A-Za-z.]|(?<![0-9])\.)(?:(?=[A-Za-z]{2})[A-Za-z]*[G-Zg-z][A-Za-z]*)?"
MOBILE_PATTERN = (
    _BEFORE + r"(?:\+?86|0086)?[- ]?(?:1[3-9][0-9]|\(1[3-9][0-9]\))"
    r"(?:[- ]?[0-9]{4}[- ]?[0-9]{4}|\.[0-9]{4}\.[0-9]{4}|/[0-9]{4}/[0-9]{4})"
    r"(?:[A-Za-z]*[G-Zg-z][A-Za-z]*)?(?![0-9A-Za-z])(?!\.[0-9])"
)
RESIDENT_ID_PATTERN = _BEFORE + r"([0-9]{6})[- ]?([0-9]{8})[- ]?([0-9]{3}[0-9Xx])(?![0-9A-Za-z])(?!\.[0-9])"
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"

_MOBILE = re.compile(MOBILE_PATTERN)
_RESIDENT_ID = re.compile(RESIDENT_ID_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


class FreeTextRefused(TierhouseError, ValueError):
    """Free text that holds personal data; the message names the field and the kind, never the value."""


def fold_width(text: str) -> str:
    """Full-width characters as their ASCII forms, as ``audit.fold_width`` folds them."""
    return text.translate(_TO_ASCII)


def _resident_id_checksum_holds(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == digits[17].upper()


def kinds_found(text: str, names: tuple[str, ...] = ()) -> list[str]:
    """The kinds of personal data in ``text`` (mobile, resident_id, email, name), in that order."""
    value = fold_width(text)
    found = []
    if _MOBILE.search(value):
        found.append("mobile")
    if any(_resident_id_checksum_holds(m[1] + m[2] + m[3]) for m in _RESIDENT_ID.finditer(value)):
        found.append("resident_id")
    if _EMAIL.search(value):
        found.append("email")
    if names and any(_name_in(value, name) for name in _searchable(names)):
        found.append("name")
    return found


@cache
def _searchable(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(searchable_names(names))


def _name_in(value: str, name: str) -> bool:
    """What the gate's name patterns match (deidentification.name_patterns): the name anywhere,
    but a Latin-script name's ASCII ends not inside a word. A substring test first: a regex
    alternation of every customer's name takes seconds to compile, a loop of ``in`` milliseconds."""
    if name not in value:
        return False
    before = "(?<![0-9A-Za-z])" if name[0].isascii() and name[0].isalnum() else ""
    after = "(?![0-9A-Za-z])" if name[-1].isascii() and name[-1].isalnum() else ""
    return re.search(before + re.escape(name) + after, value) is not None


def check_free_text(field: str, text: str | None, names: tuple[str, ...] = ()) -> None:
    """Raise :class:`FreeTextRefused` when ``text`` holds personal data."""
    if not text:
        return
    found = kinds_found(text, names)
    if found:
        kinds = " and ".join(KIND_LABELS[kind] for kind in found)
        raise FreeTextRefused(
            f"{field} refused: it holds personal data ({kinds}), which stays in the pii schema;"
            " write it without (nothing was recorded)"
        )


@cache
def customer_names(steward: WarehouseUrl) -> tuple[str, ...]:
    """Every customer's name, read once per process and warehouse through the steward's logged path."""
    from tierhouse.privacy import dsr

    return tuple(dsr.customer_names(steward, "free_text_check"))


def check_entry(steward: WarehouseUrl | None, **fields: str | None) -> None:
    """Check every field before anything is written: the patterns first, which need no
    warehouse, then customer names, read as ``steward`` (the steward's login: no other may call
    the logged read), only when it is given and the patterns passed."""
    for field, text in fields.items():
        check_free_text(field.replace("_", " "), text)
    if steward is not None and any(fields.values()):
        names = customer_names(steward)
        for field, text in fields.items():
            check_free_text(field.replace("_", " "), text, names)
