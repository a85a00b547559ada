"""Mainland-China working days (statutory holidays and adjusted working weekends).

The review deadline (Art. 8: 5 working days) and the appeal deadline (Art. 9: 3 working days)
are counted here. ``chinese-calendar`` ships the State Council's schedule year by year; for a
year it does not know yet, a policy may allow Monday-Friday as a stated fallback, otherwise
counting stops with a clear error rather than guess.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import chinese_calendar

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import Policy
from tierhouse.periods import CHINA

log = logging.getLogger(__name__)


class CalendarUnavailable(TierhouseError, RuntimeError):
    """The official holiday schedule for a year is not known yet."""


def is_working_day(day: date, weekday_fallback: bool = False) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        if not weekday_fallback:
            raise CalendarUnavailable(
                f"no mainland-China holiday schedule for {day.year} (chinese-calendar {chinese_calendar.__version__});"
                " upgrade chinese-calendar, or allow the Monday-Friday fallback in the policy's calendar"
            ) from exc
        log.warning("no holiday schedule for %s: counting Monday-Friday as working days", day.year)
        return day.weekday() < 5


def add_working_days(start: date, days: int, weekday_fallback: bool = False) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    current, counted = start, 0
    while counted < days:
        current += timedelta(days=1)
        if is_working_day(current, weekday_fallback):
            counted += 1
    return current


def working_days_between(start: date, end: date, weekday_fallback: bool = False) -> int:
    """Working days after ``start`` up to and including ``end``."""
    return sum(is_working_day(start + timedelta(days=n), weekday_fallback) for n in range(1, (end - start).days + 1))


def policy_deadline(graded_policy: Policy, calendar_key: str, default_days: int, since: datetime) -> date:
    """``calendar.<calendar_key>`` working days (``default_days`` when the policy names none) after
    the mainland-China date of ``since``; Monday to Friday for a year the holiday schedule does not
    know yet, where the policy's calendar allows that."""
    days = int(graded_policy.calendar.get(calendar_key, default_days))
    weekday_fallback = graded_policy.calendar.get("unknown_year") == "weekdays"
    return add_working_days(since.astimezone(CHINA).date(), days, weekday_fallback)
