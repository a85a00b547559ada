"""Task chains more than one DAG runs, built inside the calling DAG's context."""

from __future__ import annotations

from airflow.sdk import chain, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.tasks import apply_access_controls


def build_and_deidentify(upstream):
    """Access controls -> policy files -> dbt build (Cosmos) -> de-identification audit.

    Returns the audit task: everything that publishes must run after it, so nothing is
    published while personal data shows up outside the pii schema (P1 Art. 13).
    """
    # imported here: Cosmos takes about a second to import, which the DAGs without dbt skip
    from tierhouse.orchestration.cosmos_dbt import dbt_build_group

    @task
    def load_policies() -> list[str]:
        return pipeline.load_policies()

    # The same data fails the same way: no retries for an audit.
    @task(retries=0)
    def audit_deidentification() -> int:
        return pipeline.check_deidentification()

    audit = audit_deidentification()
    chain(upstream, apply_access_controls(), load_policies(), dbt_build_group(), audit)
    return audit
