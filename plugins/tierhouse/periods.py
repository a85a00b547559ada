"""Grading periods and the one timezone: a period is a calendar month, named ``YYYY-MM`` and held
as the date of its first day; quarters end in March, June, September and December; every date a
policy counts (month ends, working days, deadlines) is a mainland-China date."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

from tierhouse.errors import TierhouseError

#: The retailer's timezone: schedules, working days and "today" are all counted in it.
TIMEZONE = "Asia/Shanghai"
CHINA = ZoneInfo(TIMEZONE)
QUARTER_END_MONTHS = (3, 6, 9, 12)


class PeriodError(TierhouseError, ValueError):
    """A period or a range of periods that cannot be graded as asked."""


def parse_period(period: str) -> date:
    """``YYYY-MM`` (or a date inside the month) to the first day of that month."""
    match = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])(-\d{2})?", period.strip())
    if not match:
        raise PeriodError(f"period must look like YYYY-MM, got {period!r}")
    return date(int(match[1]), int(match[2]), 1)


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or, negative, before) the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """Every month from ``first``'s to ``last``'s, oldest first (empty when ``last`` is earlier)."""
    months, current = [], add_months(first, 0)
    while current <= last:
        months.append(current)
        current = add_months(current, 1)
    return months


def is_quarter_end(month: date) -> bool:
    return month.month in QUARTER_END_MONTHS


def quarter_end(day: date) -> date:
    """The first day of the last month of the quarter ``day`` falls in."""
    return date(day.year, (day.month - 1) // 3 * 3 + 3, 1)
