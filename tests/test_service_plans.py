"""Art. 10-12 (and 001's and 003's service content): each tier's service plan is part of the
policy file, so `dim_policy_tiers` can publish it to the service teams as the policy states it."""

from __future__ import annotations

from tierhouse.grading import policy


def _service_plans(name: str) -> dict[str, dict]:
    newest = max((p for p in policy.discover() if p.name == name), key=lambda p: p.version)
    return {code: spec["service"] for code, spec in newest.document["tiers"].items()}


def test_every_tier_of_every_shipped_policy_has_a_service_plan() -> None:
    for shipped in policy.discover():
        for code, spec in shipped.document["tiers"].items():
            assert spec.get("service", {}).get("items"), (shipped.name, code)


def test_p1_tiers_carry_the_service_plans_of_articles_10_to_12() -> None:
    plans = _service_plans("highend_flower")
    assert plans["top"]["follow_up"] == "monthly"  # Art. 10
    assert "dedicated florist" in plans["top"]["items"]
    assert plans["high"]["follow_up"] == "quarterly"  # Art. 11
    assert "priority production scheduling" in plans["high"]["items"]
    assert "demand tracking" in plans["potential"]["items"]  # Art. 12
