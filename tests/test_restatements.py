"""Fault matrix (6): late data for a published month. The real publish task leaves the list in
force as it is and records a restatement candidate (once, however often the run repeats);
`tierhouse restatements` lists it with the customers whose grade would change; a person accepts
or rejects it, and the decision is recorded, append-only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg2
import pytest

from tests.support import query
from tierhouse.cli.main import main
from tierhouse.grading import policy
from tierhouse.lifecycle import publish, restatements
from tierhouse.privacy import access
from tierhouse.settings import POLICIES_DIR
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url

POLICY, PERIOD = "abcd", "2026-09"  # P3 has no review step: a decision may follow at once
TIERS = {"M000001": ("A", 1), "M000002": ("B", 2), "M000003": ("C", 3), "M000004": ("D", 4)}
PUBLISHED = "select customer_key, tier, list_kind from published.customer_tiers order by customer_key"


def plant_marts(url: WarehouseUrl) -> None:
    """What dbt builds for the publish task: the candidate tiers, the features they came from,
    the tier labels."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "create table marts.fct_customer_tiers (policy text, policy_version integer, period_month date,"
            " customer_key text, tier text, tier_rank integer, decided_by text, composite_score numeric,"
            " consumption_attribute text, demand_feature text, cooperation_feature text, dbt_invocation_id text)"
        )
        cur.execute(
            "create table marts.fct_customer_features (policy text, period_month date, customer_period_id text, spend numeric)"
        )
        cur.execute("create table marts.dim_policy_tiers (policy text, policy_version integer, tier text, tier_label text)")
        cur.executemany(
            "insert into marts.fct_customer_tiers values ('abcd', 1, '2026-09-01', %s, %s, %s, 'rule', 5.0, null, null, null, 'dbt-1')",
            [(key, tier, rank) for key, (tier, rank) in TIERS.items()],
        )
        cur.executemany(
            "insert into marts.fct_customer_features values ('abcd', '2026-09-01', %s, 1000)", [(key,) for key in TIERS]
        )
        cur.execute("insert into marts.dim_policy_tiers select 'abcd', 1, t, t from unnest(array['A', 'B', 'C', 'D']) as t")
    policy.load_policies(url, [policy.parse_policy(POLICIES_DIR / POLICY / "v1.yml")])
    access.apply(url)


def late_data(url: WarehouseUrl, moves: dict[str, tuple[str, int]]) -> None:
    """A late order arrives and dbt rebuilds the month: some customers' tiers move."""
    for key, (tier, rank) in moves.items():
        query(url, "update marts.fct_customer_tiers set tier = %s, tier_rank = %s where customer_key = %s", (tier, rank, key))
        query(url, "update marts.fct_customer_features set spend = spend + 50000 where customer_period_id = %s", (key,))


@pytest.fixture
def published_month(scratch_db: WarehouseUrl, monkeypatch: pytest.MonkeyPatch) -> WarehouseUrl:
    from tierhouse.orchestration import pipeline

    plant_marts(scratch_db)
    monkeypatch.setenv("AIRFLOW_CONN_TIERHOUSE_WAREHOUSE_PUBLISH", login_url(scratch_db, "publish").url())
    monkeypatch.setenv("WAREHOUSE_URL", scratch_db.url())  # the CLI's people's commands, as the review login
    assert pipeline.publish_tiers(POLICY, PERIOD, "scheduled-1")["status"] == "published"
    return scratch_db


def test_late_data_is_a_candidate_listed_with_the_customers_whose_grade_would_change(
    published_month: WarehouseUrl, capsys
) -> None:
    from tierhouse.orchestration import pipeline

    url = published_month
    before = query(url, PUBLISHED)
    late_data(url, {"M000002": ("A", 1), "M000004": ("C", 3)})
    for attempt in ("late-1", "late-2"):  # the run repeats (a retry, the next asset trigger): one candidate
        outcome = pipeline.publish_tiers(POLICY, PERIOD, attempt)
        assert outcome["status"] == "restatement_candidate"
    assert query(url, PUBLISHED) == before
    assert query(url, "select changed_customers, airflow_run_id from history.restatement_candidates") == [(2, "late-1")]

    (candidate,) = restatements.pending(url)
    assert (candidate.policy, f"{candidate.period_month:%Y-%m}", candidate.list_in_force) == (POLICY, PERIOD, "initial")
    assert candidate.changes == (
        restatements.Change("M000002", "B", "A"),
        restatements.Change("M000004", "D", "C"),
    )
    assert main(["restatements"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{candidate.candidate_id}  abcd 2026-09  detected ")
    assert out[0].endswith("2 customers would change against the initial list in force")
    assert [line.split() for line in out[1:]] == [["M000002", "B", "->", "A"], ["M000004", "D", "->", "C"]]


def test_a_rejected_candidate_is_recorded_and_the_list_stays(published_month: WarehouseUrl, capsys) -> None:
    from tierhouse.orchestration import pipeline

    url = published_month
    before = query(url, PUBLISHED)
    late_data(url, {"M000003": ("B", 2)})
    pipeline.publish_tiers(POLICY, PERIOD, "late-1")
    (candidate,) = restatements.pending(url)
    assert main(["restatements", "reject", "--candidate", candidate.candidate_id, "--decided-by", "Li Wei"]) == 2
    assert capsys.readouterr().err == "tierhouse: restatements reject needs --reason\n"
    args = ["--candidate", candidate.candidate_id, "--decided-by", "Li Wei", "--reason", "order booked to the wrong month"]
    assert main(["restatements", "reject", *args]) == 0
    assert capsys.readouterr().out == f"restatement {candidate.candidate_id} rejected; the list in force stays\n"
    assert query(url, PUBLISHED) == before
    assert restatements.pending(url) == []
    assert query(url, "select decision, decided_by, reason, run_id from history.restatement_decisions") == [
        ("rejected", "Li Wei", "order booked to the wrong month", None)
    ]
    assert main(["restatements", "accept", *args]) == 2  # decided once
    assert (
        capsys.readouterr().err == f"tierhouse: restatement candidate {candidate.candidate_id} was already rejected by Li Wei\n"
    )
    # the same late results again are the candidate already decided, not a new one
    pipeline.publish_tiers(POLICY, PERIOD, "late-2")
    assert restatements.pending(url) == [] and query(url, "select count(*) from history.restatement_candidates") == [(1,)]
    with pytest.raises(psycopg2.errors.RaiseException, match="history is append-only"):
        query(url, "update history.restatement_decisions set decision = 'accepted'")


def test_an_accepted_candidate_is_published_as_its_own_list(published_month: WarehouseUrl, capsys) -> None:
    from tierhouse.orchestration import pipeline

    url = published_month
    late_data(url, {"M000001": ("B", 2)})
    pipeline.publish_tiers(POLICY, PERIOD, "late-1")
    (candidate,) = restatements.pending(url)
    # a task's login (the publisher) cannot decide: it is a person's decision
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        restatements.decide(login_url(url, "publish"), candidate.candidate_id, "accepted", "publish task", "automatic")
    args = ["--candidate", candidate.candidate_id, "--decided-by", "Li Wei", "--reason", "late wedding order confirmed"]
    assert main(["restatements", "accept", *args]) == 0
    (run_id,) = query(url, "select run_id::text from history.restatement_decisions where decision = 'accepted'")[0]
    assert capsys.readouterr().out == f"restatement {candidate.candidate_id} accepted; list {run_id} published\n"
    assert query(url, "select list_kind, snapshot_hash from history.grading_runs where run_id = %s", (run_id,)) == [
        ("restatement", candidate.snapshot_hash)
    ]
    published = query(url, PUBLISHED)
    assert published[0] == ("M000001", "B", "restatement") and len(published) == len(TIERS)
    with connect(url) as conn, conn.cursor() as cur:
        assert publish.current_run(cur, POLICY, date(2026, 9, 1)) == (run_id, "restatement")
    # the grading run repeats with the same data: nothing new to decide, the restated list stays
    pipeline.publish_tiers(POLICY, PERIOD, "late-2")
    assert restatements.pending(url) == [] and query(url, PUBLISHED) == published


def test_a_list_under_review_is_restated_only_once_confirmed(scratch_db: WarehouseUrl, tmp_path: Path) -> None:
    with connect(scratch_db) as conn, conn.cursor() as cur:
        run_id, _ = publish.record_run(
            cur, "highend_flower", 1, date(2026, 9, 1), "initial", None, "sha", "in",
            [("M000001", "high", 2, "rule", None, None, None, None)],
        )  # fmt: skip
        candidate_id = publish.record_restatement(
            cur, run_id, "in2", "hash", [("M000001", "top", 1, "rule", None, None, None, None)], None
        )
    access.apply(scratch_db)  # the decision runs the de-identification gate and the free-text check first
    with pytest.raises(restatements.RestatementError, match="still under review; decide once it is confirmed"):
        restatements.decide(login_url(scratch_db, "review"), candidate_id, "accepted", "Li Wei", "late order")
    assert query(scratch_db, "select count(*) from history.restatement_decisions") == [(0,)]
