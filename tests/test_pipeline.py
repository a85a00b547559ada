"""Which month a grading run grades."""

from __future__ import annotations

import logging
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from tierhouse import settings
from tierhouse.grading.policy import UnknownPolicy
from tierhouse.orchestration.pipeline import (
    backfill,
    grading_months,
    lists_month,
    policy_selected,
    quarter_to_regrade,
    resolve_period,
)
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


@pytest.fixture
def later_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shipped policies plus `mine`, a copy of P3 whose first version takes effect in 2027."""
    root = tmp_path / "policies"
    shutil.copytree(settings.POLICIES_DIR, root)
    document = yaml.safe_load((root / "abcd" / "v1.yml").read_text(encoding="utf-8"))
    document.update(policy="mine", effective_from=date(2027, 1, 1))
    (root / "mine").mkdir()
    (root / "mine" / "v1.yml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(settings, "POLICIES_DIR", root)
    return "mine"


def test_a_policy_with_no_version_in_force_is_skipped_with_a_log_line(
    later_policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert lists_month(later_policy, "2026-12") is False  # a quarter end its calendar lists, before it takes effect
    assert "mine 2026-12: no version of the policy is in force for the period; skipped" in caplog.text
    assert lists_month(later_policy, "2027-03") is True
    assert lists_month("abcd", "2026-12") is True
    # a backfill over those months never reaches the warehouse for them (nothing to audit or publish)
    assert backfill(later_policy, ["2026-10", "2026-11", "2026-12"], run_id=None) == []


def test_a_run_limited_to_named_policies_skips_the_others_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    graded = ["highend_flower", "service_levels", "abcd"]
    assert policy_selected("abcd", None, graded) is True
    assert policy_selected("abcd", ["abcd"], graded) is True
    assert policy_selected("service_levels", ["abcd"], graded) is False
    assert "service_levels: not among this run's policies (abcd); skipped" in caplog.text
    with pytest.raises(UnknownPolicy, match="policies param names abdc, not graded here"):
        policy_selected("abcd", ["abdc"], graded)
