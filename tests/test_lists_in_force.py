"""P1 Art. 8: the confirmed list (after the review window) is what the business acts on. BI reads
only lists in force, as its own login: an initial list under review is for the reviewers. P2
(seed 001, "评估结果经相关部门审核确认后"): a list takes effect only once an approver approves it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.support import as_login, query
from tierhouse.lifecycle import publish, review
from tierhouse.privacy import access
from tierhouse.warehouse import migrate
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url

JUN, SEP, OCT = date(2026, 6, 1), date(2026, 9, 1), date(2026, 10, 1)
P2 = "service_levels"


@pytest.fixture
def granted(empty_db: WarehouseUrl) -> WarehouseUrl:
    migrate.migrate(empty_db)
    # the tier labels publish_run joins, as dbt builds them (granted below, as to dbt's relations)
    query(empty_db, "create table marts.dim_policy_tiers (policy text, policy_version integer, tier text, tier_label text)")
    access.apply(empty_db)
    return empty_db


def publish_list(url: WarehouseUrl, policy: str, period: date, kind: str, tiers: dict[str, str]) -> None:
    snapshot = [(key, tier, 1, "rule", None, None, None, None) for key, tier in sorted(tiers.items())]
    with connect(url) as conn, conn.cursor() as cur:
        run_id, _ = publish.record_run(cur, policy, 1, period, kind, None, "sha", "fingerprint", snapshot)
        publish.publish_run(cur, run_id)


def lists(url: WarehouseUrl, job: str, relation: str) -> set[tuple]:
    with as_login(url, job) as conn, conn.cursor() as cur:
        cur.execute(f"select distinct policy, period_month, list_kind from {relation}")
        return set(cur.fetchall())


def test_bi_never_sees_a_list_under_review(granted: WarehouseUrl) -> None:
    publish_list(granted, "highend_flower", SEP, "initial", {"M1": "none", "M2": "high"})
    # under review: BI sees nothing of it, not even through the table it is granted
    for relation in ("published.customer_tiers", "published.current_customer_tiers", "published.tier_distribution"):
        assert lists(granted, "bi", relation) == set()
    assert lists(granted, "review", "published.customer_tiers") == {("highend_flower", SEP, "initial")}

    publish_list(granted, "highend_flower", SEP, "confirmed", {"M1": "potential", "M2": "high"})
    publish_list(granted, "highend_flower", OCT, "initial", {"M1": "high", "M2": "high"})
    publish_list(granted, "abcd", SEP, "initial", {"M1": "D", "M2": "B"})  # no review step: in force at once
    assert lists(granted, "bi", "published.customer_tiers") == {("highend_flower", SEP, "confirmed"), ("abcd", SEP, "initial")}
    # per policy, the newest list in force: September's confirmed grades while October is reviewed
    with as_login(granted, "bi") as conn, conn.cursor() as cur:
        cur.execute("select policy, period_month, customer_key, tier from published.current_customer_tiers order by 1, 3")
        assert cur.fetchall() == [
            ("abcd", SEP, "M1", "D"),
            ("abcd", SEP, "M2", "B"),
            ("highend_flower", SEP, "M1", "potential"),
            ("highend_flower", SEP, "M2", "high"),
        ]
        cur.execute("select count(*) from published.customer_tiers where not in_force")
        assert cur.fetchone() == (0,)
    # the reviewers (and the gate, which checks every list) read the list under review
    for job in ("review", "gate"):
        assert ("highend_flower", OCT, "initial") in lists(granted, job, "published.customer_tiers")

    publish_list(granted, "highend_flower", OCT, "confirmed", {"M1": "high", "M2": "high"})
    assert lists(granted, "bi", "published.current_customer_tiers") == {
        ("highend_flower", OCT, "confirmed"),
        ("abcd", SEP, "initial"),
    }


def test_a_list_of_a_policy_without_its_file_is_not_published(granted: WarehouseUrl) -> None:
    with pytest.raises(publish.PublishError, match="no policy file for nosuch v1"):
        publish_list(granted, "nosuch", SEP, "initial", {"M1": "a"})
    assert query(granted, "select count(*) from published.customer_tiers") == [(0,)]


def test_lists_published_before_the_migration_under_review_are_taken_out_of_bis_sight(granted: WarehouseUrl) -> None:
    publish_list(granted, "highend_flower", SEP, "initial", {"M1": "none"})
    publish_list(granted, "highend_flower", SEP, "confirmed", {"M1": "none"})
    publish_list(granted, "highend_flower", OCT, "initial", {"M1": "high"})
    publish_list(granted, "abcd", SEP, "initial", {"M1": "D"})
    query(granted, "update published.customer_tiers set in_force = true")  # as before the column existed
    with connect(granted) as conn, conn.cursor() as cur:
        cur.execute(next(m.sql for m in migrate.migrations() if m.name == "lists_in_force"))
    assert query(granted, "select policy, period_month, list_kind, in_force from published.customer_tiers order by 1, 2") == [
        ("abcd", SEP, "initial", True),
        ("highend_flower", SEP, "confirmed", True),
        ("highend_flower", OCT, "initial", False),
    ]


def test_a_list_that_requires_approval_takes_effect_only_when_an_approver_approves_it(granted: WarehouseUrl) -> None:
    reviewer = login_url(granted, "review")
    publish_list(granted, P2, JUN, "approved", {"M1": "level_3", "M2": "level_2"})
    publish_list(granted, P2, SEP, "initial", {"M1": "level_4", "M2": "level_1"})
    review.add_review(reviewer, P2, SEP, "M1", "level_2", "Li Wei", "corporate account moved to a new member number")
    _, deadline = review.review_window(reviewer, P2, SEP)
    # never confirmed by time-out, however long it waits: June's approved grades stay in force
    assert review.confirm_due_lists(granted, deadline + timedelta(days=90)) == []
    assert lists(granted, "bi", "published.current_customer_tiers") == {(P2, JUN, "approved")}
    assert [s.status for s in review.approval_states(reviewer, deadline)] == ["awaiting"]
    assert review.check_approvals(granted, deadline) == {"awaiting": 1}
    with pytest.raises(review.ApprovalsOverdue, match=f"^1 list.*: {P2} 2026-09 \\(window closed {deadline}\\)$"):
        review.check_approvals(granted, deadline + timedelta(days=1))

    for approver, comment, match in (("  ", "ok", "approver's name"), ("Zhou Min", " ", "needs a comment")):
        with pytest.raises(review.ReviewError, match=match):
            review.approve(reviewer, P2, SEP, approver, comment)
    publish_list(granted, "highend_flower", SEP, "initial", {"M1": "none"})
    with pytest.raises(review.ReviewError, match="highend_flower v1 requires no approval"):
        review.approve(reviewer, "highend_flower", SEP, "Zhou Min", "ok")
    outcome = review.approve(reviewer, P2, SEP, "Zhou Min", "service levels checked with the key-account team")
    assert outcome.status == "approved"
    # in force, with the review recorded in its window applied
    with as_login(granted, "bi") as conn, conn.cursor() as cur:
        cur.execute(
            "select period_month, list_kind, customer_key, tier from published.current_customer_tiers where policy = %s", (P2,)
        )
        assert sorted(cur.fetchall()) == [(SEP, "approved", "M1", "level_2"), (SEP, "approved", "M2", "level_1")]
    assert query(granted, "select approver, comment, run_id::text from history.approvals") == [
        ("Zhou Min", "service levels checked with the key-account team", outcome.run_id)
    ]
    assert query(granted, "select customer_key, from_tier, to_tier, rule from history.tier_changes") == [
        ("M1", "level_4", "level_2", "art8_review")
    ]
    [state] = review.approval_states(reviewer, deadline + timedelta(days=1))
    assert (state.status, state.approver) == ("approved", "Zhou Min")
    # once: a second approval, or a review after it, is refused with who approved
    with pytest.raises(review.ReviewError, match="already approved by Zhou Min on "):
        review.approve(reviewer, P2, SEP, "Zhou Min", "again")
    with pytest.raises(review.ReviewError, match="already approved; use an appeal"):
        review.add_review(reviewer, P2, SEP, "M2", "level_2", "Li Wei", "late thought")
    assert query(granted, "select count(*) from history.approvals") == [(1,)]
