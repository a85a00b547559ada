"""An independent implementation of the grading, in pandas and plain Python, for tests only.

It starts from the raw tables (what the loaders landed) and re-derives everything the dbt project
computes — unified order lines, refunds, identity resolution, consent (in time: only orders since
the grading consent count), features, banded scores, tiers, lapsed customers and the Art. 5
labels — without sharing a line of SQL with it. Only the policy files are
read through ``tierhouse.grading.policy`` (their parsing is tested on its own). If dbt and this agree
customer for customer over several generated data sets, both are very likely right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from dateutil.relativedelta import relativedelta

from tierhouse.grading.policy import COMPOSITE, NO_TIER, SCORE_PREFIX, Condition, Policy
from tierhouse.warehouse.connection import WarehouseUrl, session

CUSTOM_LEVELS = {"semi_custom", "bespoke"}
ENTERPRISE_LINES = {"business_event", "corporate_gift", "office_scene"}


def _round(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _frame(url: WarehouseUrl, sql: str) -> pd.DataFrame:
    with session(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _latest(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values("_loaded_at").drop_duplicates(keys, keep="last")


@dataclass
class Warehouse:
    orders: pd.DataFrame  # order_id, customer_key, ordered_at, net, customised, enterprise
    versions: pd.DataFrame  # member_id, phone_key, customer_type, consent, valid_from, valid_to
    special_orders: set[str]
    payments: pd.DataFrame  # order_ref, due_date, paid_at


def _order_lines(prefix: str, frame: pd.DataFrame, order_column: str, at_column: str) -> pd.DataFrame:
    """One channel's lines in a common shape."""
    return pd.DataFrame(
        {
            "order_id": prefix + frame[order_column],
            "member_id": frame["member_id"],
            "phone_key": frame["phone_key"],
            "at": frame[at_column],
            "line": frame["business_line"].fillna("unknown"),
            "level": frame["customization_level"].fillna("standard"),
            "amount": frame["amount"],
        }
    )


def load(url: WarehouseUrl) -> Warehouse:
    pos = _latest(_frame(url, "select * from raw.pos_sales_lines"), ["receipt_no", "line_no"])
    store = _order_lines("store:", pos, "receipt_no", "sold_at")
    shop_orders = _frame(url, "select * from raw.shop_orders where status in ('completed', 'refunded')")
    shop_lines = _frame(url, "select * from raw.shop_order_lines").merge(
        shop_orders[["order_id", "member_id", "phone_key", "status", "ordered_at", "updated_at"]], on="order_id"
    )
    sold = _order_lines("online:", shop_lines, "order_id", "ordered_at")
    refunded_rows = shop_lines[shop_lines["status"] == "refunded"]
    refunds = sold.loc[refunded_rows.index].assign(at=refunded_rows["updated_at"], amount=-refunded_rows["amount"])
    imported = _latest(_frame(url, "select * from raw.imported_order_lines"), ["order_id", "line_no"])
    imports = _order_lines("import:", imported, "order_id", "ordered_at")
    lines = pd.concat([store, sold, refunds, imports], ignore_index=True)

    orders = []
    for order_id, group in lines.groupby("order_id"):
        positive = group[group["amount"] > 0]
        zero_amount = bool((group["amount"] == 0).all())
        if positive.empty and not zero_amount:  # a refund whose sale is not loaded
            continue
        members = group["member_id"].dropna()
        phones = group["phone_key"].dropna()
        orders.append(
            {
                "order_id": order_id,
                "member_id": members.min() if not members.empty else None,
                "phone_key": phones.min() if not phones.empty else None,
                "ordered_at": group["at"].min() if zero_amount else positive["at"].min(),
                "zero_amount": zero_amount,
                "net": sum(group["amount"], Decimal(0)),
                "customised": sum(group.loc[group["level"].isin(CUSTOM_LEVELS), "amount"], Decimal(0)),
                "enterprise": sum(group.loc[group["line"].isin(ENTERPRISE_LINES), "amount"], Decimal(0)),
            }
        )
    order_frame = pd.DataFrame(orders)

    crm = _latest(_frame(url, "select * from raw.crm_members"), ["member_id", "updated_at"]).sort_values(
        ["member_id", "updated_at"]
    )
    crm["valid_to"] = crm.groupby("member_id")["updated_at"].shift(-1)
    versions = crm.rename(columns={"updated_at": "valid_from"})
    order_frame["customer_key"] = [_resolve(row, versions) for row in order_frame.itertuples()]

    custom = _latest(_frame(url, "select * from raw.custom_orders"), ["custom_order_id"])
    special = custom[
        custom["rare_flowers"].fillna(False)
        | custom["imported_flowers"].fillna(False)
        | (custom["customization_level"] == "bespoke")
    ]
    payments = _latest(_frame(url, "select * from raw.payments"), ["payment_id"])
    return Warehouse(order_frame, versions, set(special["order_ref"]), payments)


def _resolve(order, versions: pd.DataFrame) -> str | None:
    """Member id; else the phone's owner at order time; else its nearest owner; else nobody."""
    if pd.notna(order.member_id):
        return order.member_id
    if pd.isna(order.phone_key):
        return None
    periods = []
    for member_id, group in versions[
        versions["member_id"].isin(versions.loc[versions["phone_key"] == order.phone_key, "member_id"])
    ].groupby("member_id"):
        current = None
        for row in group.itertuples():
            if row.phone_key == order.phone_key:
                if current is None:
                    current = [row.valid_from, row.valid_to]
                else:
                    current[1] = row.valid_to
            elif current is not None:
                periods.append((member_id, *current))
                current = None
        if current is not None:
            periods.append((member_id, *current))

    def owned_then(period) -> bool:
        return period[1] <= order.ordered_at and (pd.isna(period[2]) or order.ordered_at < period[2])

    periods.sort(key=lambda p: (not owned_then(p), abs((order.ordered_at - p[1]).total_seconds())))
    return periods[0][0] if periods else None


def _holds(condition: Condition, values: dict[str, Decimal]) -> bool:
    value, threshold = values[condition.indicator], Decimal(str(condition.threshold))
    return {
        ">=": value >= threshold,
        ">": value > threshold,
        "<=": value <= threshold,
        "<": value < threshold,
    }[condition.operator]


def rule_holds(conditions: tuple[Condition, ...], values: dict[str, Decimal]) -> bool:
    every = [_holds(c, values) for c in conditions if c.match_group == "all"]
    some = [_holds(c, values) for c in conditions if c.match_group == "any"]
    return all(every) and (not some or any(some))


def grade_values(policy: Policy, values: dict[str, Decimal]) -> tuple[str, Decimal | None, dict[str, str]]:
    """Tier, composite score and bands for one customer's indicator values."""
    values = dict(values)
    bands, composite = {}, Decimal(0)
    for score in policy.scores:
        band = next(b for b in score.bands if rule_holds(b.conditions, values))
        bands[score.name] = band.band
        values[SCORE_PREFIX + score.name] = Decimal(str(band.points))
        composite += Decimal(str(band.points)) * Decimal(str(score.weight))
    if policy.scores:
        values[COMPOSITE] = composite
    tier = next((t.code for t in policy.tiers if rule_holds(t.conditions, values)), NO_TIER)
    return tier, (composite if policy.scores else None), bands


def consent_since(data: Warehouse, end_stamp: datetime) -> dict[str, datetime]:
    """000 Art. 7: for each member whose grading consent is in force at ``end_stamp``, from when
    their orders count: the consent time recorded with the first version of the unbroken run of
    consenting versions in force then (that version's own time when the CRM left it empty)."""
    since = {}
    for member_id, group in data.versions[data.versions["valid_from"] < end_stamp].groupby("member_id"):
        versions = group.sort_values("valid_from")
        if not bool(versions.iloc[-1]["grading_consent"]):
            continue
        run_start = versions.iloc[-1]
        for row in reversed(list(versions.itertuples())):
            if not bool(row.grading_consent):
                break
            run_start = row
        consent_at = run_start.grading_consent_at
        since[member_id] = run_start.valid_from if consent_at is None or pd.isna(consent_at) else consent_at
    return since


def grade(data: Warehouse, policy: Policy, period_month: date) -> pd.DataFrame:
    period_end = period_month + relativedelta(months=1) - timedelta(days=1)
    window = int(policy.settings["window_months"])
    window_start = period_end - relativedelta(months=window) + timedelta(days=1)
    big_ticket = Decimal(str(policy.settings["big_ticket_order_min"]))
    end_stamp = datetime.combine(period_end + timedelta(days=1), datetime.min.time())
    all_orders = data.orders[data.orders["customer_key"].notna()]
    # docs/POLICIES.md: zero-amount orders count in no indicator, and only orders placed since
    # the grading consent in force at the period end count at all
    consenting = consent_since(data, end_stamp)
    orders = all_orders[~all_orders["zero_amount"].astype(bool) & all_orders["customer_key"].isin(consenting)]
    orders = orders[orders["ordered_at"] >= orders["customer_key"].map(consenting)]
    in_window = orders[(orders["ordered_at"].dt.date >= window_start) & (orders["ordered_at"].dt.date <= period_end)]
    rows: list[dict[str, object]] = []
    for customer in sorted(set(consenting) - set(in_window["customer_key"])):
        # lapsed: no purchase in the window since consenting, still one row (docs/POLICIES.md)
        rows.append(
            {
                "customer_key": customer,
                "tier": policy.lapsed_tier,
                "composite_score": None,
                "lapsed": True,
                **_labels(policy, None, None),
            }
        )
    for customer, group in in_window.groupby("customer_key"):
        version = data.versions[
            (data.versions["member_id"] == customer)
            & (data.versions["valid_from"] < end_stamp)
            & (data.versions["valid_to"].isna() | (data.versions["valid_to"] >= end_stamp))
        ]
        positive = group[group["net"] > 0]
        spend = sum(group["net"], Decimal(0))
        count = len(positive)
        starts = list(orders.loc[orders["customer_key"] == customer, "ordered_at"]) + list(
            data.versions.loc[data.versions["member_id"] == customer, "valid_from"]
        )
        since = relativedelta(period_end, min(starts).date())
        tenure = since.years * 12 + since.months
        active = positive["ordered_at"].dt.to_period("M").nunique()
        due = data.payments.merge(
            orders.loc[orders["customer_key"] == customer, ["order_id"]], left_on="order_ref", right_on="order_id"
        )
        due = due[(due["due_date"] >= window_start) & (due["due_date"] <= period_end)]
        on_time = sum(
            1 for p in due.itertuples() if p.paid_at is not None and not pd.isna(p.paid_at) and p.paid_at.date() <= p.due_date
        )

        def share(part: Decimal, whole: Decimal) -> Decimal:
            return _round(max(part, Decimal(0)) / max(whole, Decimal(0)), 4) if whole > 0 else Decimal(0)

        values = {
            "spend": _round(spend, 2),
            "order_count": Decimal(count),
            "custom_share": share(sum(group["customised"], Decimal(0)), spend),
            "enterprise_share": share(sum(group["enterprise"], Decimal(0)), spend),
            "special_needs_share": _round(Decimal(int(positive["order_id"].isin(data.special_orders).sum())) / count, 4)
            if count
            else Decimal(0),
            "max_order_value": _round(max(group["net"]), 2),
            "avg_order_value": _round(spend / count, 2) if count else Decimal(0),
            "active_months": Decimal(active),
            "tenure_months": Decimal(tenure),
            "repurchase_rate": _round(min(Decimal(active) / min(window, tenure + 1), Decimal(1)), 4),
            "on_time_payment_share": _round(Decimal(on_time) / len(due), 4) if len(due) else Decimal(1),
            "days_since_last_order": Decimal((period_end - group["ordered_at"].max().date()).days),
        }
        values["big_ticket_orders"] = Decimal(int(((group["net"] >= big_ticket) & (group["net"] > 0)).sum()))
        values["big_ticket_share"] = _round(values["big_ticket_orders"] / count, 4) if count else Decimal(0)
        tier, composite, _ = grade_values(policy, values)
        labels = _labels(policy, version.iloc[0]["customer_type"], values)
        rows.append({"customer_key": customer, "tier": tier, "composite_score": composite, "lapsed": False, **labels})
    return pd.DataFrame(rows)


def lapsed(data: Warehouse, policy: Policy, period_month: date) -> set[str]:
    """Consenting customers without a purchase in the window since consenting: graded lapsed."""
    graded = grade(data, policy, period_month)
    return set(graded.loc[graded["lapsed"], "customer_key"])


def _labels(policy: Policy, customer_type: str | None, values: dict[str, Decimal] | None) -> dict[str, str | None]:
    s = policy.settings
    if "enterprise_label_min_share" not in s or values is None:
        return {"consumption_attribute": None, "demand_feature": None, "cooperation_feature": None}
    consumption = customer_type or (
        "enterprise" if values["enterprise_share"] >= Decimal(str(s["enterprise_label_min_share"])) else "individual"
    )
    demand = "special_needs" if values["special_needs_share"] >= Decimal(str(s["special_needs_label_min_share"])) else "regular"
    long_term = values["active_months"] >= Decimal(str(s["long_term_label_min_active_months"])) and values[
        "tenure_months"
    ] >= Decimal(str(s["long_term_label_min_tenure_months"]))
    return {
        "consumption_attribute": consumption,
        "demand_feature": demand,
        "cooperation_feature": "long_term" if long_term else "seasonal",
    }
