"""Which month a grading run grades."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tierhouse.orchestration.pipeline import grading_months, quarter_to_regrade, resolve_period
from tierhouse.periods import parse_period


def test_an_explicit_period_wins() -> None:
    assert resolve_period("2026-03", [{"data_through": "2026-11-01"}], datetime(2026, 11, 5)) == "2026-03"


def test_the_ingest_asset_tells_which_month_is_complete() -> None:
    # data loaded through 1 Nov completes October; through 30 Nov only October too
    assert resolve_period(None, [{"data_through": "2026-11-01"}], datetime(2027, 1, 1)) == "2026-10"
    assert (
        resolve_period(None, [{"data_through": "2026-11-30"}, {"data_through": "2026-11-02"}], datetime(2027, 1, 1)) == "2026-10"
    )
    assert resolve_period(None, [{"data_through": "2027-01-01"}], datetime(2027, 1, 1)) == "2026-12"


def test_a_month_end_run_grades_the_month_its_data_interval_covers() -> None:
    assert resolve_period(None, [], datetime(2026, 11, 1, 2, 0), date(2026, 10, 1)) == "2026-10"
    assert resolve_period("2026-03", [], datetime(2026, 11, 1, 2, 0), date(2026, 10, 1)) == "2026-03"


def test_without_hints_the_month_before_the_run() -> None:
    assert resolve_period(None, [], datetime(2026, 3, 1, 2, 0)) == "2026-02"
    assert resolve_period(None, [{}], date(2026, 1, 15)) == "2025-12"


@pytest.mark.parametrize("bad", ["2026-13", "2026/10", "October", ""])
def test_bad_periods_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period(bad)


def test_the_quarterly_run_regrades_the_quarter_its_data_interval_covers() -> None:
    assert quarter_to_regrade(None, date(2026, 7, 1), datetime(2026, 10, 1, 3)) == "2026-09"
    assert quarter_to_regrade("2026-06", date(2026, 7, 1), datetime(2026, 10, 1, 3)) == "2026-06"
    # a manual run without an interval re-grades the last complete quarter before it
    assert quarter_to_regrade(None, None, datetime(2026, 11, 23)) == "2026-09"
    assert quarter_to_regrade(None, None, date(2026, 1, 5)) == "2025-12"
    with pytest.raises(ValueError, match="not the last month of a quarter"):
        quarter_to_regrade("2026-08", None, date(2026, 11, 1))


def test_a_backfill_walks_the_months_oldest_first() -> None:
    assert grading_months("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert grading_months("2026-03", "2026-03") == ["2026-03"]
    with pytest.raises(ValueError, match="before its start"):
        grading_months("2026-03", "2026-01")
