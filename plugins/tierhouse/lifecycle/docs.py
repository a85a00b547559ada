"""`make docs` (``tierhouse docs``): dbt's documentation site and Great Expectations Data Docs.

dbt docs: ``dbt docs generate --static`` as the dbt login, one self-contained HTML file with
every model, column, test and the lineage (``dbt_project/target/static_index.html``). Data Docs:
the raw-data checkpoint and, for each policy's newest published period, the publish checkpoints
(tiers and, when there is an earlier list and a threshold, drift), run again as the gate's
SELECT-only login and rendered under ``site/data_docs/``. The grading report links both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierhouse.errors import TierhouseError
from tierhouse.gates import CheckpointOutcome
from tierhouse.grading import quality
from tierhouse.grading.policy import newest
from tierhouse.grading.transform import run_dbt
from tierhouse.lifecycle.history import previous_distribution
from tierhouse.lifecycle.report import DATA_DOCS, DBT_DOCS
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url
from tierhouse.warehouse.migrate import require_migrated


class DocsError(TierhouseError, RuntimeError):
    """dbt could not generate its documentation."""


@dataclass(frozen=True)
class Docs:
    dbt_docs: Path
    data_docs: Path
    checks: list[CheckpointOutcome]


def checkpoint_runs(url: WarehouseUrl) -> list[tuple[str, dict[str, str], dict | None]]:
    """What Data Docs shows: ingest_raw, then each policy's newest published period's publish audit."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select policy, max(period_month) from published.customer_tiers group by policy order by policy")
        latest = cur.fetchall()
    runs: list[tuple[str, dict[str, str], dict | None]] = [("ingest_raw", {}, None)]
    for policy, period_month in latest:
        filters = {"policy": policy, "period_month": period_month.isoformat()}
        parameters = quality.tier_audit_parameters(policy)
        runs.append(("publish_customer_tiers", filters, parameters))
        previous = previous_distribution(url, policy, period_month, parameters["tiers"])
        threshold = newest(policy).document.get("audit", {}).get("max_tier_kl_divergence")
        if previous is not None and threshold is not None:
            runs.append(("publish_tier_drift", filters, {"previous_distribution": previous, "max_kl_divergence": threshold}))
    return runs


def build_docs(url: WarehouseUrl, dbt_target: Path = DBT_DOCS.parent, data_docs: Path = DATA_DOCS.parent) -> Docs:
    """Both sites, into ``dbt_target`` (dbt's target folder) and ``data_docs``."""
    generate = ("docs", "generate", "--static", "--quiet", "--target-path", str(dbt_target))
    if run_dbt(url, *generate, check=False).returncode != 0:
        raise DocsError("dbt docs generate failed (its errors are above); is the warehouse built (`make demo`)?")
    gate_url = login_url(url, "gate")
    checks = quality.run_with_data_docs(gate_url, checkpoint_runs(gate_url), data_docs)
    return Docs(dbt_target / DBT_DOCS.name, data_docs / DATA_DOCS.name, checks)
