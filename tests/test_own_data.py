"""A retailer grades its own customers following the README's "Grading your own customers"
section literally: its own tierhouse.yml (one online channel and a CRM file; no tills, no shop
database), a policy copied from P3 with bands scaled to its business and an old
``effective_from``, ``tierhouse warehouse migrate``, ``tierhouse import`` of the customer file and
the order history, then the grading DAG for its policy and month, as ``airflow dags test`` runs
it. The tiers are checked against an independent pandas computation of the indicators as
docs/POLICIES.md defines them, not against the warehouse's own features."""

from __future__ import annotations

import csv
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dateutil.relativedelta import relativedelta

from tests.support import query
from tierhouse import settings
from tierhouse.ingest.sources import CRM
from tierhouse.orchestration.local_airflow import task_states
from tierhouse.privacy import crypto
from tierhouse.warehouse.connection import WarehouseUrl

pytestmark = pytest.mark.e2e
TIERHOUSE = Path(sys.executable).with_name("tierhouse")
POLICY = "my_abcd"
PERIOD = "2024-12"
PERIOD_END = date(2024, 12, 31)
WINDOW_START = date(2024, 1, 1)  # the copied policy's 12-month window
CUSTOMERS = 90
#: The copy of P3 scaled to a smaller business: the README's example edit.
SCALED_BANDS = {
    "spend": [["spend > 20000"], ["spend >= 8000"]],
    "frequency": [["order_count > 10"], ["order_count >= 5"]],
}
LOYALTY = {"high": ["tenure_months > 18", "repurchase_rate > 0.5"], "low": ["tenure_months < 12", "repurchase_rate < 0.25"]}


def build_data_set(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One online channel, the retailer's own member ids, 18 months to the end of 2024, a CRM file
    (Chinese headers, as its CRM exports them) where most customers consent to grading. Refunds
    are lines of their order, on its day."""
    rng = random.Random(2024)
    members, lines = [], []
    for n in range(1, CUSTOMERS + 1):
        member = f"WEB-{n:05d}"
        registered = datetime(2022, 6, 1, 9) + timedelta(days=rng.randrange(0, 760))
        members.append(
            {"member_id": member, "name": f"客户{n:03d}", "phone": f"139{rng.randrange(10**7, 10**8)}",
             "customer_type": "enterprise" if n % 9 == 0 else "individual", "grading_consent": n % 7 != 0,
             "updated_at": registered.replace(day=min(registered.day, 27))}
        )  # fmt: skip
        first = max(date(2023, 7, 1), registered.date())
        orders = rng.randrange(1, 26)
        for k in range(orders):
            day = first + timedelta(days=rng.randrange(0, (PERIOD_END - first).days + 1))
            day = day.replace(day=min(day.day, 28))
            if k == 0:
                day = date(2024, rng.randrange(1, 13), rng.randrange(1, 29))  # everyone buys in the window
            at = datetime.combine(day, datetime.min.time()) + timedelta(hours=10 + k % 8)
            order_id = f"{member}-{k:03d}"
            amounts = [Decimal(rng.randrange(200, 3000)) for _ in range(rng.randrange(1, 3))]
            for line_no, amount in enumerate(amounts, start=1):
                lines.append({"order_id": order_id, "line_no": line_no, "ordered_at": at, "member_id": member, "amount": amount})
            if rng.random() < 0.1:  # part of the first line refunded
                lines.append(
                    {"order_id": order_id, "line_no": 901, "ordered_at": at + timedelta(hours=2), "member_id": member,
                     "amount": -(amounts[0] / 2).quantize(Decimal("0.01"))}
                )  # fmt: skip
    crm, order_lines = pd.DataFrame(members), pd.DataFrame(lines)
    with (root / "customers.csv").open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        headers = {c.name: c.headers[0] for c in CRM.columns}
        writer.writerow([headers[c] for c in ("member_id", "name", "phone", "customer_type", "grading_consent", "updated_at")])
        for m in members:
            consent = "是" if m["grading_consent"] else "否"
            writer.writerow(
                [m["member_id"], m["name"], m["phone"], m["customer_type"], consent, f"{m['updated_at']:%Y-%m-%d %H:%M:%S}"]
            )
    with (root / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "line_no", "ordered_at", "channel", "member_id", "sku", "quantity", "amount"])
        for line in lines:
            quantity = 1 if line["amount"] > 0 else -1
            writer.writerow([line["order_id"], line["line_no"], f"{line['ordered_at']:%Y-%m-%d %H:%M:%S}", "website",
                             line["member_id"], "BOUQUET", quantity, f"{line['amount']:.2f}"])  # fmt: skip
    return crm, order_lines


def write_policy(policies_dir: Path) -> dict:
    """The shipped policies, plus P3 copied as the README says: new name and version 1, an old
    effective_from, bands scaled to this business."""
    shutil.copytree(settings.POLICIES_DIR, policies_dir)
    document = yaml.safe_load((settings.POLICIES_DIR / "abcd" / "v1.yml").read_text(encoding="utf-8"))
    document.update(policy=POLICY, version=1, effective_from=date(2020, 1, 1), title="Our A/B/C/D")
    for score, (high, mid) in SCALED_BANDS.items():
        bands = document["scores"][score]["bands"]
        bands[0]["all"], bands[1]["all"] = high, mid
    loyalty = document["scores"]["loyalty"]["bands"]
    loyalty[0]["all"], loyalty[1]["any"] = LOYALTY["high"], LOYALTY["low"]
    (policies_dir / POLICY).mkdir()
    (policies_dir / POLICY / "v1.yml").write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return document


def expected_tiers(crm: pd.DataFrame, lines: pd.DataFrame) -> dict[str, str]:
    """docs/POLICIES.md, computed here: the window is the 12 months to the period end; an order's
    net value is the sum of its lines (refunds included), dated by its sale; spend sums net values,
    order_count counts orders with a positive net value, active_months the months with one;
    tenure_months runs from registration or first purchase, whichever was earlier;
    repurchase_rate = active months / the window's months since the relationship began (capped at 1).
    Consent in time: only orders on or after the customer's grading consent (the CRM version that
    gave it, here its only one) count, in every indicator."""
    orders = lines.groupby(["member_id", "order_id"]).agg(net=("amount", "sum"), at=("ordered_at", "min")).reset_index()
    consent_at = crm.set_index("member_id")["updated_at"]
    orders = orders[orders["at"] >= orders["member_id"].map(consent_at)]
    in_window = orders[(orders["at"].dt.date >= WINDOW_START) & (orders["at"].dt.date <= PERIOD_END)]
    tiers = {}
    for member in crm.loc[crm["grading_consent"], "member_id"]:
        mine = in_window[in_window["member_id"] == member]
        positive = mine[mine["net"] > 0]
        spend, count = sum(mine["net"], Decimal(0)), len(positive)
        since = min(
            orders.loc[orders["member_id"] == member, "at"].min(), crm.loc[crm["member_id"] == member, "updated_at"].iloc[0]
        )
        age = relativedelta(PERIOD_END, since.date())
        tenure = age.years * 12 + age.months
        active = positive["at"].dt.to_period("M").nunique()
        repurchase = round(min(active / min(12, tenure + 1), 1), 4)
        spend_points = 3 if spend > 20000 else 2 if spend >= 8000 else 1
        frequency_points = 3 if count > 10 else 2 if count >= 5 else 1
        if tenure > 18 and repurchase > 0.5:
            loyalty_points = 3
        elif tenure < 12 or repurchase < 0.25:
            loyalty_points = 1
        else:
            loyalty_points = 2
        composite = spend_points + frequency_points + loyalty_points
        tiers[member] = "A" if composite >= 8 and spend_points >= 3 else "B" if composite >= 6 else "C" if composite >= 5 else "D"
    return tiers


def readme_commands() -> tuple[str, list[list[str]]]:
    """The tierhouse.yml and the commands of the README's own-data section, as written there."""
    readme = (settings.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Grading your own customers", 1)[1].split("\n## ", 1)[0]
    config = re.search(r"```yaml\n# tierhouse\.yml\n(.*?)```", section, re.S)
    assert config, "the own-data section shows its tierhouse.yml"
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the own-data section shows its commands"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    return config.group(1), [line.split(maxsplit=1) for line in commands if line.startswith(".venv/bin/tierhouse")]


def test_a_retailer_grades_its_own_customers_following_the_readme(empty_db: WarehouseUrl, tmp_path: Path) -> None:
    crm, lines = build_data_set(tmp_path)
    document = write_policy(tmp_path / "policies")
    config_text, commands = readme_commands()
    (tmp_path / "tierhouse.yml").write_text(config_text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERHOUSE_") and k != "WAREHOUSE_URL"}
    env.update(
        WAREHOUSE_URL=empty_db.url(),  # an empty warehouse: nothing migrated yet
        TIERHOUSE_CONFIG=str(tmp_path / "tierhouse.yml"),
        TIERHOUSE_POLICIES_DIR=str(tmp_path / "policies"),
        TIERHOUSE_DATA_DIR=str(tmp_path / "landing"),
        TIERHOUSE_AIRFLOW_HOME=str(tmp_path / "airflow"),
        TIERHOUSE_PSEUDONYM_KEY=os.environ[crypto.KEY_ENV],
        TIERHOUSE_PII_KEY=os.environ[crypto.PII_KEY_ENV],
    )
    outputs = []
    for _tierhouse, arguments in commands:
        argv = [str(TIERHOUSE), *shlex.split(arguments)]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, f"{' '.join(argv[1:])}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    assert [arguments.split()[0] for _, arguments in commands] == ["warehouse", "import", "import", "run-dag", "summary"]

    # the run succeeded, and only the retailer's policy was graded: the shipped ones were skipped
    run_id = re.search(r"tierhouse_grading: run (\S+) ended success", outputs[3]).group(1)  # type: ignore[union-attr]
    states = task_states(tmp_path / "airflow", "tierhouse_grading", run_id)
    for shipped in ("highend_flower", "service_levels", "abcd"):
        assert (states[f"audit_{shipped}"], states[f"publish_{shipped}"]) == ("skipped", "skipped"), states
    assert states[f"publish_{POLICY}"] == "success", states
    published = dict(
        query(
            empty_db,
            "select customer_key, tier from published.customer_tiers where policy = %s and period_month = %s",
            (POLICY, date(2024, 12, 1)),
        )
    )
    assert query(empty_db, "select distinct policy from published.customer_tiers") == [(POLICY,)]

    # every consenting customer is graded, each with the tier the documented definitions give
    expected = expected_tiers(crm, lines)
    assert set(published) == set(crm.loc[crm["grading_consent"], "member_id"])
    assert published == expected
    assert len(set(expected.values())) >= 3, expected  # the scaled bands spread customers over the tiers
    excluded = query(
        empty_db,
        "select exclusion_reason, count(*) from marts.fct_grading_exclusions where policy = %s and period_month = %s group by 1",
        (POLICY, date(2024, 12, 1)),
    )
    assert excluded == [("no_grading_consent", int((~crm["grading_consent"]).sum()))]
    assert document["effective_from"] < date(2025, 1, 1)
    assert f"policy {POLICY}, period {PERIOD}" in outputs[4]
