"""Writes dbt unit tests for every band edge and tier threshold of every shipped policy.

For each condition ``indicator op threshold`` the tests put a customer just below, exactly at
and just above the threshold, with the band's other conditions held true, and expect what the
independent reference evaluator (plugins/tierhouse/devtools/reference_grading.py) says. The file is generated so it
cannot drift from the policy files; test_band_edges.py checks it is current.

    .venv/bin/python -m tierhouse.devtools.band_edges    # regenerate after changing a policy file
"""

from __future__ import annotations

from decimal import Decimal

import yaml

from tierhouse.devtools import reference_grading as ref
from tierhouse.grading import policy as policy_files
from tierhouse.grading.policy import Condition, Policy
from tierhouse.settings import DBT_PROJECT_DIR

TARGET = DBT_PROJECT_DIR / "models" / "intermediate" / "_intermediate__policy_edge_unit_tests.yml"
WHOLE_NUMBERS = {"order_count", "big_ticket_orders", "active_months", "tenure_months", "days_since_last_order"}
FRACTIONS = {
    "big_ticket_share",
    "custom_share",
    "special_needs_share",
    "enterprise_share",
    "repurchase_rate",
    "on_time_payment_share",
}


def step(indicator: str) -> Decimal:
    if indicator in WHOLE_NUMBERS or indicator.startswith(policy_files.SCORE_PREFIX):
        return Decimal(1)
    return Decimal("0.0001") if indicator in FRACTIONS else Decimal("0.01")


def satisfying(condition: Condition) -> Decimal:
    threshold, delta = Decimal(str(condition.threshold)), step(condition.indicator)
    return threshold + delta if condition.operator in (">=", ">") else threshold - delta


def failing(condition: Condition) -> Decimal:
    threshold, delta = Decimal(str(condition.threshold)), step(condition.indicator)
    return threshold - delta if condition.operator in (">=", ">") else threshold + delta


def edge_values(condition: Condition) -> list[Decimal]:
    threshold, delta = Decimal(str(condition.threshold)), step(condition.indicator)
    return [threshold - delta, threshold, threshold + delta]


def _met(condition: Condition, value: Decimal) -> bool:
    """The reference evaluator's verdict on one condition alone."""
    single = (Condition(condition.condition_id, "all", condition.indicator, condition.operator, condition.threshold),)
    return ref.rule_holds(single, {condition.indicator: value})


def _number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def score_tests(policy: Policy) -> list[dict]:
    tests = []
    pv = policy.policy_version_id
    for score in policy.scores:
        indicators = sorted({c.indicator for band in score.bands for c in band.conditions})
        given_values, expected = [], []
        for band in score.bands:
            for condition in band.conditions:
                for value in edge_values(condition):
                    case = f"{score.name}/{band.band}/{condition.condition_id}={value}"
                    values = {name: Decimal(0) for name in indicators}
                    # the band's other conditions hold; other 'any' routes do not, so this edge decides
                    for other in band.conditions:
                        if other is not condition:
                            values[other.indicator] = satisfying(other) if other.match_group == "all" else failing(other)
                    values[condition.indicator] = value
                    chosen = next(b for b in score.bands if ref.rule_holds(b.conditions, values))
                    given_values += [
                        {"customer_period_id": case, "policy_version_id": pv, "indicator": name, "indicator_value": _number(v)}
                        for name, v in sorted(values.items())
                    ]
                    expected.append(
                        {
                            "customer_period_id": case,
                            "score": score.name,
                            "band": chosen.band,
                            "points": _number(Decimal(str(chosen.points))),
                        }
                    )
        tests.append(
            {
                "name": f"band_edges_{policy.name}_v{policy.version}_{score.name}",
                "description": f"{pv} score {score.name}: a value just below, at and just above every band threshold.",
                "model": "int_customer_scores",
                "given": [
                    {"input": "ref('int_customer_indicator_values')", "rows": given_values},
                    {
                        "input": "ref('stg_policy__score_bands')",
                        "rows": [
                            {
                                "policy_version_id": pv,
                                "score": score.name,
                                "score_weight": _number(Decimal(str(score.weight))),
                                "band": b.band,
                                "band_rank": b.rank,
                                "points": _number(Decimal(str(b.points))),
                            }
                            for b in score.bands
                        ],
                    },
                    {
                        "input": "ref('int_policy_conditions')",
                        "rows": [
                            {
                                "policy_version_id": pv,
                                "rule_kind": "band",
                                "score": score.name,
                                "band": b.band,
                                "condition_id": c.condition_id,
                                "match_group": c.match_group,
                                "indicator": c.indicator,
                                "operator": c.operator,
                                "threshold": _number(Decimal(str(c.threshold))),
                            }
                            for b in score.bands
                            for c in b.conditions
                        ],
                    },
                ],
                "expect": {"rows": expected},
            }
        )
    return tests


def tier_test(policy: Policy) -> dict:
    pv = policy.policy_version_id
    values, expected = [], []
    for tier in policy.tiers:
        for condition in tier.conditions:
            for value in edge_values(condition):
                case = f"{tier.code}/{condition.condition_id}={value}"
                values.append(
                    {
                        "customer_period_id": case,
                        "policy_version_id": pv,
                        "indicator": condition.indicator,
                        "indicator_value": _number(value),
                    }
                )
                # every condition on this indicator, in any tier, sees the same value
                for other_tier in policy.tiers:
                    for other in other_tier.conditions:
                        if other.indicator == condition.indicator:
                            is_met = _met(other, value)
                            expected.append(
                                {
                                    "customer_period_id": case,
                                    "tier": other_tier.code,
                                    "condition_id": other.condition_id,
                                    "is_met": is_met,
                                }
                            )
    return {
        "name": f"tier_thresholds_{policy.name}_v{policy.version}",
        "description": f"{pv}: every tier condition just below, at and just above its threshold.",
        "model": "int_tier_rule_checks",
        "given": [
            {"input": "ref('int_customer_rule_values')", "rows": values},
            {
                "input": "ref('int_policy_conditions')",
                "rows": [
                    {
                        "policy_version_id": pv,
                        "rule_kind": "tier",
                        "rule": t.code,
                        "tier_rank": t.rank,
                        "condition_id": c.condition_id,
                        "match_group": c.match_group,
                        "indicator": c.indicator,
                        "operator": c.operator,
                        "threshold": _number(Decimal(str(c.threshold))),
                    }
                    for t in policy.tiers
                    for c in t.conditions
                ],
            },
        ],
        "expect": {"rows": expected},
    }


def tier_rule_test(policy: Policy) -> dict:
    """How each tier's ``all`` and ``any`` conditions combine (e.g. P1 Art. 6(三): near-high spend
    is required, the big order and the customisation tendency are alternatives): for every
    condition, a customer with the tier's other conditions as in the rule's plainest success,
    and this one failing, then holding; the reference evaluator says whether the tier is met."""
    pv, period = policy.policy_version_id, f"{policy.policy_version_id}/2026-10"
    features, checks, expected = [], [], []
    for tier in policy.tiers:
        for condition in tier.conditions:
            for outcome, value in (("fails", failing(condition)), ("holds", satisfying(condition))):
                case = f"{tier.code}/{condition.condition_id}/{outcome}"
                values: dict[str, Decimal] = {}
                first_other_route = next((c for c in tier.conditions if c.match_group == "any" and c is not condition), None)
                for other in tier.conditions:
                    # the other 'all' conditions hold; of the 'any' routes only one other does, and
                    # none when this condition is itself a route, so that it alone decides
                    keep = other.match_group == "all" or (condition.match_group == "all" and other is first_other_route)
                    values[other.condition_id] = satisfying(other) if keep else failing(other)
                values[condition.condition_id] = value
                met = {c.condition_id: _met(c, values[c.condition_id]) for c in tier.conditions}
                features.append(
                    {"customer_period_id": case, "grading_period_id": period, "policy_version_id": pv, "policy": policy.name,
                     "policy_version": policy.version, "period_month": "2026-10-01", "customer_key": case}
                )  # fmt: skip
                checks += [
                    {"customer_period_id": case, "tier": tier.code, "tier_rank": tier.rank, "tier_label": tier.label,
                     "condition_id": c.condition_id, "match_group": c.match_group, "is_met": met[c.condition_id]}
                    for c in tier.conditions
                ]  # fmt: skip
                # the tier's rule with each condition reading its own value
                by_id = tuple(
                    Condition(c.condition_id, c.match_group, c.condition_id, c.operator, c.threshold) for c in tier.conditions
                )
                holds = ref.rule_holds(by_id, values)
                expected.append({"customer_period_id": case, "tier": tier.code if holds else policy_files.NO_TIER})
    return {
        "name": f"tier_rules_{policy.name}_v{policy.version}",
        "description": f"{pv}: each tier's all/any conditions combine as the policy file writes them.",
        "model": "fct_customer_tiers",
        "given": [
            {"input": "ref('int_customer_period_features')", "rows": features},
            {"input": "ref('int_grading_population')", "rows": []},
            {"input": "ref('int_tier_rule_checks')", "rows": checks},
            {"input": "ref('int_customer_rule_values')", "rows": []},
            {"input": "ref('int_grading_periods')", "rows": [{"grading_period_id": period}]},
        ],
        "expect": {"rows": expected},
    }


def render() -> str:
    tests = []
    for policy in policy_files.discover():
        tests += score_tests(policy)
        tests.append(tier_test(policy))
        tests.append(tier_rule_test(policy))
    header = "# Generated by `python -m tierhouse.devtools.band_edges` from policies/*.yml — do not edit by hand.\n"
    return header + yaml.safe_dump({"version": 2, "unit_tests": tests}, allow_unicode=True, sort_keys=False, width=200)


def main() -> None:
    TARGET.write_text(render())
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
