"""The generated band-edge dbt unit tests cover every threshold of the shipped policies."""

from __future__ import annotations

import yaml

from tierhouse.devtools import band_edges
from tierhouse.grading import policy


def test_generated_unit_tests_are_current_with_the_policy_files() -> None:
    assert band_edges.TARGET.read_text() == band_edges.render(), "run: .venv/bin/python -m tierhouse.devtools.band_edges"


def test_every_threshold_of_every_policy_has_its_three_edge_cases() -> None:
    tests = yaml.safe_load(band_edges.TARGET.read_text())["unit_tests"]
    cases = {row["customer_period_id"] for test in tests for row in test["expect"]["rows"]}
    for graded_policy in policy.discover():
        for score in graded_policy.scores:
            for band in score.bands:
                for condition in band.conditions:
                    for value in band_edges.edge_values(condition):
                        assert f"{score.name}/{band.band}/{condition.condition_id}={value}" in cases
        for tier in graded_policy.tiers:
            for condition in tier.conditions:
                for value in band_edges.edge_values(condition):
                    assert f"{tier.code}/{condition.condition_id}={value}" in cases


def test_the_source_documents_band_edges_land_where_the_text_says() -> None:
    """003: spend "超过10万元" is high, so exactly 100,000 is mid; tenure "超过5年" likewise."""
    tests = {t["name"]: t for t in yaml.safe_load(band_edges.TARGET.read_text())["unit_tests"]}
    spend = {r["customer_period_id"]: r["band"] for r in tests["band_edges_abcd_v1_spend"]["expect"]["rows"]}
    assert spend["spend/high/spend=100000.0"] == "mid"
    assert spend["spend/high/spend=100000.01"] == "high"
    assert spend["spend/mid/spend=50000.0"] == "mid"
    assert spend["spend/mid/spend=49999.99"] == "low"
    loyalty = {r["customer_period_id"]: r["band"] for r in tests["band_edges_abcd_v1_loyalty"]["expect"]["rows"]}
    assert loyalty["loyalty/high/tenure_months=60.0"] == "mid"
    assert loyalty["loyalty/high/tenure_months=61.0"] == "high"
    assert loyalty["loyalty/low/tenure_months=35.0"] == "low"
    assert loyalty["loyalty/low/tenure_months=36.0"] == "mid"


def test_p1_potential_needs_near_high_spend_and_repurchase_with_either_route() -> None:
    """000 Art. 6(三) "消费金额接近高端区间，有单次大额定制记录或明确的高端定制需求倾向，复购意愿较强":
    the near-high spend and the repurchase intent are required; "或" joins only the big custom
    order and the customisation tendency, so either of those alone (with the other two) suffices."""
    tests = {t["name"]: t for t in yaml.safe_load(band_edges.TARGET.read_text())["unit_tests"]}
    tier = {r["customer_period_id"]: r["tier"] for r in tests["tier_rules_highend_flower_v1"]["expect"]["rows"]}
    assert tier["potential/near_spend_band/fails"] == "none"
    assert tier["potential/order_count/fails"] == "none"
    # each route alone is enough, and the rule holds with both clauses met
    assert tier["potential/single_big_order/holds"] == "potential"
    assert tier["potential/customisation_tendency/holds"] == "potential"
    assert tier["potential/near_spend_band/holds"] == "potential"
    # with the other route failing, a failing route leaves the customer without the tier
    assert tier["potential/single_big_order/fails"] == "none"
    p1 = policy.parse_policy(band_edges.policy_files.settings.POLICIES_DIR / "highend_flower" / "v1.yml")
    potential = next(t for t in p1.tiers if t.code == "potential")
    groups = {c.condition_id: c.match_group for c in potential.conditions}
    assert groups == {
        "near_spend_band": "all",
        "order_count": "all",
        "single_big_order": "any",
        "customisation_tendency": "any",
    }
