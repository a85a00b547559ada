"""Tier summaries of a published list: customers, share and average spend per tier, for the
DAG logs, the demo and the CLI. Reads ``published.customer_tiers`` and the features dbt built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tierhouse.warehouse.connection import WarehouseUrl, connect


@dataclass(frozen=True)
class TierSummaryRow:
    tier: str
    tier_label: str
    customers: int
    share: Decimal
    avg_spend: Decimal


def tier_summary(url: WarehouseUrl, policy: str, period_month: date) -> list[TierSummaryRow]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            select p.tier, coalesce(p.tier_label, p.tier), count(*),
                   round(count(*)::numeric / sum(count(*)) over (), 4),
                   round(avg(f.spend), 2)
            from published.customer_tiers as p
            left join marts.fct_customer_features as f
                on f.policy = p.policy and f.policy_version = p.policy_version
                and f.period_month = p.period_month and f.customer_key = p.customer_key
            where p.policy = %s and p.period_month = %s
            group by p.tier, p.tier_rank, coalesce(p.tier_label, p.tier)
            order by p.tier_rank
            """,
            (policy, period_month),
        )
        return [TierSummaryRow(*row) for row in cur.fetchall()]


def format_summary(policy: str, period_month: date, rows: list[TierSummaryRow]) -> str:
    header = f"{'tier':<10} {'label':<8} {'customers':>9} {'share':>7} {'avg spend (CNY)':>16}"
    lines = [f"Tier summary — policy {policy}, period {period_month:%Y-%m}", header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.tier:<10} {row.tier_label:<8} {row.customers:>9} {row.share:>7.1%} {row.avg_spend:>16,.2f}")
    total = sum(r.customers for r in rows)
    lines.append(f"{'total':<10} {'':<8} {total:>9}")
    return "\n".join(lines)
