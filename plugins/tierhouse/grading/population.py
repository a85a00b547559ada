"""Who a period grades: the check before a list's publish audit that a period with customers
grades some of them, failing with the exclusion counts by reason (``marts.fct_grading_exclusions``)
instead of a bare row count, so a missing CRM consent file is named where it bites."""

from __future__ import annotations

from datetime import date

from tierhouse.errors import TierhouseError
from tierhouse.warehouse.connection import WarehouseUrl, connect

#: Exclusion reasons that a customer file with grading consent would remove.
CONSENT_REASONS = frozenset({"no_consent_record", "no_grading_consent"})
CONSENT_HINT = (
    "grading needs a consent record per customer, with grading consent, in the CRM customer file "
    "(see README: Grading your own customers)"
)


class NobodyGraded(TierhouseError, RuntimeError):
    """A period has customers, but every one of them is excluded from grading."""


def graded_and_excluded(url: WarehouseUrl, policy: str, period_month: date) -> tuple[int, dict[str, int]]:
    """Customers graded for the period, and those excluded counted by reason."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            select null as exclusion_reason, count(*) from marts.fct_customer_tiers
            where policy = %(policy)s and period_month = %(period_month)s
            union all
            select exclusion_reason, count(*) from marts.fct_grading_exclusions
            where policy = %(policy)s and period_month = %(period_month)s
            group by exclusion_reason
            """,
            {"policy": policy, "period_month": period_month},
        )
        rows = cur.fetchall()
    graded = next(count for reason, count in rows if reason is None)
    return graded, {reason: count for reason, count in rows if reason is not None}


def require_graded_customers(url: WarehouseUrl, policy: str, period_month: date) -> int:
    """The number of graded customers; :class:`NobodyGraded` when the period has customers and
    none is graded. A period without customers at all is left to the publish audit."""
    graded, excluded = graded_and_excluded(url, policy, period_month)
    if graded == 0 and excluded:
        reasons = ", ".join(
            f"{reason} {count:,}" for reason, count in sorted(excluded.items(), key=lambda item: (-item[1], item[0]))
        )
        hint = f" — {CONSENT_HINT}" if CONSENT_REASONS & excluded.keys() else ""
        total = sum(excluded.values())
        customers = f"{total:,} customer{'' if total == 1 else 's'}"
        raise NobodyGraded(f"{period_month:%Y-%m} {policy}: {customers}, none graded: {reasons}{hint}")
    return graded
