"""The real DAGs, end to end, against PostgreSQL: ingest -> dbt (Cosmos) -> GE -> published tiers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest

from tests.support import GradedWarehouse, as_login, query
from tierhouse import settings
from tierhouse.gates import QualityGateFailed
from tierhouse.grading import policy, quality
from tierhouse.grading.explain import explain
from tierhouse.grading.summary import tier_summary
from tierhouse.grading.transform import run_dbt
from tierhouse.ingest.loaders import load_report
from tierhouse.lifecycle import appeals, history, publish, regrade, review
from tierhouse.orchestration import pipeline
from tierhouse.orchestration.config import load_config
from tierhouse.orchestration.local_airflow import dags_test, task_states
from tierhouse.periods import CHINA, parse_period
from tierhouse.warehouse.connection import JOBS, login_url

pytestmark = pytest.mark.e2e
P1 = "highend_flower"


@contextmanager
def planted_leak(url) -> Iterator[None]:
    """A mobile number outside pii, as a careless insider leaves one after grading; readable by the
    gate's login, as the next grants step would make it (one it may not read fails the gate too)."""
    query(
        url,
        "create table raw.planted_note as select '客户说请打tel13912345678'::text as note;"
        " grant select on raw.planted_note to gate",
    )
    try:
        yield
    finally:
        query(url, "drop table raw.planted_note")


def assert_gate_refuses(url, publish_step) -> None:
    """The publish step fails on the de-identification gate, naming the check and the leak."""
    with planted_leak(url), pytest.raises(QualityGateFailed) as raised:
        publish_step()
    message = str(raised.value)
    assert message.startswith("checkpoint deidentification: personal data outside the pii schema")
    assert "raw.planted_note.note: mobile number in 1 row" in message and "13912345678" not in message


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
    sources = load_config().freshness()
    outcome = quality.run_checkpoint(graded_warehouse.url, "ingest_raw", now=datetime(2030, 1, 1, tzinfo=UTC), sources=sources)
    assert not outcome.success
    assert {(f.expectation, f.kwargs.get("column")) for f in outcome.failures} == {
        ("expect_column_max_to_be_between", "_loaded_at")
    }
    # one per raw source table the sources fill on a schedule; imports have no window by default
    assert len(outcome.failures) == 6 and sources["imports"] is None


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
        "select policy, run_id, row_count, code_version, airflow_run_id, length(input_fingerprint), length(snapshot_hash),"
        " dbt_invocation_id from history.grading_runs where period_month = %s and list_kind = 'initial' order by policy",
        (period,),
    )
    assert [r[0] for r in runs] == ["abcd", "highend_flower", "service_levels"]
    for policy_name, run_id, rows, code, airflow_run, fingerprint_len, hash_len, dbt_invocation in runs:
        assert (fingerprint_len, hash_len) == (64, 64)
        assert re.fullmatch(r"[0-9a-f-]{36}", dbt_invocation or ""), dbt_invocation  # the dbt run that built the mart
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
    outcome = publish.publish_initial_list(graded_warehouse.url, P1, period, "rerun")
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
        outcome = publish.publish_initial_list(url, P1, period, "late-data-run")
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
    bi_sql = "select count(*) from published.current_customer_tiers where policy = %s and period_month = %s"
    # under review, the list is the reviewers' only: the real BI login sees none of it (Art. 8)
    with as_login(url, "bi") as conn, conn.cursor() as cur:
        cur.execute(bi_sql.replace("current_customer_tiers", "customer_tiers"), (P1, period))
        assert cur.fetchone() == (0,)

    # a leak planted after grading blocks the confirmation: nothing is published
    assert_gate_refuses(url, lambda: review.confirm_due_lists(url, deadline + timedelta(days=1), "leak-run"))
    assert query(url, "select count(*) from history.grading_runs where list_kind = 'confirmed'") == [(0,)]
    outcomes = review.confirm_due_lists(url, deadline + timedelta(days=1), "review-run")
    # highend_flower: service_levels has a review step too but requires approval, never confirmed
    # by time-out (tests/test_lists_in_force.py); abcd has no review step
    assert [outcome.status for outcome in outcomes] == ["confirmed"]
    confirmed = dict(
        query(
            url,
            "select customer_key, tier from published.customer_tiers where policy = %s and period_month = %s and list_kind = 'confirmed'",
            (P1, period),
        )
    )
    assert confirmed == {**initial, customer: "potential"}
    with as_login(url, "bi") as conn, conn.cursor() as cur:
        cur.execute(bi_sql, (P1, period))
        assert cur.fetchone() == (len(confirmed),)
    ((decided_by,),) = query(
        url,
        "select decided_by from published.customer_tiers where policy = %s and customer_key = %s and period_month = %s",
        (P1, customer, period),
    )
    # BI reads the reason code; the reviewer's words stay in the history, for auditors
    assert decided_by == "art8_review"
    assert query(
        url,
        "select s.decided_by from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
        " where r.list_kind = 'confirmed' and r.policy = %s and s.customer_key = %s",
        (P1, customer),
    ) == [(f"review by Li Wei: {reason}",)]
    assert query(url, "select from_tier, to_tier, rule, evidence->>'reviewer' from history.tier_changes") == [
        ("none", "potential", "art8_review", "Li Wei")
    ]
    assert review.confirm_due_lists(url, deadline + timedelta(days=30)) == []
    with pytest.raises(review.ReviewError, match="already confirmed"):
        review.add_review(url, P1, period, customer, "high", "Li Wei", "second thoughts")
    assert "confirmed potential" in history.format_history(customer, history.customer_history(url, customer))


def test_quarterly_regrade_moves_customers_on_their_three_month_trend(graded_warehouse: GradedWarehouse) -> None:
    url, period = graded_warehouse.url, parse_period(graded_warehouse.period)
    assert regrade.base_ready(url, P1, period)  # confirmed by the review test
    assert not regrade.base_ready(url, P1, date(2026, 6, 1))  # no list at all
    list_sql = "select customer_key, tier from published.customer_tiers where policy = %s and period_month = %s"
    confirmed = dict(query(url, list_sql, (P1, period)))
    assert_gate_refuses(url, lambda: regrade.regrade_quarter(url, P1, period, "leak-run"))
    assert query(url, "select count(*) from history.grading_runs where list_kind = 'quarterly'") == [(0,)]
    run = dags_test(graded_warehouse.airflow, "tierhouse_quarterly", conf={"quarter_end": graded_warehouse.period}, echo=False)
    assert run.succeeded, run.output[-6000:]
    quarterly = dict(query(url, list_sql + " and list_kind = 'quarterly'", (P1, period)))
    expected = dict(confirmed)
    for key, from_tier, to_tier in query(
        url,
        "select customer_key, from_tier, to_tier from marts.fct_regrade_signals"
        " where policy = %s and period_month = %s and rule_holds",
        (P1, period),
    ):
        if confirmed.get(key) == from_tier:
            expected[key] = to_tier
    assert quarterly == expected
    moved = {key for key in quarterly if quarterly[key] != confirmed[key]}
    assert moved, "the sample data should have customers whose trend moves them"
    changes = query(
        url,
        "select c.customer_key, c.from_tier, c.to_tier, c.rule, c.evidence from history.tier_changes as c"
        " join history.grading_runs as r using (run_id) where r.list_kind = 'quarterly' and r.airflow_run_id = %s",
        (run.run_id,),
    )
    assert {row[0] for row in changes} == moved
    for key, from_tier, to_tier, rule, evidence in changes:
        assert (rule, from_tier, to_tier) == ("art9_quarterly", confirmed[key], quarterly[key])
        spend, orders = Decimal(evidence["spend_growth"] or "0"), Decimal(evidence["order_growth"] or "0")
        if evidence["rule"] == "potential_rising":
            # "消费金额和频次持续提升": both up, and bought in two of the three months
            assert (from_tier, to_tier) == ("potential", "high") and spend >= Decimal("0.2") and orders > 0
            assert evidence["recent_active_months"] >= 2
        else:
            # "消费频次大幅下降、需求缩减": both falling
            assert evidence["rule"] == "top_falling" and (from_tier, to_tier) == ("top", "high")
            assert orders <= Decimal("-0.5") and spend < 0
    assert regrade.regrade_quarter(url, P1, period, "again").status == "unchanged"
    with pytest.raises(ValueError, match="not the last month of a quarter"):
        regrade.regrade_quarter(url, P1, date(2026, 8, 1))
    assert "quarterly" in history.format_history(min(moved), history.customer_history(url, min(moved)))


def test_appeals_are_answered_with_their_basis_within_three_working_days(graded_warehouse: GradedWarehouse) -> None:
    url, period = graded_warehouse.url, parse_period(graded_warehouse.period)
    list_sql = "select customer_key, tier, list_kind from published.customer_tiers where policy = %s and period_month = %s"
    before = {key: (tier, kind) for key, tier, kind in query(url, list_sql, (P1, period))}
    corrected, upheld = sorted(key for key, (tier, _) in before.items() if tier == "none")[:2]
    # received the day before National Day: the third working day is Saturday 10 October, a
    # weekend worked to make up the holiday
    received = datetime(2026, 9, 30, 10, 0, tzinfo=CHINA)
    appeal_id, due_on = appeals.file_appeal(
        url, P1, period, corrected, "a wedding order is missing from my history", "Wang Fang", received_at=received
    )
    assert due_on == date(2026, 10, 10)
    for bad, match in (
        ({"request": " "}, "needs the customer's request"),
        ({"customer_key": "NOBODY"}, "not on the"),
        ({}, "already has an open appeal"),
    ):
        arguments = {"customer_key": corrected, "request": "again", "recorded_by": "Wang Fang", **bad}
        with pytest.raises(appeals.AppealError, match=match):
            appeals.file_appeal(url, P1, period, **arguments)

    # unanswered after its due day: visible as overdue, and the appeals DAG fails (alerts)
    assert appeals.check_deadlines(url, date(2026, 10, 10)) == {"open": 1}
    with pytest.raises(appeals.AppealsOverdue, match=appeal_id):
        appeals.check_deadlines(url, date(2026, 10, 11))
    late = dags_test(graded_warehouse.airflow, "tierhouse_appeals", "2026-10-12", echo=False)
    assert late.state == "failed" and "past their due day" in late.output

    with pytest.raises(appeals.AppealError, match="needs its basis"):
        appeals.answer_appeal(url, appeal_id, "Zhao Lei", "  ", "potential")
    answered_at = datetime(2026, 10, 9, 16, 0, tzinfo=CHINA)
    basis = "guest-checkout wedding order of 28 Sep matched by phone; spend and repurchase meet the potential tier"
    assert_gate_refuses(url, lambda: appeals.answer_appeal(url, appeal_id, "Zhao Lei", basis, "potential", "leak-run"))
    assert appeals.check_deadlines(url, date(2026, 10, 10)) == {"open": 1}  # still unanswered
    outcome = appeals.answer_appeal(url, appeal_id, "Zhao Lei", basis, "potential", "appeal-run", answered_at)
    assert outcome is not None and outcome.status == "published"
    with pytest.raises(appeals.AppealError, match="already answered"):
        appeals.answer_appeal(url, appeal_id, "Zhao Lei", basis, "high")
    after = {key: (tier, kind) for key, tier, kind in query(url, list_sql, (P1, period))}
    assert after[corrected] == ("potential", "appeal")
    assert {k: t for k, (t, _) in after.items() if k != corrected} == {k: t for k, (t, _) in before.items() if k != corrected}
    assert query(
        url,
        "select from_tier, to_tier, rule, evidence->>'appeal_id' from history.tier_changes join history.grading_runs using (run_id)"
        " where list_kind = 'appeal'",
    ) == [("none", "potential", "art9_appeal", appeal_id)]

    upheld_id, _ = appeals.file_appeal(url, P1, period, upheld, "asks why not potential", "Wang Fang", received_at=received)
    assert (
        appeals.answer_appeal(
            url, upheld_id, "Zhao Lei", "one order in twelve months; potential needs two", answered_at=answered_at
        )
        is None
    )
    ((outcome_kind, evidence),) = query(
        url, "select outcome, evidence from history.appeal_answers where appeal_id = %s", (upheld_id,)
    )
    assert outcome_kind == "upheld" and evidence["list"] == "appeal"
    # the answer carries the grading basis dbt computed: every indicator the policy looks at
    assert {"spend", "order_count"} <= {item.get("item") for item in evidence["grading_basis"]}
    states = {s.appeal_id: s.status for s in appeals.appeal_states(url, date(2026, 10, 12))}
    assert states == {appeal_id: "answered", upheld_id: "answered"}
    assert dags_test(graded_warehouse.airflow, "tierhouse_appeals", "2026-10-13", echo=False).succeeded
    text = history.format_history(corrected, history.customer_history(url, corrected))
    assert "appeal via service desk, due 2026-10-10" in text and "answer corrected by Zhao Lei -> potential" in text


def test_backfill_dag_grades_twelve_months_in_order_each_policy_on_its_calendar(
    graded_warehouse: GradedWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = graded_warehouse.url
    # the pipeline functions find the warehouse through each job's Airflow connection, as in a task
    for job in JOBS:
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.warehouse_conn_id(job).upper()}", login_url(url, job).url())
    run = dags_test(graded_warehouse.airflow, "tierhouse_backfill", conf={"start": "2025-09", "end": "2026-08"}, echo=False)
    assert run.succeeded, run.output[-6000:]
    lists = query(
        url,
        "select policy, array_agg(to_char(period_month, 'YYYY-MM') order by period_month) from history.grading_runs"
        " where list_kind = 'initial' and airflow_run_id = %s group by policy",
        (run.run_id,),
    )
    months = [f"{2025 + (8 + n) // 12}-{(8 + n) % 12 + 1:02d}" for n in range(12)]
    quarter_ends = [m for m in months if int(m[5:]) % 3 == 0]
    # P1 lists every month (Art. 7); P2 and P3 only quarter ends (their calendars)
    assert dict(lists) == {P1: months, "service_levels": quarter_ends, "abcd": quarter_ends}
    # oldest first: each list was recorded after the month before it
    assert query(
        url,
        "select bool_and(created_at > prev) from (select created_at, lag(created_at) over (partition by policy order by period_month)"
        " as prev from history.grading_runs where airflow_run_id = %s) as ordered where prev is not null",
        (run.run_id,),
    ) == [(True,)]
    # drift was audited for every month with a published list before it: GE ran the drift suite
    # drift audited for every month with a list before it: P1 11 of 12, P2 and P3 3 of 4 each
    assert run.output.count("checkpoint publish_tier_drift: passed") == 17
    # a second pass over the same months publishes nothing new
    assert {o["status"] for o in pipeline.backfill(P1, months, "again")} == {"unchanged"}

    p1 = next(p for p in policy.discover() if p.name == P1)
    tiers, audit = sorted({t.code for t in p1.tiers} | {"none"}), p1.document["audit"]
    period = parse_period(graded_warehouse.period)
    assert pipeline.audit_drift(url, P1, period, tiers, audit) == 1  # September against August, and it passes
    try:
        query(
            url,
            "update marts.fct_customer_tiers set tier = 'top' where policy = %s and period_month = %s and tier = 'none'",
            (P1, period),
        )
        with pytest.raises(quality.QualityGateFailed, match="kl_divergence"):
            pipeline.audit_drift(url, P1, period, tiers, audit)
    finally:
        assert run_dbt(url, "build", "--quiet", "--select", "fct_customer_tiers", "--exclude", "test_type:unit").returncode == 0


MONTHLY_SQL = (
    "select customer_month_id, spend, order_count, special_orders, customised_spend, enterprise_spend,"
    " max_order_value, positive_order_values from intermediate.int_customer_monthly order by 1"
)


def test_incremental_monthly_aggregates_take_late_data_and_equal_a_full_rebuild(graded_warehouse: GradedWarehouse) -> None:
    url = graded_warehouse.url
    # a March sale placed while its member's grading consent stood: only such orders are aggregated
    ((receipt, member, amount),) = query(
        url,
        "select receipt_no, member_id, amount from raw.pos_sales_lines as sales"
        " where sold_at >= '2026-03-01' and sold_at < '2026-04-01' and member_id is not null and line_no = 1"
        " and exists (select 1 from intermediate.int_grading_consents as consents where consents.member_id = sales.member_id"
        " and consents.consent_from <= sales.sold_at and (consents.consent_to is null or consents.consent_to > sales.sold_at))"
        " order by receipt_no limit 1",
    )
    march_spend = (
        "select sum(spend) from intermediate.int_customer_monthly where customer_key = %s and activity_month = '2026-03-01'"
    )
    (before,) = query(url, march_spend, (member,))
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
        (after,) = query(url, march_spend, (member,))
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
        " values ('PLANTED-1', 1, '2026-09-15 12:00', 'SH01', 'M000001', 'X', 'wedding', 'bespoke', 1, 6000000, 6000000,"
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
        assert f"{P1} {graded_warehouse.period}: checkpoint publish_customer_tiers failed" in run.output
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
