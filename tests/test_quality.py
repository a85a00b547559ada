"""The Great Expectations gates fail on planted bad batches and name what failed."""

from __future__ import annotations

import pytest

from tests.support import query
from tierhouse.grading import quality

MART_DDL = """
create schema marts;
create table marts.fct_customer_tiers (
    customer_period_id text, policy text, policy_version integer, period_month date, customer_key text,
    tier text, tier_label text, tier_rank integer, decided_by text, spend numeric
);
"""
GOOD_ROWS = [
    ("a", "highend_flower", 1, "2026-10-01", "c1", "top", "顶级高端", 1, "top: all conditions met", 150000),
    ("b", "highend_flower", 1, "2026-10-01", "c2", "none", "非高端", 99, "no tier rule met", 800),
    # another period's rows must not be judged with this one
    ("c", "highend_flower", 1, "2026-09-01", "c2", "gold", "?", 1, None, 99999999),
]
PARAMS = {"policy": "highend_flower", "period_month": "2026-10-01"}
P1_EXPECTED = {"tiers": ["high", "none", "potential", "top"], "policy_versions": [1]}


def plant(url, rows) -> None:
    query(url, MART_DDL)
    for row in rows:
        query(url, "insert into marts.fct_customer_tiers values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)


def test_publish_gate_passes_a_clean_period(empty_db) -> None:
    plant(empty_db, GOOD_ROWS)
    outcome = quality.gate(empty_db, "publish_customer_tiers", PARAMS, P1_EXPECTED)
    assert outcome.success and outcome.evaluated == 8


def test_publish_gate_fails_on_a_planted_bad_batch(empty_db) -> None:
    bad = [
        *GOOD_ROWS,
        ("d", "highend_flower", 1, "2026-10-01", "c1", "gold", "?", 1, "x", 100),  # c1 twice, unknown tier
        ("e", "highend_flower", 1, "2026-10-01", None, "none", "?", 99, None, 9_000_000),  # no key, implausible spend
        ("f", "highend_flower", 7, "2026-10-01", "c9", "none", "?", 99, "x", 100),  # a version never loaded
    ]
    plant(empty_db, bad)
    with pytest.raises(quality.QualityGateFailed) as raised:
        quality.gate(empty_db, "publish_customer_tiers", PARAMS, P1_EXPECTED)
    message = str(raised.value)
    for expected in (
        "expect_column_values_to_be_unique(customer_key)",
        "expect_column_values_to_be_in_set(tier)",
        "expect_column_values_to_not_be_null(customer_key)",
        "expect_column_values_to_not_be_null(decided_by)",
        "expect_column_values_to_be_between(spend)",
        "expect_column_values_to_be_in_set(policy_version)",
    ):
        assert expected in message


def test_publish_gate_fails_on_an_empty_period(empty_db) -> None:
    plant(empty_db, GOOD_ROWS)
    outcome = quality.run_checkpoint(
        empty_db, "publish_customer_tiers", {**PARAMS, "period_month": "2026-11-01"}, expectation_parameters=P1_EXPECTED
    )
    assert not outcome.success
    assert [f.expectation for f in outcome.failures] == ["expect_table_row_count_to_be_between"]


def test_the_allowed_tiers_come_from_the_caller_not_the_suite(empty_db) -> None:
    plant(empty_db, GOOD_ROWS)
    p2_tiers = {"tiers": ["level_1", "level_2", "level_3", "level_4", "none"], "policy_versions": [1]}
    outcome = quality.run_checkpoint(empty_db, "publish_customer_tiers", PARAMS, expectation_parameters=p2_tiers)
    assert [(f.expectation, f.kwargs["column"]) for f in outcome.failures] == [("expect_column_values_to_be_in_set", "tier")]
    with pytest.raises(ValueError, match="needs expectation parameters"):
        quality.run_checkpoint(empty_db, "publish_customer_tiers", PARAMS)


def test_checkpoint_parameters_cannot_inject_sql(empty_db) -> None:
    plant(empty_db, GOOD_ROWS)
    with pytest.raises(ValueError, match="unsafe filter"):
        quality.run_checkpoint(
            empty_db, "publish_customer_tiers", {**PARAMS, "policy": "x' or '1'='1"}, expectation_parameters=P1_EXPECTED
        )


def test_the_raw_gate_checks_only_enabled_sources_each_with_its_freshness(scratch_db) -> None:
    """ingest_raw limited to imports and crm (tierhouse.yml): the empty crm table fails its row
    count and freshness; imports pass without a freshness window, and fail one when configured;
    pos, shop and the other disabled sources are not checked at all."""
    query(
        scratch_db,
        "insert into raw.imported_order_lines (order_id, line_no, ordered_at, channel, quantity, amount, _source_file,"
        " _source_line, _loaded_at) values ('A-1', 1, '2024-12-01 10:00', 'website', 1, 100, 'a.csv', 2, now() - interval '30 days')",
    )
    outcome = quality.run_checkpoint(scratch_db, "ingest_raw", sources={"imports": None, "crm": 48})
    assert {(f.suite, f.expectation) for f in outcome.failures} == {
        ("raw_crm_members", "expect_table_row_count_to_be_between"),
        ("raw_crm_members", "expect_column_max_to_be_between"),
    }
    assert quality.run_checkpoint(scratch_db, "ingest_raw", sources={"imports": None}).success
    stale = quality.run_checkpoint(scratch_db, "ingest_raw", sources={"imports": 24 * 7})
    assert [(f.suite, f.expectation) for f in stale.failures] == [("raw_imported_order_lines", "expect_column_max_to_be_between")]
    assert quality.run_checkpoint(scratch_db, "ingest_raw", sources={"imports": 24 * 60}).success
    # the database refuses a key twice (migration 0450); the suite still checks it, for a warehouse
    # whose index is gone
    query(scratch_db, "drop index raw.imported_order_lines_key")
    query(scratch_db, "insert into raw.imported_order_lines select * from raw.imported_order_lines")  # a line twice
    doubled = quality.run_checkpoint(scratch_db, "ingest_raw", sources={"imports": None})
    assert [f.expectation for f in doubled.failures] == ["expect_compound_columns_to_be_unique"]
