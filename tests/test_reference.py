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
    policy.load_policies(scratch_db, list(POLICIES.values()))
    access.apply(scratch_db)  # dbt runs as the transformer role
    assert run_dbt(dataclasses.replace(scratch_db), "build", "--quiet", "--exclude", "test_type:unit").returncode == 0
    assert assert_same_grades(scratch_db) > 300
    assert_same_zero_amount_exclusions(scratch_db, zero_amount_customers)


ZERO_AMOUNT_PERIOD = date(2025, 11, 1)


def add_zero_amount_orders(url: WarehouseUrl, landing: Path) -> set[str]:
    """Zero-amount orders (docs/POLICIES.md) in the 2025-11 window for three graded customers
    and three consenting members without a purchase there; returns the latter."""
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


def assert_same_zero_amount_exclusions(url: WarehouseUrl, planted: set[str]) -> None:
    data = ref.load(url)
    for name, graded_policy in POLICIES.items():
        expected = ref.zero_amount_only(data, graded_policy, ZERO_AMOUNT_PERIOD)
        excluded = query(
            url,
            "select customer_key from marts.fct_grading_exclusions"
            " where policy = %s and period_month = %s and exclusion_reason = 'no_positive_orders'",
            (name, ZERO_AMOUNT_PERIOD),
        )
        assert {row[0] for row in excluded} == expected, name
        assert planted and planted <= expected, name
