"""``tierhouse explain``: why a customer has the tier they have, from the grading basis."""

from __future__ import annotations

from datetime import date

from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.rows import fetch_dicts


def _fetch(cur, sql: str, params: tuple) -> list[dict]:
    cur.execute(sql, params)
    return fetch_dicts(cur)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    text = f"{value:,.4f}".rstrip("0").rstrip(".") if not isinstance(value, (str, bool, int)) else str(value)
    return text


def explain(url: WarehouseUrl, customer_key: str, policy: str | None = None, period_month: date | None = None) -> str:
    """The basis of one customer's grades (every policy, or one), for one period or the latest."""
    with connect(url) as conn, conn.cursor() as cur:
        tiers = _fetch(
            cur,
            """
            select * from marts.fct_customer_tiers
            where customer_key = %s and (%s::text is null or policy = %s)
              and period_month = coalesce(%s::date, (select max(period_month) from marts.fct_customer_tiers))
            order by policy
            """,
            (customer_key, policy, policy, period_month),
        )
        excluded = _fetch(
            cur,
            """
            select * from marts.fct_grading_exclusions
            where customer_key = %s and (%s::text is null or policy = %s)
              and period_month = coalesce(%s::date, (select max(period_month) from marts.fct_customer_tiers))
            order by policy
            """,
            (customer_key, policy, policy, period_month),
        )
        lines: list[str] = []
        for row in excluded:
            lines.append(
                f"{row['policy']} v{row['policy_version']} {row['period_month']:%Y-%m}: not graded ({row['exclusion_reason']})"
            )
        for tier in tiers:
            lines.append("")
            lines.append(
                f"{tier['policy']} v{tier['policy_version']}, {tier['period_month']:%Y-%m}: "
                f"{tier['tier']} ({tier['tier_label']}) — {tier['decided_by']}"
            )
            if tier["composite_score"] is not None:
                lines.append(f"  composite score {_fmt(tier['composite_score'])}")
            if tier["consumption_attribute"]:
                lines.append(
                    f"  labels: {tier['consumption_attribute']} / {tier['demand_feature']} / {tier['cooperation_feature']}"
                )
            basis = _fetch(
                cur,
                "select * from marts.fct_grading_basis where customer_period_id = %s order by item_kind, item",
                (tier["customer_period_id"],),
            )
            for item in basis:
                if item["item_kind"] == "indicator":
                    lines.append(f"  indicator {item['item']:<24} {_fmt(item['item_value'])}")
                elif item["item_kind"] == "score":
                    lines.append(
                        f"  score     {item['item']:<24} band {item['band']:<10} points {_fmt(item['points'])}"
                        f" x weight {_fmt(item['weight'])} = {_fmt(item['weighted_points'])}"
                    )
            checks = _fetch(
                cur,
                "select * from marts.fct_tier_rule_checks where customer_period_id = %s order by tier_rank, match_group, condition_id",
                (tier["customer_period_id"],),
            )
            for check in checks:
                mark = "met    " if check["is_met"] else "not met"
                lines.append(
                    f"  rule {check['tier']:<10} [{check['match_group']}] {check['condition_id']:<24} {mark}"
                    f" ({check['indicator']} {_fmt(check['indicator_value'])} {check['operator']} {_fmt(check['threshold'])})"
                )
    if not lines:
        return f"no grades or exclusions for customer {customer_key!r} in that period"
    return "\n".join(lines).lstrip("\n")
