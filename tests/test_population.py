"""A period whose customers are all excluded fails before the publish audit, naming the policy,
the period and the exclusion counts by reason (and what a consent problem needs), instead of the
publish checkpoint's bare row count."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support import query
from tierhouse.grading.population import NobodyGraded, require_graded_customers

MARTS_DDL = """
create schema marts;
create table marts.fct_customer_tiers (policy text, period_month date, customer_key text);
create table marts.fct_grading_exclusions (policy text, period_month date, customer_key text, exclusion_reason text);
"""
OCTOBER = date(2026, 10, 1)


def exclude(url, reason: str, count: int, policy: str = "highend_flower", period_month: date = OCTOBER) -> None:
    query(
        url,
        "insert into marts.fct_grading_exclusions select %s, %s, %s || n, %s from generate_series(1, %s) as n",
        (policy, period_month, reason, reason, count),
    )


def test_customers_all_without_consent_fail_with_the_counts_by_reason(empty_db) -> None:
    query(empty_db, MARTS_DDL)
    exclude(empty_db, "no_consent_record", 23_497)
    exclude(empty_db, "no_grading_consent", 3)
    exclude(empty_db, "no_consent_record", 5, period_month=date(2026, 9, 1))  # another period
    with pytest.raises(NobodyGraded) as raised:
        require_graded_customers(empty_db, "highend_flower", OCTOBER)
    assert str(raised.value) == (
        "2026-10 highend_flower: 23,500 customers, none graded: no_consent_record 23,497, no_grading_consent 3"
        " — grading needs a consent record per customer, with grading consent, in the CRM customer file"
        " (see README: Grading your own customers)"
    )


def test_a_period_grading_someone_or_without_customers_passes_on_to_the_audit(empty_db) -> None:
    query(empty_db, MARTS_DDL)
    assert require_graded_customers(empty_db, "highend_flower", OCTOBER) == 0  # no customers: the audit's row count says so
    exclude(empty_db, "no_consent_record", 4)
    query(empty_db, "insert into marts.fct_customer_tiers values ('highend_flower', %s, 'c1')", (OCTOBER,))
    assert require_graded_customers(empty_db, "highend_flower", OCTOBER) == 1
    exclude(empty_db, "no_consent_record", 1, policy="abcd")
    with pytest.raises(NobodyGraded, match="abcd: 1 customer, none graded: no_consent_record 1"):
        require_graded_customers(empty_db, "abcd", OCTOBER)
