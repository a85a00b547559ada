"""dbt's grading equals an independent pandas implementation, customer for customer, for all
three policies, over several generated data sets."""

from __future__ import annotations

import csv
import dataclasses
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.support import GradedWarehouse, query
from tierhouse.devtools import reference_grading as ref
from tierhouse.devtools.generate import generate
from tierhouse.grading import policy
from tierhouse.grading.transform import run_dbt
from tierhouse.ingest import loaders
from tierhouse.ingest.sources import ORDER_IMPORT, SOURCES
from tierhouse.privacy import access
from tierhouse.warehouse.connection import WarehouseUrl

pytestmark = pytest.mark.e2e
PERIODS = [date(2026, 10, 1), date(2026, 4, 1), date(2025, 11, 1)]
POLICIES = {p.name: p for p in policy.discover()}


def dbt_tiers(url: WarehouseUrl, policy_name: str, period: date) -> pd.DataFrame:
    rows = query(
        url,
        "select customer_key, tier, composite_score, consumption_attribute, demand_feature, cooperation_feature"
        " from marts.fct_customer_tiers where policy = %s and period_month = %s",
        (policy_name, period),
    )
    return pd.DataFrame(
        rows,
        columns=["customer_key", "tier", "composite_score", "consumption_attribute", "demand_feature", "cooperation_feature"],
    )


def assert_same_grades(url: WarehouseUrl) -> int:
    data = ref.load(url)
    compared = 0
    for name, graded_policy in POLICIES.items():
        for period in PERIODS:
            expected = ref.grade(data, graded_policy, period)
            actual = dbt_tiers(url, name, period)
            assert len(expected) > 0, (name, period)
            merged = expected.merge(actual, on="customer_key", how="outer", suffixes=("_ref", "_dbt"), indicator=True)
            only = merged[merged["_merge"] != "both"]
            assert only.empty, f"{name} {period}: graded by one side only:\n{only.head(10)}"
            for column in ("tier", "composite_score", "consumption_attribute", "demand_feature", "cooperation_feature"):
                left, right = merged[f"{column}_ref"], merged[f"{column}_dbt"]
                differ = merged[~((left == right) | (left.isna() & right.isna()))]
                assert differ.empty, (
                    f"{name} {period} {column} differs:\n{differ[['customer_key', f'{column}_ref', f'{column}_dbt']].head(10)}"
                )
            compared += len(merged)
    return compared


def test_dbt_matches_the_reference_on_the_end_to_end_data(graded_warehouse: GradedWarehouse) -> None:
    assert assert_same_grades(graded_warehouse.url) > 1000


@pytest.mark.parametrize("seed", [11, 29])
def test_dbt_matches_the_reference_on_other_seeds(seed: int, scratch_db: WarehouseUrl, tmp_path: Path) -> None:
    generate(tmp_path, 150, 30, seed, date(2026, 11, 1))
    loaders.seed_shop_database(scratch_db, tmp_path / "shop")
    for source in SOURCES.values():
        loaders.load_exports(scratch_db, source, tmp_path / source.subdir)
    loaders.extract_shop_orders(scratch_db)
    zero_amount_customers = add_zero_amount_orders(scratch_db, tmp_path / "zero_amount")
    gap_member, consent_again = add_consent_gap(scratch_db)
    policy.load_policies(scratch_db, list(POLICIES.values()))
    access.apply(scratch_db)  # dbt runs as the transformer role
    assert run_dbt(dataclasses.replace(scratch_db), "build", "--quiet", "--exclude", "test_type:unit").returncode == 0
    assert assert_same_grades(scratch_db) > 300
    assert_same_lapsed_customers(scratch_db, zero_amount_customers)
    assert_orders_before_consent_do_not_count(scratch_db, gap_member, consent_again)


ZERO_AMOUNT_PERIOD = date(2025, 11, 1)


def add_zero_amount_orders(url: WarehouseUrl, landing: Path) -> set[str]:
    """Zero-amount orders (docs/POLICIES.md) in the 2025-11 window for three graded customers
    and three consenting members without a purchase there; returns the latter, who are lapsed."""
    data = ref.load(url)
    graded_policy = next(iter(POLICIES.values()))
    graded = sorted(ref.grade(data, graded_policy, ZERO_AMOUNT_PERIOD)["customer_key"])[:3]
    end = pd.Timestamp(2025, 12, 1)
    current = data.versions[
        (data.versions["valid_from"] < end) & (data.versions["valid_to"].isna() | (data.versions["valid_to"] >= end))
    ]
    buyers = set(data.orders["customer_key"].dropna())
    idle = sorted(set(current.loc[current["grading_consent"].astype(bool), "member_id"]) - buyers)[:3]
    rows = [
        {"order_id": f"Z{n}", "line_no": str(line), "ordered_at": "2025-11-15 10:00:00", "channel": "website",
         "store_code": "", "member_id": member, "phone": "", "sku": "GIFT", "business_line": "", "customization_level": "",
         "quantity": "1", "amount": "0"}
        for n, member in enumerate(graded + idle) for line in (1, 2)
    ]  # fmt: skip
    path = landing / "zero_amount_orders.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow([column.headers[0] for column in ORDER_IMPORT.columns])
        writer.writerows([row[column.name] for column in ORDER_IMPORT.columns] for row in rows)
    loaders.load_exports(url, ORDER_IMPORT, landing)
    return set(idle)


WITHDRAWN, CONSENTED_AGAIN = pd.Timestamp(2025, 5, 1, 9), pd.Timestamp(2025, 8, 15, 9)


def add_consent_gap(url: WarehouseUrl) -> tuple[str, pd.Timestamp]:
    """000 Art. 7, consent in time: a consenting customer with purchases in the 2025-11 window
    both while consent was withdrawn (May to mid-August 2025) and after consenting again; the CRM
    records the new consent the evening before the version that carries it."""
    data = ref.load(url)
    orders = data.orders[~data.orders["zero_amount"].astype(bool) & (data.orders["net"] > 0)]
    in_gap = set(orders.loc[orders["ordered_at"].between(WITHDRAWN, CONSENTED_AGAIN), "customer_key"])
    after = set(orders.loc[orders["ordered_at"].between(CONSENTED_AGAIN, pd.Timestamp(2025, 11, 30)), "customer_key"])
    registered_before = set(data.versions.loc[data.versions["valid_from"] < WITHDRAWN, "member_id"])
    consenting = set(data.versions.loc[data.versions["grading_consent"].astype(bool), "member_id"])
    consenting -= set(data.versions.loc[~data.versions["grading_consent"].astype(bool), "member_id"])
    consenting -= set(data.versions.loc[data.versions["valid_from"].between(WITHDRAWN, CONSENTED_AGAIN), "member_id"])
    member = sorted(in_gap & after & registered_before & consenting)[0]
    consent_at = CONSENTED_AGAIN - pd.Timedelta(hours=15)
    for at, consent in ((WITHDRAWN, False), (CONSENTED_AGAIN, True)):
        query(
            url,
            "insert into raw.crm_members (member_id, phone_key, customer_type, grading_consent, grading_consent_at,"
            " marketing_consent, marketing_consent_at, updated_at, _source_file, _source_line)"
            " select member_id, phone_key, customer_type, %s, %s, marketing_consent, marketing_consent_at, %s, 'gap.csv', 1"
            " from raw.crm_members where member_id = %s and updated_at < %s order by updated_at desc limit 1",
            (consent, consent_at if consent else None, at, member, at),
        )
    return member, consent_at


def assert_orders_before_consent_do_not_count(url: WarehouseUrl, member: str, consent_from: pd.Timestamp) -> None:
    data = ref.load(url)
    orders = data.orders[(data.orders["customer_key"] == member) & ~data.orders["zero_amount"].astype(bool)]
    window = orders[orders["ordered_at"].between(pd.Timestamp(2024, 12, 1), pd.Timestamp(2025, 12, 1))]
    since_consent = window[window["ordered_at"] >= consent_from]
    for name in POLICIES:
        ((spend, orders_counted),) = query(
            url,
            "select spend, order_count from marts.fct_customer_features where policy = %s and period_month = %s"
            " and customer_key = %s",
            (name, ZERO_AMOUNT_PERIOD, member),
        )
        assert spend == sum(since_consent["net"]), name
        assert orders_counted == int((since_consent["net"] > 0).sum()) < int((window["net"] > 0).sum()), name


def assert_same_lapsed_customers(url: WarehouseUrl, planted: set[str]) -> None:
    """Consenting customers without a purchase in the window (zero-amount orders are none) are
    graded with the policy's lapsed tier and the basis "no purchases in the window", on both sides."""
    data = ref.load(url)
    for name, graded_policy in POLICIES.items():
        expected = ref.lapsed(data, graded_policy, ZERO_AMOUNT_PERIOD)
        rows = query(
            url,
            "select customer_key, tier from marts.fct_customer_tiers"
            " where policy = %s and period_month = %s and decided_by = 'no purchases in the window'",
            (name, ZERO_AMOUNT_PERIOD),
        )
        assert {row[0] for row in rows} == expected, name
        assert {row[1] for row in rows} == {graded_policy.lapsed_tier}, name
        assert planted and planted <= expected, name
        excluded = query(
            url,
            "select count(*) from marts.fct_grading_exclusions where policy = %s and period_month = %s and customer_key = any(%s)",
            (name, ZERO_AMOUNT_PERIOD, sorted(planted)),
        )
        assert excluded == [(0,)], name
