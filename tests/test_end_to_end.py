"""The real DAGs, end to end, against PostgreSQL: ingest -> dbt (Cosmos) -> GE -> published tiers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest

from tests.conftest import GradedWarehouse, query
from tierhouse import history, pipeline, policy, quality, review
from tierhouse.explain import explain
from tierhouse.ingest import load_report
from tierhouse.publish import parse_period, tier_summary
from tierhouse.runner import dags_test, task_states
from tierhouse.transform import run_dbt

pytestmark = pytest.mark.e2e
P1 = "highend_flower"


def test_grading_publishes_every_p1_tier(graded_warehouse: GradedWarehouse) -> None:
    rows = query(
        graded_warehouse.url,
        "select tier, count(*), min(policy_version), max(policy_version) from published.customer_tiers"
        " where policy = %s and period_month = %s group by tier",
        (P1, parse_period(graded_warehouse.period)),
    )
    counts = {tier: n for tier, n, _, _ in rows}
    assert {"top", "high", "potential", "none"} <= set(counts), counts
    assert all(n > 0 for n in counts.values())
    assert {(lo, hi) for _, _, lo, hi in rows} == {(1, 1)}


def test_all_three_policies_are_published_with_their_own_tiers(graded_warehouse: GradedWarehouse) -> None:
    period = parse_period(graded_warehouse.period)
    for graded_policy in policy.discover():
        tiers = dict(
            query(
                graded_warehouse.url,
                "select tier, count(*) from published.customer_tiers where policy = %s and period_month = %s group by tier",
                (graded_policy.name, period),
            )
        )
        assert set(tiers) <= {t.code for t in graded_policy.tiers} | {"none"}, graded_policy.name
        assert len(tiers) >= 3, (graded_policy.name, tiers)
    # every policy grades the same consenting population
    counts = query(
        graded_warehouse.url,
        "select policy, count(*) from published.customer_tiers where period_month = %s group by policy",
        (period,),
    )
    assert len({n for _, n in counts}) == 1 and len(counts) == 3


def test_customers_without_grading_consent_are_excluded_not_graded(graded_warehouse: GradedWarehouse) -> None:
    period = parse_period(graded_warehouse.period)
    excluded = query(
        graded_warehouse.url,
        "select customer_key, exclusion_reason from marts.fct_grading_exclusions where policy = %s and period_month = %s",
        (P1, period),
    )
    reasons = {reason for _, reason in excluded}
    assert "no_grading_consent" in reasons and "no_consent_record" in reasons  # imported VIP0001 has no CRM record
    graded = {
        key
        for (key,) in query(
            graded_warehouse.url, "select customer_key from published.customer_tiers where period_month = %s", (period,)
        )
    }
    assert not graded & {key for key, _ in excluded}


def test_explain_shows_the_rules_behind_a_top_customer(graded_warehouse: GradedWarehouse) -> None:
    period = parse_period(graded_warehouse.period)
    ((customer,),) = query(
        graded_warehouse.url,
        "select min(customer_key) from published.customer_tiers where policy = %s and tier = 'top' and period_month = %s",
        (P1, period),
    )
    text = explain(graded_warehouse.url, customer, P1, period)
    assert "top: all conditions met" in text
    assert "rule top        [all] spend                    met" in text
    assert "labels: " in text


def test_every_task_of_both_runs_succeeded(graded_warehouse: GradedWarehouse) -> None:
    for run in (graded_warehouse.ingest_run, graded_warehouse.grading_run):
        states = task_states(graded_warehouse.airflow.home, run.dag_id, run.run_id)
        assert states and set(states.values()) == {"success"}, states


def test_published_list_equals_the_audited_mart(graded_warehouse: GradedWarehouse) -> None:
    difference = query(
        graded_warehouse.url,
        """
        (select customer_key, tier from marts.fct_customer_tiers where policy = %(p)s and period_month = %(m)s
         except
         select customer_key, tier from published.customer_tiers where policy = %(p)s and period_month = %(m)s)
        union all
        (select customer_key, tier from published.customer_tiers where policy = %(p)s and period_month = %(m)s
         except
         select customer_key, tier from marts.fct_customer_tiers where policy = %(p)s and period_month = %(m)s)
        """,
        {"p": P1, "m": parse_period(graded_warehouse.period)},
    )
    assert difference == []


def test_tier_summary_shares_add_up(graded_warehouse: GradedWarehouse) -> None:
    rows = tier_summary(graded_warehouse.url, P1, parse_period(graded_warehouse.period))
    assert abs(sum(r.share for r in rows) - 1) < 0.001
    top = next(r for r in rows if r.tier == "top")
    none = next(r for r in rows if r.tier == "none")
    assert top.avg_spend > none.avg_spend


def test_loads_reconcile(graded_warehouse: GradedWarehouse) -> None:
    (bad,) = query(
        graded_warehouse.url,
        "select count(*) from raw.load_manifest where rows_read <> rows_loaded + rows_quarantined"
        " or amount_read <> amount_loaded + amount_quarantined",
    )
    assert bad == (0,)
    reports = load_report(graded_warehouse.url)
    assert {r.source for r in reports} == {"pos", "crm", "payments", "custom_orders", "feedback", "imports", "shop"}
    assert all(r.reconciled for r in reports)
    (pos,) = query(
        graded_warehouse.url,
        "select (select sum(rows_loaded) from raw.load_manifest where source = 'pos'),"
        " (select count(*) from raw.pos_sales_lines),"
        " (select sum(amount_loaded) from raw.load_manifest where source = 'pos'),"
        " (select sum(amount) from raw.pos_sales_lines)",
    )
    assert pos[0] == pos[1] and pos[2] == pos[3]


def test_planted_bad_rows_are_all_in_quarantine_with_their_reason(graded_warehouse: GradedWarehouse) -> None:
    rows = query(graded_warehouse.url, "select source, reason_code, count(*) from raw.quarantine group by 1, 2")
    assert {(source, reason) for source, reason, _ in rows} == {
        ("pos", "missing_required_field"),
        ("pos", "unparsable_amount"),
        ("pos", "future_date"),
        ("pos", "negative_quantity"),
        ("pos", "unparsable_date"),
        ("pos", "invalid_value"),
        ("pos", "duplicate_line"),
        ("pos", "duplicate_order_id"),
        ("pos", "unknown_store"),
        ("crm", "unparsable_date"),
        ("crm", "invalid_value"),
        ("payments", "unparsable_amount"),
        ("custom_orders", "invalid_value"),
        ("feedback", "invalid_value"),
    }
    per_source: dict[str, int] = {}
    for source, _, n in rows:
        per_source[source] = per_source.get(source, 0) + n
    assert per_source == graded_warehouse.generated.planted_bad_rows
    assert query(graded_warehouse.url, "select count(*) from raw.quarantine where raw_text is null or raw_text = ''") == [(0,)]


def test_orders_are_resolved_to_customers_by_the_documented_rules(graded_warehouse: GradedWarehouse) -> None:
    rules = dict(query(graded_warehouse.url, "select identity_rule, count(*) from intermediate.int_orders group by 1"))
    assert rules["member_id"] > rules["phone_owner_at_order_time"] > 0
    assert rules["unresolved"] > 0  # anonymous walk-ins
    imported = query(
        graded_warehouse.url,
        "select order_id, customer_key, identity_rule, net_amount from intermediate.int_orders"
        " where order_id like 'import:%%' order by 1",
    )
    assert imported == [
        ("import:A-10001", "VIP0001", "member_id", Decimal("20800.00")),
        ("import:A-10002", "VIP0002", "member_id", Decimal("9600.00")),
        ("import:A-10003", None, "unresolved", Decimal("680.00")),
    ]


def test_raw_gate_fails_when_sources_stop_arriving(graded_warehouse: GradedWarehouse) -> None:
    outcome = quality.run_checkpoint(graded_warehouse.url, "ingest_raw", now=datetime(2030, 1, 1, tzinfo=UTC))
    assert not outcome.success
    assert {(f.expectation, f.kwargs.get("column")) for f in outcome.failures} == {
        ("expect_column_max_to_be_between", "_loaded_at")
    }
    assert len(outcome.failures) == 6  # one per raw source table


def test_rerunning_ingest_changes_nothing(graded_warehouse: GradedWarehouse) -> None:
    snapshot_sql = (
        "select (select count(*) from raw.load_manifest), (select max(loaded_at) from raw.load_manifest),"
        " (select count(*) from raw.pos_sales_lines), (select count(*) from raw.shop_order_lines),"
        " (select watermark from raw.extract_watermarks where source = 'shop')"
    )
    before = query(graded_warehouse.url, snapshot_sql)
    rerun = dags_test(graded_warehouse.airflow, "tierhouse_ingest", "2026-11-03", echo=False)
    assert rerun.succeeded, rerun.output[-4000:]
    assert query(graded_warehouse.url, snapshot_sql) == before


def test_dbt_build_runs_models_unit_tests_and_data_tests(graded_warehouse: GradedWarehouse) -> None:
    result = run_dbt(graded_warehouse.url, "build", "--quiet")
    assert result.returncode == 0


def test_each_policy_has_one_recorded_initial_list_matching_what_is_published(graded_warehouse: GradedWarehouse) -> None:
    period = parse_period(graded_warehouse.period)
    runs = query(
        graded_warehouse.url,
        "select policy, run_id, row_count, code_version, airflow_run_id, length(input_fingerprint), length(snapshot_hash)"
        " from history.grading_runs where period_month = %s and list_kind = 'initial' order by policy",
        (period,),
    )
    assert [r[0] for r in runs] == ["abcd", "highend_flower", "service_levels"]
    for policy_name, run_id, rows, code, airflow_run, fingerprint_len, hash_len in runs:
        assert (fingerprint_len, hash_len) == (64, 64)
        assert airflow_run == graded_warehouse.grading_run.run_id and code != "unknown"
        difference = query(
            graded_warehouse.url,
            "(select customer_key, tier from history.tier_snapshots where run_id = %(r)s"
            " except select customer_key, tier from published.customer_tiers where policy = %(p)s and period_month = %(m)s)"
            " union all (select customer_key, tier from published.customer_tiers where policy = %(p)s and period_month = %(m)s"
            " except select customer_key, tier from history.tier_snapshots where run_id = %(r)s)",
            {"r": run_id, "p": policy_name, "m": period},
        )
        assert difference == [] and rows > 0


def test_republishing_the_same_inputs_reproduces_the_same_snapshot_hash(graded_warehouse: GradedWarehouse) -> None:
    period = parse_period(graded_warehouse.period)
    ((published_hash,),) = query(
        graded_warehouse.url,
        "select snapshot_hash from history.grading_runs where policy = %s and period_month = %s and list_kind = 'initial'",
        (P1, period),
    )
    outcome = history.publish_initial_list(graded_warehouse.url, P1, period, "rerun")
    assert (outcome.status, outcome.snapshot_hash) == ("unchanged", published_hash)


def test_late_changes_to_a_published_month_become_a_restatement_candidate(graded_warehouse: GradedWarehouse) -> None:
    url, period = graded_warehouse.url, parse_period(graded_warehouse.period)
    before = query(
        url, "select customer_key, tier, published_at from published.customer_tiers where policy = %s order by 1", (P1,)
    )
    ((customer,),) = query(
        url,
        "select min(customer_key) from marts.fct_customer_tiers where policy = %s and period_month = %s and tier = 'none'",
        (P1, period),
    )
    try:
        query(
            url,
            "update marts.fct_customer_tiers set tier = 'potential' where policy = %s and customer_key = %s and period_month = %s",
            (P1, customer, period),
        )
        outcome = history.publish_initial_list(url, P1, period, "late-data-run")
        assert outcome.status == "restatement_candidate"
        assert query(url, "select changed_customers, airflow_run_id from history.restatement_candidates") == [
            (1, "late-data-run")
        ]
        assert (
            query(
                url, "select customer_key, tier, published_at from published.customer_tiers where policy = %s order by 1", (P1,)
            )
            == before
        )
    finally:
        assert run_dbt(url, "build", "--quiet", "--select", "fct_customer_tiers", "--exclude", "test_type:unit").returncode == 0


def test_history_is_append_only(graded_warehouse: GradedWarehouse) -> None:
    for statement in (
        "update history.tier_snapshots set tier = 'top'",
        "delete from history.grading_runs",
        "truncate history.tier_snapshots cascade",
    ):
        with pytest.raises(psycopg2.Error, match="history is append-only"):
            query(graded_warehouse.url, statement)


def test_auditor_history_shows_every_grade_with_its_run(graded_warehouse: GradedWarehouse) -> None:
    ((customer,),) = query(graded_warehouse.url, "select min(customer_key) from published.customer_tiers where tier = 'top'")
    text = history.format_history(customer, history.customer_history(graded_warehouse.url, customer))
    assert text.count(" initial ") == 3  # one list per policy
    assert f"airflow {graded_warehouse.grading_run.run_id}" in text


def test_reviews_change_grades_only_through_the_confirmed_list(graded_warehouse: GradedWarehouse) -> None:
    url, period = graded_warehouse.url, parse_period(graded_warehouse.period)
    initial = dict(
        query(
            url, "select customer_key, tier from published.customer_tiers where policy = %s and period_month = %s", (P1, period)
        )
    )
    customer = min(key for key, tier in initial.items() if tier == "none")
    reason = "strong wedding pipeline, confirmed with the customer"
    review.add_review(url, P1, period, customer, "potential", "Li Wei", reason)
    for bad, match in (
        ({"reason": "  "}, "needs a reason"),
        ({"new_tier": "gold"}, "not a tier"),
        ({"customer_key": "NOBODY"}, "not on the"),
    ):
        arguments = {"customer_key": customer, "new_tier": "high", "reviewer": "Li Wei", "reason": "x", **bad}
        with pytest.raises(review.ReviewError, match=match):
            review.add_review(url, P1, period, **arguments)
    published_at, deadline = review.review_window(url, P1, period)
    assert deadline > published_at.date()  # five working days later
    assert review.confirm_due_lists(url, deadline) == []  # the window is open through the deadline
    # still the initial list: reviews take effect only when the list is confirmed
    assert query(
        url,
        "select tier, list_kind from published.customer_tiers where policy = %s and customer_key = %s and period_month = %s",
        (P1, customer, period),
    ) == [("none", "initial")]

    outcomes = review.confirm_due_lists(url, deadline + timedelta(days=1), "review-run")
    assert len(outcomes) == 2  # highend_flower and service_levels have a review step; abcd has none
    confirmed = dict(
        query(
            url,
            "select customer_key, tier from published.customer_tiers where policy = %s and period_month = %s and list_kind = 'confirmed'",
            (P1, period),
        )
    )
    assert confirmed == {**initial, customer: "potential"}
    ((decided_by,),) = query(
        url,
        "select decided_by from published.customer_tiers where policy = %s and customer_key = %s and period_month = %s",
        (P1, customer, period),
    )
    assert decided_by == f"review by Li Wei: {reason}"
    assert query(url, "select from_tier, to_tier, rule, evidence->>'reviewer' from history.tier_changes") == [
        ("none", "potential", "art8_review", "Li Wei")
    ]
    assert review.confirm_due_lists(url, deadline + timedelta(days=30)) == []
    with pytest.raises(review.ReviewError, match="already confirmed"):
        review.add_review(url, P1, period, customer, "high", "Li Wei", "second thoughts")
    assert "confirmed potential" in history.format_history(customer, history.customer_history(url, customer))


def test_backfilling_twelve_months_in_order_publishes_each_once_and_audits_drift(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    p1 = next(p for p in policy.discover() if p.name == P1)
    tiers = sorted({t.code for t in p1.tiers} | {"none"})
    audit = p1.document["audit"]
    drift_checked = 0
    for offset in range(12):  # October 2025 .. September 2026, oldest first
        month = date(2025, 10 + offset, 1) if offset < 3 else date(2026, offset - 2, 1)
        drift_checked += pipeline.audit_drift(url, P1, month, tiers, audit)
        assert history.publish_initial_list(url, P1, month, f"backfill-{month:%Y-%m}").status == "published"
    assert drift_checked == 11  # every month but the first has a published month before it
    # the month already published (2026-10) is now audited against September, and passes
    assert pipeline.audit_drift(url, P1, date(2026, 10, 1), tiers, audit) == 1
    # a second backfill of the same months changes nothing
    assert {history.publish_initial_list(url, P1, date(2026, m, 1)).status for m in range(1, 10)} == {"unchanged"}
    try:
        query(
            url,
            "update marts.fct_customer_tiers set tier = 'top' where policy = %s and period_month = '2026-10-01' and tier = 'none'",
            (P1,),
        )
        with pytest.raises(quality.QualityGateFailed, match="kl_divergence"):
            pipeline.audit_drift(url, P1, date(2026, 10, 1), tiers, audit)
    finally:
        assert run_dbt(url, "build", "--quiet", "--select", "fct_customer_tiers", "--exclude", "test_type:unit").returncode == 0


MONTHLY_SQL = (
    "select customer_month_id, spend, order_count, special_orders, customised_spend, enterprise_spend,"
    " max_order_value, positive_order_values from intermediate.int_customer_monthly order by 1"
)


def test_incremental_monthly_aggregates_take_late_data_and_equal_a_full_rebuild(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    ((receipt, member, amount),) = query(
        url,
        "select receipt_no, member_id, amount from raw.pos_sales_lines"
        " where sold_at >= '2026-03-01' and sold_at < '2026-04-01' and member_id is not null and line_no = 1"
        " order by receipt_no limit 1",
    )
    (before,) = query(
        url, "select spend from intermediate.int_customer_monthly where customer_month_id = %s", (f"{member}/2026-03",)
    )
    try:
        # a refund of that March sale arrives in a file loaded months later
        query(
            url,
            "insert into raw.pos_sales_lines (receipt_no, line_no, sold_at, store_code, member_id, sku, quantity, amount,"
            " _source_file, _source_line) values (%s, 990, '2026-10-30 12:00', 'SH01', %s, 'LATE', -1, %s, 'late.csv', 2)",
            (receipt, member, -amount),
        )
        # upstream tables first (as the grading DAG does), then the incremental model
        assert (
            run_dbt(url, "build", "--quiet", "--select", "+int_customer_monthly", "--exclude", "test_type:unit").returncode == 0
        )
        incremental = query(url, MONTHLY_SQL)
        (after,) = query(
            url, "select spend from intermediate.int_customer_monthly where customer_month_id = %s", (f"{member}/2026-03",)
        )
        assert after[0] == before[0] - amount
        assert run_dbt(url, "build", "--quiet", "--select", "int_customer_monthly", "--full-refresh").returncode == 0
        assert query(url, MONTHLY_SQL) == incremental
    finally:
        query(url, "delete from raw.pos_sales_lines where _source_file = 'late.csv'")
        assert run_dbt(url, "build", "--quiet", "--select", "+int_customer_monthly", "--full-refresh").returncode == 0


def test_failing_publish_gate_fails_the_run_and_keeps_the_published_list(graded_warehouse: GradedWarehouse) -> None:
    """A corrupt raw line (CNY 6M on one till line) passes dbt's structural tests but not the
    plausibility expectation of the publish checkpoint: the audit fails, publish never runs."""
    url, period = graded_warehouse.url, parse_period(graded_warehouse.period)
    published_sql = "select md5(string_agg(customer_key || tier || published_at::text, ',' order by customer_key)) from published.customer_tiers"
    before = query(url, published_sql)
    query_insert = (
        "insert into raw.pos_sales_lines (receipt_no, line_no, sold_at, store_code, member_id, sku, business_line,"
        " customization_level, quantity, unit_price, amount, _source_file, _source_line)"
        " values ('PLANTED-1', 1, '2026-10-15 12:00', 'SH01', 'M000001', 'X', 'wedding', 'bespoke', 1, 6000000, 6000000,"
        " 'planted.csv', 2)"
    )
    query(url, query_insert)
    try:
        run = dags_test(graded_warehouse.airflow, "tierhouse_grading", conf={"period": graded_warehouse.period}, echo=False)
        states = task_states(graded_warehouse.airflow.home, run.dag_id, run.run_id)
        assert run.state == "failed"
        assert states[f"audit_{P1}"] == "failed"
        assert states[f"publish_{P1}"] == "upstream_failed"
        assert "expect_column_values_to_be_between(spend)" in run.output
        assert query(url, published_sql) == before
        # The bad value did reach the candidate mart: it was the gate, not dbt, that stopped it.
        (candidate,) = query(
            url,
            "select spend from marts.fct_customer_tiers where customer_key = 'M000001' and period_month = %s and policy = %s",
            (period, P1),
        )
        assert candidate[0] > 5_000_000
    finally:
        query(url, "delete from raw.pos_sales_lines where _source_file = 'planted.csv'")
        # leave the marts as the clean data builds them, for the tests that follow
        assert run_dbt(url, "build", "--quiet", "--exclude", "test_type:unit").returncode == 0
