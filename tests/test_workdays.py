"""Working days follow the mainland-China statutory calendar, adjusted weekends included."""

from __future__ import annotations

from datetime import date

import pytest

from tierhouse.lifecycle.workdays import CalendarUnavailable, add_working_days, is_working_day, working_days_between


def test_national_day_week_is_not_worked_and_the_adjusted_saturday_is() -> None:
    assert not is_working_day(date(2026, 10, 1))  # National Day
    assert is_working_day(date(2026, 10, 10))  # Saturday, worked to make up the holiday
    assert not is_working_day(date(2026, 9, 27))  # an ordinary Sunday


def test_the_review_deadline_after_the_september_list_skips_the_golden_week() -> None:
    # list published 30 Sep 2026: 1-7 Oct are holidays, 8, 9, 10 (Sat, worked), 12, 13 are the five days
    assert add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 13)) == 5


def test_three_working_days_over_an_ordinary_weekend() -> None:
    assert add_working_days(date(2026, 11, 20), 3) == date(2026, 11, 25)  # Fri -> Wed


def test_an_unknown_year_is_an_error_unless_the_policy_allows_weekdays() -> None:
    with pytest.raises(CalendarUnavailable, match="2030"):
        add_working_days(date(2030, 1, 3), 2)
    assert add_working_days(date(2030, 1, 3), 2, weekday_fallback=True) == date(2030, 1, 7)
